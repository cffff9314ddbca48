from django.core.management.base import BaseCommand, CommandError

from segments.models import Segment
from segments.services import segment_materialise, segments_refresh


class Command(BaseCommand):
    help = "Materialise segment snapshots now: the given segment ids, or every scheduled one."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int)

    def handle(self, *args, ids, **options):
        if not ids:
            self.stdout.write(f"Refreshed {segments_refresh()} segment(s).")
            return
        for pk in ids:
            segment = Segment.objects.filter(pk=pk).first()
            if segment is None:
                raise CommandError(f"No segment {pk}")
            result = segment_materialise(segment)
            self.stdout.write(f"{segment}: {result.members} members (+{result.added} / -{result.removed})")
