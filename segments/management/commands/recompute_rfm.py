from django.core.management.base import BaseCommand

from segments.services import rfm_recompute


class Command(BaseCommand):
    help = "Recompute RFM scores and segments for all members now (set-wise SQL)."

    def handle(self, *args, **options):
        result = rfm_recompute()
        self.stdout.write(
            f"Scored {result.scored} member(s); {result.changed} moved between segments; "
            f"{result.seconds:.2f} s."
        )
        for segment, count in sorted(result.sizes.items()):
            self.stdout.write(f"  {segment}: {count}")
