import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from loyalty.services.receipts import receipt_holds_release


class Command(BaseCommand):
    help = (
        "Cancel the reserved receipts a till neither confirmed nor cancelled, giving the bonuses held "
        "for them back (the periodic task does this every five minutes)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-minutes",
            type=int,
            default=None,
            help="Reservations made longer ago than this (default: POS_RESERVATION_MINUTES).",
        )

    def handle(self, *args, older_than_minutes, **options):
        minutes = settings.POS_RESERVATION_MINUTES if older_than_minutes is None else older_than_minutes
        if minutes < 0:
            raise CommandError(_("--older-than-minutes cannot be negative."))
        released = receipt_holds_release(older_than=dt.timedelta(minutes=minutes))
        self.stdout.write(
            _(
                "Cancelled %(count)d reserved receipts older than %(minutes)d minutes; "
                "their bonuses went back."
            )
            % {"count": released, "minutes": minutes}
        )
