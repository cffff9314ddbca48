import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from loyalty.files import files_unreferenced


class Command(BaseCommand):
    help = (
        "List the uploaded files no row refers to any more (attachments and images of rows "
        "deleted before files followed their rows); --delete removes them. Files written in "
        "the last --older-than minutes are left alone: an upload is on disk before its row "
        "commits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="delete the files listed")
        parser.add_argument(
            "--older-than",
            type=int,
            default=60,
            metavar="MINUTES",
            help="only files last written at least this many minutes ago (default 60)",
        )

    def handle(self, *args, delete=False, older_than=60, **options):
        if older_than < 0:
            raise CommandError(_("--older-than must be 0 or more minutes."))
        orphans = files_unreferenced(settings.MEDIA_ROOT, older_than=dt.timedelta(minutes=older_than))
        for path in orphans:
            self.stdout.write(str(path))
            if delete:
                path.unlink(missing_ok=True)
        n = len(orphans)
        if delete:
            summary = ngettext("Deleted %(n)d unreferenced file.", "Deleted %(n)d unreferenced files.", n)
        else:
            summary = ngettext("Found %(n)d unreferenced file.", "Found %(n)d unreferenced files.", n)
        self.stdout.write(summary % {"n": n})
