from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from offers.reach import reach_rebuild, reach_refresh


class Command(BaseCommand):
    help = (
        "Add the offer applications made since the last roll-up to the offer list's figures "
        "(receipts, members, discount and bonuses per offer); the periodic task does this every "
        "five minutes."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebuild", action="store_true", help="Forget the figures and count every application again."
        )

    def handle(self, *args, rebuild, **options):
        counted = reach_rebuild() if rebuild else reach_refresh()
        self.stdout.write(_("Counted %(count)d offer applications.") % {"count": counted})
