"""A prepared read answers exactly what the ORM's select_related would."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Model

from loyalty.models import BonusAccount, Card, Currency, MemberEvent, Receipt, ReceiptLine, Status
from loyalty.prepared import PreparedRead, insert_many, insert_unless_exists
from tests.factories import CardFactory, MemberFactory, ProductFactory

CARD_WITH_MEMBER = PreparedRead(Card, related=("member", "member__status"), where="{t}.number = %s")
ACCOUNTS = PreparedRead(
    BonusAccount, related=("currency",), where="{t}.member_id = %s", order_by="{currency}.code"
)


def _fields(instance: Model) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


@pytest.fixture
def gold(db):
    return Status.objects.create(code="gold", name="Gold", rank=2, qualifying_total=Decimal("15000.50"))


def test_a_card_comes_with_its_member_and_status_as_select_related_gives_them(gold):
    # given a card of a member with a status, a birth date, custom fields and times
    member = MemberFactory(
        status=gold, birth_date=dt.date(1990, 2, 28), custom_fields={"pet": "cat", "kids": 2}
    )
    card = CardFactory(member=member, activated_at=dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC))
    expected = Card.objects.select_related("member", "member__status").get(number=card.number)

    # when
    found = CARD_WITH_MEMBER.first(card.number)

    # then every value is the ORM's, typed as the ORM types it, and the relations are loaded
    assert _fields(found) == _fields(expected)
    assert _fields(found.member) == _fields(expected.member)
    assert _fields(found.member.status) == _fields(expected.member.status)
    assert found.member.custom_fields == {"pet": "cat", "kids": 2}
    assert found.activated_at.tzinfo is not None
    assert found.member.status.qualifying_total == Decimal("15000.50")
    assert not found._state.adding and found.member._state.db == "default"


def test_missing_relations_are_none_without_another_query(db, django_assert_num_queries):
    # given a card bound to no member, and a member without a status
    loose = CardFactory(member=None)
    plain = CardFactory(member=MemberFactory(status=None))

    # when / then: one query each, and reading the empty relations asks nothing more
    with django_assert_num_queries(2):
        found_loose = CARD_WITH_MEMBER.first(loose.number)
        found_plain = CARD_WITH_MEMBER.first(plain.number)
        assert found_loose.member is None
        assert found_plain.member.status is None
        assert found_plain.member.pk == plain.member_id


def test_nothing_found_is_none_and_all_keeps_the_order(member):
    # given two currencies' accounts of one member
    for code in ("zeta", "alpha"):
        currency = Currency.objects.create(code=code, name=code.title())
        BonusAccount.objects.create(member=member, currency=currency, available=Decimal("12.34"))

    # when
    missing = CARD_WITH_MEMBER.first("no-such-card")
    accounts = ACCOUNTS.all(member.pk)

    # then
    assert missing is None
    assert [(a.currency.code, a.available) for a in accounts] == [
        ("alpha", Decimal("12.34")),
        ("zeta", Decimal("12.34")),
    ]


def test_insert_unless_exists_inserts_once_and_then_leaves_the_stored_row(point_of_sale):
    # given a receipt id not yet stored at the point of sale
    def sale(total):
        return Receipt(
            point_of_sale=point_of_sale,
            external_id="R-1",
            purchased_at=dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC),
            amount=Decimal(total),
            total=Decimal(total),
        )

    first, second = sale("10.50"), sale("99.00")
    unique = ("point_of_sale", "kind", "external_id")

    # when it is inserted twice
    inserted = insert_unless_exists(first, unique_fields=unique)
    again = insert_unless_exists(second, unique_fields=unique)

    # then the first is stored with every value and the second changes nothing
    assert inserted and not again and second.pk is None
    stored = Receipt.objects.get(pk=first.pk)
    assert (stored.total, stored.kind, stored.state) == (Decimal("10.50"), "sale", "calculated")
    assert stored.purchased_at == first.purchased_at and not first._state.adding


def test_insert_many_stores_every_row_as_bulk_create_would_and_sets_their_keys(point_of_sale):
    # given a stored receipt and lines with and without a product, one with a long name
    product = ProductFactory()
    receipt = Receipt.objects.create(
        point_of_sale=point_of_sale,
        external_id="R-2",
        purchased_at=dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC),
    )
    lines = [
        ReceiptLine(
            receipt=receipt,
            position=i,
            product=product if i % 2 else None,
            sku=f"SKU-{i}",
            name="Кофе " * 40 if i == 3 else "",
            quantity=Decimal("1.500"),
            price=Decimal("99.90"),
            amount=Decimal("149.85"),
            discount=Decimal(i),
        )
        for i in range(1, 6)
    ]

    # when
    insert_many(lines)

    # then each object has its row's key and the rows hold every value, in order
    stored = {ln.pk: ln for ln in ReceiptLine.objects.filter(receipt=receipt)}
    assert [ln.pk for ln in lines] == sorted(stored) and all(not ln._state.adding for ln in lines)
    for line in lines:
        assert _fields(stored[line.pk]) == _fields(line)


@pytest.mark.postgres  # elsewhere insert_many is bulk_create, which prepares every value
def test_insert_many_refuses_a_model_with_values_it_would_not_prepare(db):
    event = MemberEvent(event_type="app_installed", payload={"platform": "ios"})
    with pytest.raises(ValueError, match="insert_many does not write loyalty.MemberEvent"):
        insert_many([event])
