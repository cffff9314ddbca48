import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from loyalty.services.imports import csv_rows, members_import


class Command(BaseCommand):
    help = (
        "Import members from a UTF-8 CSV. Columns: external_id, last_name, first_name, middle_name, "
        "gender, birth_date, phone, email, city, postal_address, registration_channel, registered_at, "
        "status, card_number, consent_sms, consent_email, consent_push, consent_viber, consent_social, "
        "custom:<field code>. Rejected and flagged rows are reported with their line numbers; "
        "importing the same file again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file, or - for standard input")
        parser.add_argument("--report", help="Also write the problems to this CSV file")

    def handle(self, *args, path, report=None, **options):
        if path == "-":
            text = sys.stdin.read()
        else:
            file = Path(path)
            if not file.is_file():
                raise CommandError(_("%(path)s: no such file.") % {"path": path})
            try:
                text = file.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError as exc:
                raise CommandError(
                    _("%(path)s: not UTF-8 (%(error)s).") % {"path": path, "error": exc}
                ) from exc
        result = members_import(csv_rows(text))
        for problem in result.problems:
            kind = _("flagged") if problem.kept else _("rejected")
            self.stdout.write(
                _("line %(line)s: %(result)s: %(reason)s")
                % {"line": problem.line, "result": kind, "reason": problem.reason}
            )
        if report:
            import csv

            with open(report, "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(["line", "result", "reason"])
                for p in result.problems:
                    writer.writerow([p.line, "flagged" if p.kept else "rejected", p.reason])
        self.stdout.write(
            self.style.SUCCESS(
                _(
                    "created %(created)d, updated %(updated)d, unchanged %(unchanged)d, cards issued "
                    "%(cards)d, flagged %(flagged)d, rejected %(rejected)d"
                )
                % {
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "cards": result.cards_issued,
                    "flagged": len(result.flagged),
                    "rejected": len(result.rejected),
                }
            )
        )
