from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from segments.models import Segment
from segments.services import segment_materialise, segments_refresh


class Command(BaseCommand):
    help = "Materialise segment snapshots now: the given segment ids, or every scheduled one."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int)

    def handle(self, *args, ids, **options):
        if not ids:
            refreshed = segments_refresh()
            self.stdout.write(
                ngettext("Refreshed %(n)d segment.", "Refreshed %(n)d segments.", refreshed)
                % {"n": refreshed}
            )
            return
        for pk in ids:
            segment = Segment.objects.filter(pk=pk).first()
            if segment is None:
                raise CommandError(_("No segment %(id)s.") % {"id": pk})
            result = segment_materialise(segment)
            self.stdout.write(
                _("%(segment)s: %(members)d members (+%(added)d / -%(removed)d)")
                % {
                    "segment": segment,
                    "members": result.members,
                    "added": result.added,
                    "removed": result.removed,
                }
            )
