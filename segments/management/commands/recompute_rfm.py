from django.core.management.base import BaseCommand

from segments.services import rfm_recompute
from segments.stats import stats_age, stats_rebuild


class Command(BaseCommand):
    help = (
        "Recompute RFM scores and segments for all members now (set-wise SQL). The per-member "
        "purchase figures are aged first, or rebuilt from the receipts with --rebuild-stats."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebuild-stats", action="store_true", help="Recompute purchase figures from receipts."
        )

    def handle(self, *args, rebuild_stats=False, **options):
        if rebuild_stats:
            self.stdout.write(f"Purchase figures rebuilt for {stats_rebuild()} member(s).")
        else:
            stats_age()
        result = rfm_recompute()
        self.stdout.write(
            f"Scored {result.scored} member(s); {result.changed} moved between segments; "
            f"{result.seconds:.2f} s."
        )
        for segment, count in sorted(result.sizes.items()):
            self.stdout.write(f"  {segment}: {count}")
