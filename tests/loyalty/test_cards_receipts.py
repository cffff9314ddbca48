import datetime as dt
from decimal import Decimal

import pytest

from loyalty.events import event_handlers
from loyalty.models import BonusOperation, CardState, MemberEvent, OperationKind, ReceiptState
from loyalty.services import ledger
from loyalty.services.cards import card_activate, card_block, card_issue, card_number_valid, card_replace
from loyalty.services.errors import CardStateError
from loyalty.services.members import member_create
from loyalty.services.receipts import (
    AccrualInput,
    ConfirmInput,
    LineInput,
    receipt_confirm,
    receipt_record,
    receipt_refund,
)
from tests import factories


def test_issued_numbers_follow_the_configured_format(db):
    card = card_issue()
    assert card_number_valid(card.number)
    assert not card_number_valid(card.number[:-1] + str((int(card.number[-1]) + 1) % 10))


def test_card_lifecycle_and_replacement_keeps_the_balance(db):
    # given a member with an activated card and points
    member = member_create(first_name="Анна", phone="+79160000001")
    card = card_issue(member=member)
    card_activate(card=card)
    account = ledger.account_get_or_create(member=member)
    ledger.bonus_accrue(account=account, amount=150, source=ledger.Source(type="offer"))
    # when the card is lost and replaced
    card_block(card=card, reason="lost")
    new = card_replace(card=card, reason="lost")
    # then the new card is active, the old one points at it, the balance is the member's
    card.refresh_from_db()
    assert card.state == CardState.REPLACED and card.replaced_by == new
    assert new.state == CardState.ACTIVATED and new.member == member
    account.refresh_from_db()
    assert account.available == 150
    assert MemberEvent.objects.filter(member=member, event_type="card_replaced").exists()


def test_a_blocked_card_cannot_buy(db, point_of_sale):
    card = factories.CardFactory()
    card = card_block(card=card, reason="fraud")
    with pytest.raises(CardStateError):
        receipt_record(
            point_of_sale=point_of_sale,
            external_id="1",
            card=card,
            lines=[LineInput(sku="x", quantity=Decimal(1), price=Decimal(10))],
        )


def test_partial_refund_returns_a_share_of_paid_and_accrued_bonuses(db, point_of_sale):
    # given a member who paid 100 bonuses on a 1000 receipt and earned 50
    card = factories.CardFactory()
    account = ledger.account_get_or_create(member=card.member)
    ledger.bonus_accrue(account=account, amount=300, source=ledger.Source(type="offer"))
    receipt = receipt_record(
        point_of_sale=point_of_sale,
        external_id="R1",
        card=card,
        lines=[
            LineInput(sku="a", quantity=Decimal(2), price=Decimal(250)),
            LineInput(sku="b", quantity=Decimal(1), price=Decimal(500)),
        ],
    )
    receipt_confirm(
        receipt=receipt,
        confirm=ConfirmInput(bonus_payment=Decimal(100), accruals=[AccrualInput(amount=Decimal(50))]),
    )
    account.refresh_from_db()
    assert account.available == 250
    # when line b (half the receipt) comes back
    refund = receipt_refund(
        receipt=receipt,
        external_id="RF1",
        lines=[LineInput(sku="b", quantity=Decimal(1), price=Decimal(500))],
    )
    # then half of the paid bonuses return and half of the accrued are taken back
    account.refresh_from_db()
    assert account.available == 250 + 50 - 25
    receipt.refresh_from_db()
    assert receipt.state == ReceiptState.PARTLY_REFUNDED
    assert refund.refund_of == receipt and refund.total == 500
    # and refunding the rest settles everything
    receipt_refund(receipt=receipt, external_id="RF2")
    account.refresh_from_db()
    assert account.available == 300
    receipt.refresh_from_db()
    assert receipt.state == ReceiptState.REFUNDED


