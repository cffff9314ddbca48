import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum

from loyalty.models import EntryKind, LedgerEntry, LotRemainder, SourceType
from loyalty.services import ledger
from loyalty.services.errors import IdempotencyConflict, InsufficientBonuses

T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)
OFFER = ledger.Source(type=SourceType.OFFER, id="1", label="Welcome")


def day(n: int) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def totals(account):
    sums = LedgerEntry.objects.filter(account=account).aggregate(
        a=Sum("available_delta"), p=Sum("pending_delta")
    )
    return (ledger.points(sums["a"] or 0), ledger.points(sums["p"] or 0))


def test_spend_draws_earliest_expiring_lots_first(account):
    # given three lots with different expiry dates
    late = ledger.bonus_accrue(account=account, amount=100, source=OFFER, at=T0, expires_at=day(90))
    early = ledger.bonus_accrue(account=account, amount=50, source=OFFER, at=T0, expires_at=day(30))
    never = ledger.bonus_accrue(account=account, amount=70, source=OFFER, at=T0)
    # when
    op = ledger.bonus_spend(account=account, amount=120, source=OFFER, at=day(1))
    # then
    drawn = {e.lot.operation_id: -e.available_delta for e in op.entries.select_related("lot")}
    assert drawn == {early.pk: Decimal(50), late.pk: Decimal(70)}
    assert never.pk not in drawn
    account.refresh_from_db()
    assert account.available == Decimal(100)


def test_spend_more_than_available_is_refused_and_writes_nothing(account):
    ledger.bonus_accrue(account=account, amount=10, source=OFFER, at=T0)
    before = LedgerEntry.objects.count()
    with pytest.raises(InsufficientBonuses):
        ledger.bonus_spend(account=account, amount=Decimal("10.01"), source=OFFER, at=T0)
    assert LedgerEntry.objects.count() == before
    account.refresh_from_db()
    assert account.available == Decimal(10)


def test_pending_lot_cannot_be_spent_until_it_activates(account):
    # given a lot activating in 14 days
    ledger.bonus_accrue(account=account, amount=100, source=OFFER, at=T0, activates_at=day(14))
    account.refresh_from_db()
    assert (account.available, account.pending) == (0, 100)
    # then spending before is refused, the nightly run activates it, spending works
    with pytest.raises(InsufficientBonuses):
        ledger.bonus_spend(account=account, amount=1, source=OFFER, at=day(13))
    assert ledger.bonuses_activate(now=day(14)) == 1
    account.refresh_from_db()
    assert (account.available, account.pending) == (100, 0)
    ledger.bonus_spend(account=account, amount=100, source=OFFER, at=day(15))


def test_expiry_burns_what_is_left_of_a_lot(account):
    ledger.bonus_accrue(account=account, amount=100, source=OFFER, at=T0, expires_at=day(30))
    ledger.bonus_spend(account=account, amount=30, source=OFFER, at=day(1))
    # when
    assert ledger.bonuses_expire(now=day(30)) == 1
    assert ledger.bonuses_expire(now=day(31)) == 0
    # then
    account.refresh_from_db()
    assert account.available == 0
    expiry = LedgerEntry.objects.get(kind=EntryKind.EXPIRY)
    assert expiry.available_delta == Decimal(-70)
    assert expiry.operation.source_type == SourceType.REGULAR_TASK
    assert not LotRemainder.objects.exists()


def test_spend_does_not_use_expired_points_before_the_nightly_run(account):
    ledger.bonus_accrue(account=account, amount=100, source=OFFER, at=T0, expires_at=day(30))
    with pytest.raises(InsufficientBonuses):
        ledger.bonus_spend(account=account, amount=1, source=OFFER, at=day(31))
    # then the nightly run burns them
    ledger.bonuses_expire(now=day(31))
    account.refresh_from_db()
    assert account.available == 0
    assert totals(account) == (0, 0)


def test_same_idempotency_key_has_one_effect(account):
    ledger.bonus_accrue(account=account, amount=100, source=OFFER, at=T0)
    first = ledger.bonus_spend(account=account, amount=40, source=OFFER, idempotency_key="pos-1:r-9")
    again = ledger.bonus_spend(account=account, amount=40, source=OFFER, idempotency_key="pos-1:r-9")
    assert first.pk == again.pk
    account.refresh_from_db()
    assert account.available == 60
    with pytest.raises(IdempotencyConflict):
        ledger.bonus_spend(account=account, amount=41, source=OFFER, idempotency_key="pos-1:r-9")


def test_manual_adjustment_requires_a_reason_and_names_the_operator(account, admin_user):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        ledger.bonus_adjust(account=account, amount=50, operator=admin_user, reason=" ")
    assert "reason" in caught.value.message_dict
    op = ledger.bonus_adjust(account=account, amount=50, operator=admin_user, reason="Complaint #12")
    assert op.source_type == SourceType.OPERATOR and op.operator == admin_user
    ledger.bonus_adjust(account=account, amount=-20, operator=admin_user, reason="Correction")
    account.refresh_from_db()
    assert account.available == 30


def test_a_members_account_is_made_on_first_use_and_found_after(member, currency):
    # when the account is asked for twice
    made = ledger.account_get_or_create(member=member, currency=currency)
    found = ledger.account_get_or_create(member=member, currency=currency)

    # then the second call finds the row the first made, as stored
    assert made.pk == found.pk and not made._state.adding
    assert (found.member_id, found.currency_id, found.available, found.pending) == (
        member.pk,
        currency.pk,
        Decimal(0),
        Decimal(0),
    )
    assert abs(found.created_at - made.created_at) < dt.timedelta(seconds=1)
