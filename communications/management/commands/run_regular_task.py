import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _

from communications.models import RegularKind
from communications.services.regular import regular_run


def figures_text(figures: dict) -> str:
    """One line of a run's figures, e.g. ``found 3, new 2, queued sms 1 email 1, accrued 2``."""
    if "skipped" in figures:
        return _("skipped (%(why)s)") % {"why": figures["skipped"]}
    queued = figures.get("queued") or {}
    parts = [
        _("zones due %(n)s") % {"n": figures.get("zones", 0)},
        _("found %(n)s") % {"n": figures.get("found", 0)},
        _("new %(n)s") % {"n": figures.get("new", 0)},
        _("queued %(by_channel)s") % {"by_channel": " ".join(f"{ch} {n}" for ch, n in queued.items()) or "0"},
    ]
    if "accrued" in figures:
        parts.append(_("accrued %(n)s") % {"n": figures["accrued"]})
    for channel, why in (figures.get("left_out") or {}).items():
        parts.append(_("%(channel)s left out: %(why)s") % {"channel": channel, "why": why})
    return ", ".join(parts)


class Command(BaseCommand):
    help = (
        "Run regular notifications now (birthday greeting, bonus burnout and activation notices) "
        "and print their figures. Each member is notified once per occasion however often it runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("kinds", nargs="*", metavar="KIND", help=" | ".join(RegularKind.values))
        parser.add_argument("--all", action="store_true", dest="every", help="run every enabled notification")
        parser.add_argument("--now", help="run as of this moment, ISO 8601 (default: now)")

    def handle(self, *args, kinds, every, now, **options):
        unknown = sorted(set(kinds) - set(RegularKind.values))
        if unknown:
            raise CommandError(
                _("Unknown notification %(unknown)s; use %(known)s.")
                % {"unknown": ", ".join(unknown), "known": ", ".join(RegularKind.values)}
            )
        if not kinds and not every:
            raise CommandError(_("Name a notification or give --all."))
        moment = None
        if now:
            try:
                moment = dt.datetime.fromisoformat(now)
            except ValueError as exc:
                raise CommandError(_("--now: %(error)s") % {"error": exc}) from exc
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
        result = regular_run(now=moment, kinds=None if every else kinds)
        if not result:
            self.stdout.write(_("No notification is enabled."))
        for kind, figures in result.items():
            self.stdout.write(f"{kind}: {figures_text(figures)}")
