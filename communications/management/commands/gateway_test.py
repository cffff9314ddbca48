import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from communications.models import Status
from communications.services import dispatch_batch, statuses_poll, test_message_send
from gateways.models import Gateway


class Command(BaseCommand):
    help = "Send a test message through one gateway and print its status history."

    def add_arguments(self, parser):
        parser.add_argument("gateway", help="Gateway name or id.")
        parser.add_argument("--to", required=True, help="Phone, email address or device token.")
        parser.add_argument("--text", default="", help="Message text (a default test text otherwise).")
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            help="Seconds to wait for a delivery status (callbacks or polling).",
        )

    def handle(self, *args, gateway, to, text, wait, **options):
        found = (
            Gateway.objects.filter(pk=int(gateway))
            if gateway.isdigit()
            else Gateway.objects.filter(name=gateway)
        )
        gw = found.first()
        if gw is None:
            raise CommandError(_("No gateway %(gateway)s.") % {"gateway": gateway})
        try:
            message = test_message_send(gateway=gw, to=to, text=text)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        dispatch_batch(gateway=gw)
        deadline = time.monotonic() + wait
        message.refresh_from_db()
        while (
            message.status in (Status.SENT, Status.QUEUED, Status.FAILED_TEMPORARY)
            and time.monotonic() < deadline
        ):
            time.sleep(1)
            statuses_poll(gateway=gw)
            message.refresh_from_db()
        for row in message.history.all():
            self.stdout.write(f"{row.at:%Y-%m-%d %H:%M:%S}  {row.get_status_display():<24} {row.reason}")
        self.stdout.write(
            _("Message #%(id)s via %(gateway)s: %(status)s")
            % {"id": message.pk, "gateway": gw, "status": message.get_status_display()}
        )
        if message.status in (
            Status.FAILED,
            Status.REJECTED,
            Status.SUPPRESSED,
            Status.UNDELIVERABLE,
            Status.EXPIRED,
        ):
            raise CommandError(message.reason or message.get_status_display())
