"""A partner with a hypermarket and an online store, another partner with a store of its
own, the two worked offers of seed 004, and API keys for both partners."""

import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from loyalty.models import Card, Partner, PaymentMethod, PaymentMethodKind, PointOfSale, SalesChannel
from loyalty.services import ledger
from loyalty.services.cards import card_activate, card_issue
from loyalty.services.members import member_create
from offers.models import Offer, OffersState
from offers.services import offer_save, offer_set_status
from pos.services import IssuedKey, api_key_create
from tests import factories

ONLINE_BONUS = {
    "filters": [
        {"key": "sales_channel", "params": {"channels": ["online_store"]}},
        {"key": "payment_method", "params": {"methods": ["online"]}},
    ],
    "actions": [{"key": "bonus", "params": {"kind": "fixed", "value": "100"}}],
}
HYPERMARKET_DISCOUNT = {
    "filters": [
        {"key": "points_of_sale", "params": {"attribute": "CustomTradeFormat", "values": "Hypermarket"}}
    ],
    "actions": [{"key": "discount", "params": {"kind": "percent", "value": "10"}}],
}


@dataclass
class World:
    partner: Partner
    hyper: PointOfSale
    online: PointOfSale
    other_partner: Partner
    other_store: PointOfSale


@pytest.fixture
def world(db) -> World:
    partner = factories.PartnerFactory(code="retail", name="Retail")
    hyper = PointOfSale.objects.create(
        partner=partner,
        code="hyper-1",
        name="Hypermarket 1",
        kind=SalesChannel.OFFLINE,
        attributes={"CustomTradeFormat": "Hypermarket"},
    )
    online = PointOfSale.objects.create(
        partner=partner, code="web", name="Online store", kind=SalesChannel.ONLINE_STORE
    )
    other = factories.PartnerFactory(code="other", name="Other retail")
    other_store = PointOfSale.objects.create(partner=other, code="other-1", name="Other store")
    group = factories.ProductGroupFactory(code="food", name="Food")
    factories.ProductFactory(sku="COFFEE", name="Coffee beans", group=group, price=Decimal("500"))
    factories.ProductFactory(sku="BREAD", name="Bread", group=group, price=Decimal("50"))
    for code, kind in (
        ("cash", PaymentMethodKind.CASH),
        ("card", PaymentMethodKind.BANK_CARD),
        ("online", PaymentMethodKind.ONLINE),
    ):
        PaymentMethod.objects.get_or_create(code=code, defaults={"name": code.title(), "kind": kind})
    ledger.currency_default()
    # Seeded by a migration; a transactional test's flush before this one removes it.
    OffersState.objects.get_or_create(pk=1)
    return World(partner, hyper, online, other, other_store)


def activated_card(point_of_sale: PointOfSale, *, phone: str, first_name: str = "Ольга", bonuses=0) -> Card:
    """An activated card of a new member with ``bonuses`` available."""
    member = member_create(first_name=first_name, phone=phone)
    card = card_activate(card=card_issue(member=member, point_of_sale=point_of_sale))
    if bonuses:
        account = ledger.account_get_or_create(member=member)
        ledger.bonus_accrue(account=account, amount=Decimal(bonuses), source=ledger.Source(type="operator"))
    return card


def offer_make(event: str, rule: dict, name: str) -> Offer:
    offer = offer_save(offer=Offer(), rules=[rule], name=name, event_type=event)
    return offer_set_status(offer=offer, status="active")


@pytest.fixture
def seed_offers(world) -> dict[str, Offer]:
    """Seed 004's worked offers: 100 bonuses for paying online in the online store; 10 %
    off in hypermarkets."""
    return {
        "online": offer_make("bonus_calculated", ONLINE_BONUS, "100 bonuses for paying online"),
        "hyper": offer_make("discount_calculated", HYPERMARKET_DISCOUNT, "10% in hypermarkets"),
    }


@pytest.fixture
def key(world) -> IssuedKey:
    return api_key_create(name="Tills", partner=world.partner)


@pytest.fixture
def other_key(world) -> IssuedKey:
    return api_key_create(name="Other tills", partner=world.other_partner)


def client_for(issued: IssuedKey) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.token}")
    return client


@pytest.fixture
def api(key) -> APIClient:
    return client_for(key)


@pytest.fixture
def other_api(other_key) -> APIClient:
    return client_for(other_key)


def post(client: APIClient, path: str, body: dict | None = None, idempotency_key: str | None = None):
    """A mutating call as a till makes it: JSON body and a fresh Idempotency-Key."""
    return client.post(
        f"/api/v1/pos/{path}",
        body if body is not None else {},
        format="json",
        HTTP_IDEMPOTENCY_KEY=idempotency_key or str(uuid.uuid4()),
    )


def get(client: APIClient, path: str, **params):
    return client.get(f"/api/v1/pos/{path}", params)
