import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from loyalty.models import PaymentMethod, PointOfSale, SalesChannel
from loyalty.services import ledger
from offers.context import LineIn
from offers.models import Offer
from offers.services import offer_save, offer_set_status
from tests import factories

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # Monday, noon in Moscow


@pytest.fixture
def now():
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def shop(db):
    """A hypermarket, an online store; coffee and tea under drinks; card and online payment."""
    partner = factories.PartnerFactory()
    hyper = PointOfSale.objects.create(
        partner=partner,
        code="hyper-1",
        name="Hypermarket 1",
        kind=SalesChannel.OFFLINE,
        time_zone="Europe/Moscow",
        attributes={"CustomTradeFormat": "Hypermarket"},
    )
    online = PointOfSale.objects.create(
        partner=partner,
        code="web",
        name="Online store",
        kind=SalesChannel.ONLINE_STORE,
        time_zone="Europe/Moscow",
    )
    drinks = factories.ProductGroupFactory(code="drinks", name="Drinks")
    coffee_group = factories.ProductGroupFactory(code="coffee", name="Coffee", parent=drinks)
    factories.ProductFactory(sku="COFFEE", name="Coffee beans", group=coffee_group, price=Decimal("500"))
    factories.ProductFactory(sku="TEA", name="Tea", group=drinks, price=Decimal("200"))
    factories.ProductFactory(
        sku="BREAD", name="Bread", group=factories.ProductGroupFactory(code="bakery"), price=Decimal("50")
    )
    PaymentMethod.objects.get_or_create(code="card", defaults={"name": "Card", "kind": "card"})
    PaymentMethod.objects.get_or_create(code="online", defaults={"name": "Online", "kind": "online"})
    ledger.currency_default()
    return {"hyper": hyper, "online": online, "drinks": drinks, "coffee": coffee_group}


@pytest.fixture
def make_offer(db):
    def make(event="discount_calculated", rules=(), *, status="active", **fields) -> Offer:
        offer = offer_save(
            offer=Offer(), rules=list(rules), name=fields.pop("name", "Offer"), event_type=event, **fields
        )
        if status == "active":
            offer_set_status(offer=offer, status="active")
            offer.refresh_from_db()
        return offer

    return make


def lines(*items) -> list[LineIn]:
    return [LineIn(sku=sku, quantity=Decimal(q), price=Decimal(p)) for sku, q, p in items]
