"""Pricing reads the member's balances right after the card: on PostgreSQL the card's
read brings the accounts with it, and they must be what the accounts hold."""

from decimal import Decimal

import pytest
from django.db import connection

from loyalty.models import BonusAccount, Currency
from loyalty.services import ledger
from loyalty.services.cards import card_activate, card_issue
from loyalty.services.members import member_create
from loyalty.services.receipts import PaymentInput
from offers.context import LineIn, member_info
from offers.services import purchase_confirm
from pos import scoping

pytestmark = pytest.mark.django_db


@pytest.fixture
def card(world):
    member = member_create(first_name="Olga", phone="+79160000001")
    return card_activate(card=card_issue(member=member, point_of_sale=world.online))


def test_a_cards_member_comes_with_the_accounts_it_holds(world, key, card, django_assert_num_queries):
    # given the member's accounts in two currencies, with available and pending points
    gift = Currency.objects.create(code="gift", name="Gift")
    source = ledger.Source(type="manual", id="t", label="test")
    main = ledger.account_get_or_create(member=card.member)
    ledger.bonus_accrue(account=main, amount=Decimal("300.25"), source=source, idempotency_key="a")
    other = ledger.account_get_or_create(member=card.member, currency=gift)
    ledger.bonus_accrue(account=other, amount=Decimal("0.01"), source=source, idempotency_key="b")
    expected = sorted(
        (a.pk, a.currency.code, a.currency.is_default, a.available, a.pending)
        for a in BonusAccount.objects.filter(member=card.member).select_related("currency")
    )

    # when the till's card is read
    found = scoping.card_get(key.api_key, card.number)

    # then the member's accounts are those, with their currencies, read without a query
    # more on PostgreSQL (elsewhere pricing reads them)
    if connection.vendor == "postgresql":
        with django_assert_num_queries(0):
            info = member_info(found.member, frozenset({"balances"}), found.member.registered_at)
            accounts = list(found.member.bonus_accounts.all())
            held = sorted(
                (a.pk, a.currency.code, a.currency.is_default, a.available, a.pending) for a in accounts
            )
        assert held == expected
    else:
        info = member_info(found.member, frozenset({"balances"}), found.member.registered_at)
    assert info.balances == {"": Decimal("300.25"), "gift": Decimal("0.01")}
    assert info.account_ids == {main.currency_id: main.pk, gift.pk: other.pk}


def test_a_member_without_accounts_has_none(world, key, card, django_assert_num_queries):
    found = scoping.card_get(key.api_key, card.number)
    with django_assert_num_queries(0 if connection.vendor == "postgresql" else 1):
        info = member_info(found.member, frozenset({"balances"}), found.member.registered_at)
    assert info.balances == {} and info.account_ids == {}


@pytest.mark.postgres
def test_the_accounts_currencies_come_from_the_cache_pricing_shares(
    world, key, card, django_assert_num_queries
):
    # given the member's accounts in two currencies, and the currencies cached by pricing
    from loyalty.selectors import currencies_by_code

    gift = Currency.objects.create(code="gift", name="Gift")
    ledger.account_get_or_create(member=card.member)
    ledger.account_get_or_create(member=card.member, currency=gift)
    assert "gift" in currencies_by_code({"gift"})

    # when the till's card is read: one query, the card with its member and accounts
    with django_assert_num_queries(1):
        found = scoping.card_get(key.api_key, card.number)
        codes = sorted(a.currency.code for a in found.member.bonus_accounts.all())

    # then each account has its currency without a query of its own
    assert codes == sorted([gift.code, ledger.currency_default().code])


def test_a_first_accrual_makes_the_account_without_looking_for_it(world, key, card, seed_offers):
    # given a member without accounts, read with the card as pricing reads them
    found = scoping.card_get(key.api_key, card.number)
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    # when the member's first purchase accrues bonuses
    with connection.execute_wrapper(record):
        receipt, _calc = purchase_confirm(
            point_of_sale=world.online,
            external_id="first",
            lines=[LineIn(sku="COFFEE", quantity=Decimal("1"), price=Decimal("500"))],
            payments=[PaymentInput("online", Decimal("500"))],
            card=found,
        )

    # then the account is made at once: pricing read the member's accounts (none), and
    # the accrual does not look for the account again before making it
    account = BonusAccount.objects.get(member=card.member)
    assert account.available == Decimal("100.00") == receipt.bonus_accrued
    looked_up = [s for s in statements if "member_id = %s AND t.currency_id = %s" in s]
    assert looked_up == []


def test_an_account_made_meanwhile_is_used_not_made_twice(world, card):
    # given an account made after the caller read the member's accounts (none then)
    made = ledger.account_get_or_create(member=card.member)

    # when the caller makes it as missing
    again = ledger.account_get_or_create(member=card.member, missing=True)

    # then it is the same account, read after the insert found it there
    assert again.pk == made.pk
    assert BonusAccount.objects.filter(member=card.member).count() == 1