def test_refund_into_an_expired_lot_stays_expired(db, point_of_sale):
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    member = factories.MemberFactory()
    account = ledger.account_get_or_create(member=member)
    ledger.bonus_accrue(
        account=account,
        amount=100,
        source=ledger.Source(type="offer"),
        at=t0,
        expires_at=t0 + dt.timedelta(days=10),
    )
    receipt = receipt_record(
        point_of_sale=point_of_sale,
        external_id="R",
        member=member,
        purchased_at=t0,
        lines=[LineInput(sku="a", quantity=Decimal(1), price=Decimal(500))],
    )
    ledger.bonus_spend(
        account=account,
        amount=60,
        at=t0 + dt.timedelta(days=1),
        source=ledger.Source(type="receipt", receipt=receipt),
    )
    receipt.state = ReceiptState.CONFIRMED
    receipt.save()
    ledger.bonuses_expire(now=t0 + dt.timedelta(days=11))
    # when refunded after the lot expired
    result = ledger.bonus_refund(receipt=receipt, at=t0 + dt.timedelta(days=12))
    # then nothing becomes spendable again
    account.refresh_from_db()
    assert account.available == 0
    assert result.restored_expired == 60 and result.restored == 0


def test_refund_after_the_accrued_points_expired_takes_back_nothing(db, point_of_sale):
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    member = factories.MemberFactory()
    receipt = receipt_record(
        point_of_sale=point_of_sale,
        external_id="R",
        member=member,
        purchased_at=t0,
        lines=[LineInput(sku="a", quantity=Decimal(1), price=Decimal(500))],
    )
    receipt_confirm(
        receipt=receipt,
        confirm=ConfirmInput(
            accruals=[
                AccrualInput(amount=Decimal(28), activates_at=t0, expires_at=t0 + dt.timedelta(days=90))
            ],
        ),
    )
    ledger.bonuses_expire(now=t0 + dt.timedelta(days=91))
    # when the purchase comes back after its points expired, with nothing else to take
    refund = receipt_refund(receipt=receipt, external_id="RF", at=t0 + dt.timedelta(days=96))
    # then the refund is recorded, nothing is taken back and the balance stays at zero
    account = ledger.account_get_or_create(member=member)
    assert account.available == 0 and account.pending == 0
    assert refund.bonus_accrued == 0 and refund.bonus_paid == 0
    receipt.refresh_from_db()
    assert receipt.state == ReceiptState.REFUNDED
    assert not BonusOperation.objects.filter(kind=OperationKind.REFUND).exists()


def test_events_reach_subscribers_only_after_commit(db, django_capture_on_commit_callbacks):
    seen = []
    handler = event_handlers.register("registration_completed")(lambda event: seen.append(event.member_id))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            member = member_create(first_name="Анна", phone="+79160000002")
            assert seen == []
        assert seen == [member.pk]
    finally:
        event_handlers.unregister("registration_completed", handler)


def test_unknown_event_types_are_refused():
    with pytest.raises(ValueError):
        event_handlers.register("no_such_event")


def test_friend_purchase_is_recorded_for_the_referrer(db, point_of_sale):
    referrer = member_create(first_name="Анна", phone="+79160000003")
    friend = member_create(first_name="Олег", phone="+79160000004", referrer=referrer)
    receipt = receipt_record(
        point_of_sale=point_of_sale,
        external_id="F1",
        member=friend,
        lines=[LineInput(sku="a", quantity=Decimal(1), price=Decimal(10))],
    )
    receipt_confirm(receipt=receipt)
    assert MemberEvent.objects.filter(member=referrer, event_type="friend_invited").count() == 1
    assert MemberEvent.objects.filter(member=referrer, event_type="friend_purchase").count() == 1


def test_a_sold_product_cannot_be_deleted_and_a_deleted_receipt_takes_its_lines(db):
    # given a receipt with a line of a catalog product (the lines' keys are checked by
    # Django, not by the database)
    from django.db.models import ProtectedError

    from loyalty.models import Receipt, ReceiptLine

    product = factories.ProductFactory()
    receipt = receipt_record(
        point_of_sale=factories.PointOfSaleFactory(),
        external_id="R-keys",
        lines=[LineInput(sku=product.sku, quantity=Decimal(1), price=Decimal(10))],
    )
    (line,) = receipt.lines.all()
    assert line.product_id == product.pk

    # when the product is deleted, it is refused
    with pytest.raises(ProtectedError):
        product.delete()

    # and when the receipt is deleted, its lines go with it
    Receipt.objects.filter(pk=receipt.pk).delete()
    assert not ReceiptLine.objects.filter(pk=line.pk).exists()
    product.delete()
