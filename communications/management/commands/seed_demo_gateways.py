from django.core.management.base import BaseCommand
from django.db import transaction

from gateways.models import Cascade, CascadeStep, Gateway
from gateways.providers.base import CHANNELS
from gateways.services import gateway_save

NAMES = {
    "sms": "Outbox: SMS",
    "email": "Outbox: email",
    "push": "Outbox: push",
    "viber": "Outbox: Viber",
    "social": "Outbox: social networks",
}


class Command(BaseCommand):
    help = (
        "Add the embedded default's gateways: one file gateway per channel writing each message "
        "under OUTBOX_DIR (email as .eml), and a Viber → SMS cascade. Leaves existing gateways alone."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        added = 0
        for channel in CHANNELS:
            if Gateway.objects.filter(channel=channel).exists():
                continue
            gateway_save(
                gateway=Gateway(
                    name=NAMES[channel],
                    provider=f"file_{channel}",
                    sender="Demo club <club@demo.example>" if channel == "email" else "DEMO",
                    priority=1000,
                ),
                config={},
            )
            added += 1
        if not Cascade.objects.exists():
            cascade = Cascade.objects.create(
                name="Viber → SMS", description="Viber first; SMS when Viber cannot reach."
            )
            CascadeStep.objects.create(cascade=cascade, order=0, channel="viber", wait_minutes=60)
            CascadeStep.objects.create(cascade=cascade, order=1, channel="sms")
        self.stdout.write(f"{added} file gateways added.")
