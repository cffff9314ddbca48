from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

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
            rebuilt = stats_rebuild()
            self.stdout.write(
                ngettext(
                    "Purchase figures rebuilt for %(n)d member.",
                    "Purchase figures rebuilt for %(n)d members.",
                    rebuilt,
                )
                % {"n": rebuilt}
            )
        else:
            stats_age()
        result = rfm_recompute()
        self.stdout.write(
            _("Scored %(scored)d members; %(changed)d moved between segments; %(seconds).2f s.")
            % {"scored": result.scored, "changed": result.changed, "seconds": result.seconds}
        )
        for segment, count in sorted(result.sizes.items()):
            self.stdout.write(f"  {segment}: {count}")
