import datetime as dt
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from loyalty.models import Card, CardState, Member, PointOfSale, Product, Status
from loyalty.services import ledger
from loyalty.services.members import member_create
from loyalty.services.receipts import AccrualInput, ConfirmInput, LineInput, receipt_confirm, receipt_record
from offers.models import Offer, PersonalProductProgram
from portal.models import TargetedContent
from segments.models import AudienceMember, TargetAudience

DEMO_PHONE = "+79000000001"
THRESHOLDS = {"silver": Decimal("15000"), "gold": Decimal("50000")}


class Command(BaseCommand):
    help = (
        "Give the demo program its personal account: a demo member (phone +7 900 000-00-01) with a "
        "card, purchases and bonuses, status thresholds, targeted content for everyone and a personal "
        "offer, and a list of personal products. Leaves what exists alone."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        now = timezone.now()
        for code, total in THRESHOLDS.items():
            Status.objects.filter(code=code, qualifying_total__isnull=True).update(qualifying_total=total)
        member = Member.objects.filter(phone=DEMO_PHONE).first()
        if member is None:
            member = self._member(now)
        audience, _ = TargetAudience.objects.get_or_create(
            name="Personal account demo", defaults={"description": "Members who see the demo personal offer."}
        )
        AudienceMember.objects.get_or_create(audience=audience, member=member)
        offer = Offer.objects.filter(status="active").order_by("pk").first()
        for title, values in [
            (
                "Double bonuses on dairy",
                {
                    "text": "Every Saturday this month: twice the bonuses on milk, cheese and yoghurt.",
                    "link": "https://shop.example/dairy",
                    "link_label": "See the products",
                    "order": 10,
                    "offer": offer,
                },
            ),
            (
                "Bring a friend",
                {
                    "text": "Your friend gets 300 welcome bonuses, and so do you after their first purchase.",
                    "order": 20,
                },
            ),
            (
                "A personal gift: 500 bonuses",
                {
                    "text": "For you only: buy for 3,000 ₽ before the end of the month and get 500 bonuses.",
                    "audience": audience,
                    "order": 5,
                },
            ),
        ]:
            TargetedContent.objects.get_or_create(
                title=title,
                defaults={**values, "published": True, "shown_from": now - dt.timedelta(days=1)},
            )
        program = PersonalProductProgram.objects.filter(name="Your favourite products").first()
        if program is None:
            program = PersonalProductProgram.objects.create(
                name="Your favourite products",
                description="Pick three products: you get 10% back in bonuses on them all month.",
                max_picks=3,
                starts_at=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
                ends_at=(now.replace(day=1) + dt.timedelta(days=32)).replace(
                    day=1, hour=0, minute=0, second=0, microsecond=0
                ),
            )
            program.products.set(Product.objects.filter(active=True).order_by("sku")[:12])
        self.stdout.write(
            f"Personal account: /account/ — sign in as {DEMO_PHONE}; the code arrives in the SMS outbox."
        )

    def _member(self, now):
        member = member_create(
            phone=DEMO_PHONE,
            email="anna.demo@example.com",
            first_name="Анна",
            last_name="Демова",
            city="Москва",
            consents={"sms": True, "email": True, "push": False, "viber": False},
            consent_source="demo",
        )
        status = Status.objects.filter(code="silver").first()
        if status:
            Member.objects.filter(pk=member.pk).update(status=status)
        card = Card.objects.create(
            number="7800000000009", member=member, state=CardState.ACTIVATED, activated_at=now
        )
        shop = PointOfSale.objects.order_by("pk").first()
        products = list(Product.objects.filter(active=True).order_by("sku")[:6])
        if shop and products:
            for i, days_ago in enumerate([40, 21, 9, 2]):
                lines = [
                    LineInput(sku=p.sku, quantity=Decimal(1 + (i + j) % 2), price=p.price, name=p.name)
                    for j, p in enumerate(products[i : i + 3])
                ]
                total = sum(ln.quantity * ln.price for ln in lines)
                receipt = receipt_record(
                    point_of_sale=shop,
                    external_id=f"DEMO-{i + 1:04d}",
                    lines=lines,
                    card=card,
                    purchased_at=now - dt.timedelta(days=days_ago),
                )
                receipt_confirm(
                    receipt=receipt,
                    confirm=ConfirmInput(
                        accruals=[AccrualInput(amount=(total * Decimal("0.05")).quantize(Decimal(1)))]
                    ),
                )
        account = ledger.account_get_or_create(member=member)
        ledger.bonus_accrue(
            account=account,
            amount=Decimal(300),
            source=ledger.Source(type="campaign", label="Welcome bonus"),
            expires_at=now + dt.timedelta(days=12),
        )
        ledger.bonus_accrue(
            account=account,
            amount=Decimal(150),
            source=ledger.Source(type="offer", label="Double bonuses weekend"),
            activates_at=now + dt.timedelta(days=5),
        )
        return member
