from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from communications.models import MessageTemplate, RegularKind, RegularTask

TEMPLATES = {
    RegularKind.BIRTHDAY: {
        "subject": "Happy birthday, {{ first_name }}!",
        "text": "{{ salutation }}, happy birthday!{% if event.amount %} {{ event.amount }} bonuses are "
        "waiting for you{% if event.expires %} until {{ event.expires }}{% endif %}.{% endif %}",
    },
    RegularKind.BURNOUT: {
        "subject": "Your bonuses are about to expire",
        "text": "{{ salutation }}! {{ event.amount }} bonuses will expire on {{ event.date }}. "
        "Spend them while they last.",
    },
    RegularKind.ACTIVATION: {
        "subject": "Your bonuses are on their way",
        "text": "{{ salutation }}! {{ event.amount }} bonuses will become available on {{ event.date }}.",
    },
}
CHANNELS = ["sms", "email"]


class Command(BaseCommand):
    help = (
        "Give the demo program its regular notifications: SMS and email templates for the birthday "
        "greeting (with 200 bonuses for 30 days) and the burnout and activation notices, and switch "
        "them on. Leaves templates that exist and settings made by hand alone."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        created = 0
        for kind, parts in TEMPLATES.items():
            task = RegularTask.objects.get_or_create(kind=kind)[0]
            templates = []
            for channel in CHANNELS:
                fields = {"text": parts["text"]}
                if channel == "email":
                    fields["subject"] = parts["subject"]
                template, made = MessageTemplate.objects.get_or_create(
                    name=f"{task} ({channel})", channel=channel, defaults=fields
                )
                created += made
                templates.append(template)
            if not task.templates.exists():
                task.templates.set(templates)
                task.channels = list(CHANNELS)
            if kind == RegularKind.BIRTHDAY and not task.bonus_amount:
                task.bonus_amount, task.bonus_lifetime_days = Decimal(200), 30
            task.enabled = True
            task.save()
        self.stdout.write(f"{created} templates added; regular notifications switched on.")
