"""A confirmation answers with the member's balance after it; the ledger's write tells it
on PostgreSQL (no read after), and it must be exactly what the account holds."""

from decimal import Decimal

import pytest

from loyalty.models import BonusAccount
from loyalty.services import ledger
from loyalty.services.cards import card_activate, card_issue
from loyalty.services.members import member_create
from tests.pos.conftest import post

pytestmark = pytest.mark.django_db

ONLINE = {"point_of_sale": "web", "lines": [{"sku": "COFFEE", "quantity": "2", "price": "500.00"}]}


@pytest.fixture
def card(world):
    member = member_create(first_name="Olga", phone="+79160000001")
    return card_activate(card=card_issue(member=member, point_of_sale=world.online))


def confirm(api, card, external_id, **extra):
    response = post(
        api,
        "receipts/confirm",
        {
            **ONLINE,
            "card": card.number,
            "external_id": external_id,
            "payments": [{"method": "online", "amount": "1000.00"}],
            **extra,
        },
    )
    assert response.status_code == 201, response.content
    return response.json()


def held(card) -> str:
    return str(BonusAccount.objects.get(member=card.member, currency__is_default=True).available)


def test_the_answered_balance_is_what_the_account_holds(api, card, seed_offers):
    # a first purchase makes the account and earns 100
    first = confirm(api, card, "W-1")
    assert first["balance"] == held(card) == "100.00"
    # someone else's change between the till's purchases (an operator's accrual)
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=card.member),
        amount=Decimal("7.50"),
        source=ledger.Source(type="manual", id="op-1", label="goodwill"),
    )
    # paying 30 with bonuses and earning 100 on one receipt
    second = confirm(api, card, "W-2", bonus_payment="30.00")
    assert second["bonus_paid"] == "30.00" and second["bonus_accrued"] == "100.00"
    assert second["balance"] == held(card) == "177.50"
