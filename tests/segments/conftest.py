import datetime as dt
from decimal import Decimal

import pytest

from loyalty.models import (
    Consent,
    Currency,
    CustomField,
    Member,
    MemberEvent,
    PaymentMethod,
    PointOfSale,
    Product,
    ProductGroup,
    Receipt,
    ReceiptLine,
    ReceiptPayment,
    Status,
)
from loyalty.services import ledger
from segments.models import AudienceMember, TargetAudience
from tests import factories

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def day(y, m, d):
    return dt.datetime(y, m, d, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(db):
    """Four members with hand-picked profiles, receipts, events, bonuses and an audience.
    The expectations in the metric tests are worked out from this by hand."""
    gold = Status.objects.create(code="gold", name="Gold", rank=3)
    silver = Status.objects.create(code="silver", name="Silver", rank=2)
    CustomField.objects.create(code="has_car", label="Has a car", kind="boolean")
    food = ProductGroup.objects.create(code="food", name="Food")
    coffee = ProductGroup.objects.create(code="coffee", name="Coffee", parent=food)
    dairy = ProductGroup.objects.create(code="dairy", name="Dairy", parent=food)
    kitchen = ProductGroup.objects.create(code="kitchen", name="Kitchen")
    products = {
        "coffee": Product.objects.create(sku="SKU-COFFEE", name="Coffee", group=coffee, price=500),
        "milk": Product.objects.create(sku="SKU-MILK", name="Milk", group=dairy, price=100),
        "pan": Product.objects.create(sku="SKU-PAN", name="Pan", group=kitchen, price=4000),
    }
    partner = factories.PartnerFactory()
    pos = {
        "hyper": PointOfSale.objects.create(
            partner=partner,
            code="hyper",
            name="Hyper",
            kind="offline",
            attributes={"CustomTradeFormat": "Hypermarket"},
        ),
        "super": PointOfSale.objects.create(
            partner=partner,
            code="super",
            name="Super",
            kind="offline",
            attributes={"CustomTradeFormat": "Supermarket"},
        ),
        "online": PointOfSale.objects.create(partner=partner, code="web", name="Web", kind="online_store"),
        "app": PointOfSale.objects.create(partner=partner, code="app", name="App", kind="mobile_app"),
    }
    methods = {
        code: PaymentMethod.objects.create(code=code, name=code, kind="other")
        for code in ("cash", "card", "online")
    }
    m = {}
    m["anna"] = Member.objects.create(
        first_name="anna",
        gender="female",
        birth_date=dt.date(1990, 5, 20),
        city="Москва",
        registered_at=day(2025, 1, 10),
        registration_channel="pos",
        state="activated",
        status=gold,
        phone="+79160000001",
        phone_status="valid",
        phone_operator="MTS",
        email="anna@example.ru",
        email_status="valid",
        time_zone="Europe/Moscow",
        custom_fields={"has_car": True},
        referral_code="A",
    )
    m["boris"] = Member.objects.create(
        first_name="boris",
        gender="male",
        birth_date=dt.date(1975, 11, 25),
        city="Казань",
        registered_at=day(2026, 6, 1),
        registration_channel="mobile_app",
        state="registered",
        status=silver,
        phone="+79020000002",
        phone_status="valid",
        phone_operator="T2",
        time_zone="Europe/Moscow",
        custom_fields={"has_car": False},
        referral_code="B",
    )
    m["vera"] = Member.objects.create(
        first_name="vera",
        gender="female",
        birth_date=dt.date(2001, 2, 10),
        city="Новосибирск",
        registered_at=day(2026, 11, 1),
        registration_channel="personal_account",
        state="activated",
        phone_raw="123",
        phone_status="invalid",
        email="vera@example.ru",
        email_status="valid",
        time_zone="Asia/Novosibirsk",
        referral_code="V",
    )
    m["gleb"] = Member.objects.create(
        first_name="gleb",
        gender="male",
        city="Москва",
        registered_at=day(2024, 3, 3),
        state="client",
        referral_code="G",
    )
    Consent.objects.create(member=m["anna"], channel="sms", granted=True, source="pos")
    Consent.objects.create(member=m["boris"], channel="sms", granted=False, source="app")

    def receipt(member, when, store, product, qty, method):
        r = Receipt.objects.create(
            point_of_sale=pos[store],
            external_id=f"{member.first_name}-{when:%m%d}",
            member=member,
            state="confirmed",
            purchased_at=when,
            confirmed_at=when,
        )
        line = products[product]
        amount = line.price * qty
        ReceiptLine.objects.create(
            receipt=r, position=1, product=line, sku=line.sku, quantity=qty, price=line.price, amount=amount
        )
        ReceiptPayment.objects.create(receipt=r, method=methods[method], amount=amount)
        r.amount = r.total = amount
        r.save()
        return r

    receipt(m["anna"], day(2026, 11, 20), "hyper", "coffee", 2, "card")  # 1000
    receipt(m["anna"], day(2026, 10, 1), "online", "milk", 5, "online")  # 500
    receipt(m["anna"], day(2025, 12, 1), "hyper", "milk", 3, "cash")  # 300
    receipt(m["boris"], day(2026, 11, 10), "super", "coffee", Decimal("0.4"), "cash")  # 200
    receipt(m["vera"], day(2026, 6, 15), "app", "pan", 1, "card")  # 4000

    for who, when, kind in [
        ("anna", day(2026, 3, 1), "app_installed"),
        ("boris", day(2026, 7, 1), "app_installed"),
        ("boris", day(2026, 7, 2), "app_installed"),
        ("vera", day(2026, 8, 1), "social_profile_linked"),
    ]:
        MemberEvent.objects.create(member=m[who], event_type=kind, occurred_at=when)

    source = ledger.Source(type="offer", label="fixture")
    anna_account = ledger.account_get_or_create(member=m["anna"])
    ledger.bonus_accrue(account=anna_account, amount=100, source=source, at=NOW - dt.timedelta(days=5))
    ledger.bonus_accrue(
        account=anna_account,
        amount=50,
        source=source,
        at=NOW - dt.timedelta(days=5),
        expires_at=NOW + dt.timedelta(days=10),
    )
    ledger.bonus_spend(account=anna_account, amount=30, source=source, at=NOW - dt.timedelta(days=1))
    promo = Currency.objects.create(code="promo", name="Promo")
    vera_promo = ledger.account_get_or_create(member=m["vera"], currency=promo)
    ledger.bonus_accrue(account=vera_promo, amount=500, source=source, at=NOW - dt.timedelta(days=30))

    from segments.stats import stats_rebuild

    stats_rebuild(now=NOW)  # receipts were written directly, as a bulk load would
    vip = TargetAudience.objects.create(name="VIP")
    AudienceMember.objects.create(audience=vip, member=m["anna"])
    AudienceMember.objects.create(audience=vip, member=m["vera"])
    return {"members": m, "audience": vip}
