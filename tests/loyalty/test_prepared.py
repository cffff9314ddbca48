"""A prepared read answers exactly what the ORM's select_related would."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Model

from loyalty.models import (
    BonusAccount,
    BonusOperation,
    Card,
    Currency,
    MemberEvent,
    PaymentMethod,
    Receipt,
    ReceiptLine,
    ReceiptPayment,
    Status,
)
from loyalty.prepared import PreparedRead, insert_family, insert_one, insert_unless_exists
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


def test_insert_family_stores_a_receipt_with_its_lines_and_payments_once(point_of_sale):
    # given a new receipt, lines whose text needs escaping in JSON and SQL, and a payment
    product = ProductFactory()
    card_method = PaymentMethod.objects.get_or_create(code="card", defaults={"name": "Card"})[0]

    def family(external_id, names):
        receipt = Receipt(
            point_of_sale=point_of_sale,
            external_id=external_id,
            purchased_at=dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC),
            amount=Decimal("10.50"),
            total=Decimal("10.50"),
        )
        lines = [
            ReceiptLine(
                position=i,
                product=product if i % 2 else None,
                sku=f"SKU-{i}",
                name=name,
                quantity=Decimal("1.500") if i != 2 else Decimal("1E+1"),
                price=Decimal("99.90"),
                amount=Decimal("149.85"),
                discount=Decimal(i),
            )
            for i, name in enumerate(names, start=1)
        ]
        payments = [ReceiptPayment(method=card_method, amount=Decimal("10.50"))]
        return receipt, lines, payments

    names = ['Кофе "Арабика" 250 г', "back\\slash", "", "it's", "tab\tand\nnewline"]
    receipt, lines, payments = family("R-3", names)
    unique = ("point_of_sale", "kind", "external_id")

    # when it is inserted, and then the same receipt id with other lines and no payment
    inserted = insert_family(
        receipt,
        unique_fields=unique,
        children=[(ReceiptLine, "receipt", lines), (ReceiptPayment, "receipt", payments)],
    )
    again, again_lines, _payments = family("R-3", ["other"])
    inserted_again = insert_family(
        again,
        unique_fields=unique,
        children=[(ReceiptLine, "receipt", again_lines), (ReceiptPayment, "receipt", [])],
    )

    # then the first is stored whole, each object has its row's key, in order, and the
    # second changed nothing
    assert inserted and not inserted_again and again.pk is None and again_lines[0].pk is None
    assert Receipt.objects.get(pk=receipt.pk).total == Decimal("10.50") and not receipt._state.adding
    stored = {ln.pk: ln for ln in ReceiptLine.objects.filter(receipt=receipt)}
    assert [ln.pk for ln in lines] == sorted(stored) and all(not ln._state.adding for ln in lines)
    for line in lines:
        assert _fields(stored[line.pk]) == _fields(line)
    assert [stored[ln.pk].name for ln in lines] == names
    assert stored[lines[1].pk].quantity == Decimal("10")
    (payment,) = ReceiptPayment.objects.filter(receipt=receipt)
    assert (payment.pk, payment.method_id, payment.amount) == (
        payments[0].pk,
        card_method.pk,
        Decimal("10.50"),
    )
    assert lines[0].receipt is receipt and payments[0].receipt_id == receipt.pk


@pytest.mark.postgres  # elsewhere insert_family is insert_unless_exists and bulk_create
def test_insert_family_refuses_children_that_do_not_point_at_the_parent(point_of_sale):
    receipt = Receipt(
        point_of_sale=point_of_sale, external_id="R-4", purchased_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(ValueError, match="loyalty.ReceiptLine.product does not point at loyalty.Receipt"):
        insert_family(
            receipt,
            unique_fields=("point_of_sale", "kind", "external_id"),
            children=[(ReceiptLine, "product", [])],
        )


@pytest.mark.postgres  # elsewhere insert_family is bulk_create, which prepares every value
def test_insert_family_refuses_children_with_values_it_would_not_prepare(point_of_sale):
    receipt = Receipt(
        point_of_sale=point_of_sale, external_id="R-5", purchased_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(
        ValueError, match=r"insert_family does not write loyalty\.BonusOperation\.\w+ \(DateTimeField\)"
    ):
        insert_family(
            receipt,
            unique_fields=("point_of_sale", "kind", "external_id"),
            children=[(BonusOperation, "receipt", [])],
        )


def test_insert_one_stores_a_row_as_save_would(point_of_sale):
    # given a new event with a JSON payload, a time and a relation, and the same by save()
    member = MemberFactory()
    at = dt.datetime(2026, 5, 1, 10, 30, tzinfo=dt.UTC)

    def event():
        return MemberEvent(
            event_type="app_installed",
            member=member,
            point_of_sale=point_of_sale,
            channel="app",
            payload={"platform": "ios", "name": "Анна «Кофе»", "n": 2, "nested": {"a": [1, None]}},
            occurred_at=at,
        )

    saved = event()
    saved.save()

    # when
    inserted = insert_one(event())

    # then the stored row holds what save() stores, the key set and the instance saved
    stored = MemberEvent.objects.get(pk=inserted.pk)
    assert inserted.pk != saved.pk and not inserted._state.adding
    expected = {**_fields(MemberEvent.objects.get(pk=saved.pk)), "id": inserted.pk}
    assert {**_fields(stored), "created_at": expected["created_at"]} == expected
    assert stored.created_at is not None and stored.payload["nested"] == {"a": [1, None]}
