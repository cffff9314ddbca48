from django.core.management.base import BaseCommand
from django.db import transaction

from offers.catalog import offer_actions
from offers.models import Counter, Offer
from offers.services import offer_save, offer_set_status

HYPERMARKETS = {
    "key": "points_of_sale",
    "params": {"attribute": "CustomTradeFormat", "values": "Hypermarket"},
}

DEMO_OFFERS = [
    # Seed 004's three worked offers.
    {
        "name": "100 бонусов за онлайн-оплату в интернет-магазине",
        "event_type": "bonus_calculated",
        "priority": 20,
        "rules": [
            {
                "filters": [
                    {"key": "sales_channel", "params": {"channels": ["online_store"]}},
                    {"key": "payment_method", "params": {"methods": ["online"]}},
                ],
                "actions": [{"key": "bonus", "params": {"kind": "fixed", "value": "100", "per": "receipt"}}],
            }
        ],
    },
    {
        "name": "100 бонусов за установку мобильного приложения",
        "event_type": "app_installed",
        "priority": 20,
        "rules": [{"filters": [], "actions": [{"key": "extra_bonus", "params": {"amount": "100"}}]}],
    },
    {
        "name": "Скидка 10 % в гипермаркетах",
        "event_type": "discount_calculated",
        "priority": 10,
        "rules": [
            {
                "filters": [HYPERMARKETS],
                "actions": [
                    {"key": "discount", "params": {"kind": "percent", "value": "10"}},
                    {"key": "cheque_message", "params": {"text": "Ваша скидка: {{ discount }} ₽."}},
                    {
                        "key": "cashier_message",
                        "params": {"text": "Предложите покупателю пакет с логотипом."},
                    },
                ],
            }
        ],
    },
    {
        "name": "1 % бонусами с каждой покупки",
        "event_type": "bonus_calculated",
        "priority": 30,
        "rules": [
            {"filters": [], "actions": [{"key": "bonus", "params": {"kind": "percent", "value": "1"}}]}
        ],
    },
    {
        "name": "Приветственные 200 бонусов за регистрацию",
        "event_type": "registration_completed",
        "priority": 10,
        "rules": [
            {
                "filters": [],
                "actions": [{"key": "extra_bonus", "params": {"amount": "200", "lifetime_days": "90"}}],
            }
        ],
    },
]


class Command(BaseCommand):
    help = (
        "Add the demo program's offers (seed 004's worked examples, messages, a welcome bonus) if none exist."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        Counter.objects.get_or_create(
            key="purchases_month", defaults={"name": "Покупок в этом месяце", "period": "month"}
        )
        if Offer.objects.exists():
            self.stdout.write("Offers exist; nothing added.")
            return
        added = 0
        for spec in DEMO_OFFERS:
            keys = {a["key"] for rule in spec["rules"] for a in rule["actions"]}
            if not keys <= {cls.key for cls in offer_actions}:
                continue
            spec = dict(spec)
            rules = spec.pop("rules")
            offer = offer_save(offer=Offer(), rules=rules, **spec)
            offer_set_status(offer=offer, status="active")
            added += 1
        self.stdout.write(f"{added} demo offers added and activated.")
