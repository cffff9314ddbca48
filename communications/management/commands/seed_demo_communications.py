from django.core.management.base import BaseCommand
from django.db import transaction

from communications.models import Campaign, MailingCategory, MessageTemplate, Watcher

TEMPLATES = [
    {
        "name": "Weekend offer",
        "channel": "sms",
        "text": "{{ first_name }}, this weekend double bonuses on coffee! Your balance: {{ balance }}.",
    },
    {
        "name": "Monthly news",
        "channel": "email",
        "subject": "{{ first_name }}, what's new this month",
        "preheader": "Your balance and this month's offers",
        "html": (
            '<html><body style="font-family:sans-serif;margin:0;padding:16px">'
            '<h1 style="font-size:22px">{{ salutation }}!</h1>'
            "<p>Your balance is <strong>{{ balance }}</strong> bonuses.</p>"
            "{% if expiring_amount %}<p>{{ expiring_amount }} bonuses expire on {{ expiring_date }}.</p>"
            "{% endif %}"
            '<p><a href="https://demo.example/offers" style="display:inline-block;padding:10px 16px;'
            'background:#2b6cb0;color:#fff;text-decoration:none;border-radius:4px">See the offers</a></p>'
            '<p style="font-size:12px;color:#666"><a href="{{ view_online_url }}">View online</a> · '
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
        ),
        "text": (
            "{{ salutation }}! Your balance is {{ balance }} bonuses.\nUnsubscribe: {{ unsubscribe_url }}"
        ),
    },
    {
        "name": "New arrivals",
        "channel": "push",
        "title": "New arrivals",
        "text": "{{ first_name }}, fresh pastries are in. Come by today!",
        "link": "demo://offers",
    },
    {
        "name": "Autumn sale",
        "channel": "viber",
        "text": "{{ first_name }}, autumn sale: up to 30% off.",
        "image": "https://demo.example/autumn.png",
        "button_text": "Open",
        "button_url": "https://demo.example/autumn",
    },
]


class Command(BaseCommand):
    help = (
        "Example templates, mailing categories, a campaign and a watcher for the demo program (idempotent)."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        for code, name, order in (
            ("news", "News", 0),
            ("offers", "Offers and sales", 1),
            ("surveys", "Surveys", 2),
        ):
            MailingCategory.objects.get_or_create(code=code, defaults={"name": name, "order": order})
        Campaign.objects.get_or_create(name="Autumn 2026", defaults={"description": "Autumn campaign"})
        Watcher.objects.get_or_create(
            name="Marketing team", defaults={"phone": "+79990000001", "email": "marketing@demo.example"}
        )
        added = 0
        for fields in TEMPLATES:
            _template, created = MessageTemplate.objects.get_or_create(name=fields["name"], defaults=fields)
            added += created
        self.stdout.write(f"Templates added: {added}")
