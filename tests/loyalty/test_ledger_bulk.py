"""Set-wise accrual: the same ledger rows as one accrual per account, once per key."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from loyalty.models import BonusAccount, BonusOperation, LedgerEntry, LotRemainder, Member, SourceType
from loyalty.services import ledger
from tests import factories

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
GIFT = ledger.Source(type=SourceType.REGULAR_TASK, id="7", label="Birthday")
MEMBERS = (
    f"SELECT id AS member_id, 'gift:' || id AS idempotency_key FROM {Member._meta.db_table} WHERE id IN "
)


def gift_to(members, **kwargs):
    ids = [m.pk for m in members]
    sql = MEMBERS + "(" + ", ".join(["%s"] * len(ids)) + ")"
    kwargs.setdefault("at", T0)
    kwargs.setdefault("source", GIFT)
    kwargs.setdefault("amount", Decimal("150"))
    return ledger.bonus_accrue_bulk(members_sql=sql, params=ids, **kwargs)


def assert_ledger_consistent(account):
    """The account's totals are the sum of its entries, each remainder the sum of its lot's."""
    account.refresh_from_db()
    sums = LedgerEntry.objects.filter(account=account).aggregate(
        a=Sum("available_delta"), p=Sum("pending_delta")
    )
    assert (account.available, account.pending) == (
        ledger.points(sums["a"] or 0),
        ledger.points(sums["p"] or 0),
    )
    for r in LotRemainder.objects.filter(account=account):
        lot = LedgerEntry.objects.filter(lot_id=r.lot_id).aggregate(
            a=Sum("available_delta"), p=Sum("pending_delta")
        )
        assert (r.available, r.pending) == (ledger.points(lot["a"]), ledger.points(lot["p"]))


def shape(account):
    """What an accrual left on an account, without ids."""
    account.refresh_from_db()
    return {
        "totals": (account.available, account.pending),
        "remainders": sorted(
            LotRemainder.objects.filter(account=account).values_list(
                "available", "pending", "activates_at", "expires_at"
            )
        ),
        "entries": sorted(
            LedgerEntry.objects.filter(account=account).values_list(
                "kind", "available_delta", "pending_delta", "created_at"
            )
        ),
        "operations": sorted(
            BonusOperation.objects.filter(account=account).values_list(
                "kind", "amount", "source_type", "source_id", "source_label", "created_at"
            )
        ),
        "lots": sorted(account.lots.values_list("amount", "activates_at", "expires_at", "created_at")),
    }


def test_bulk_accrual_writes_what_one_accrual_per_account_writes(currency):
    # given two members with the same history, one accrued to one by one, the other set-wise
    one, many = factories.MemberFactory(), factories.MemberFactory()
    for member in (one, many):
        account = ledger.account_get_or_create(member=member, currency=currency)
        ledger.bonus_accrue(account=account, amount=40, source=GIFT, at=T0 - dt.timedelta(days=3))
    expires = T0 + dt.timedelta(days=30)
    # when
    single = ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=one, currency=currency),
        amount=Decimal("150"),
        source=GIFT,
        at=T0,
        expires_at=expires,
        idempotency_key=f"gift:{one.pk}-single",
    )
    written = gift_to([many], currency=currency, expires_at=expires)
    # then
    assert written == 1 and single.pk
    a_one = BonusAccount.objects.get(member=one)
    a_many = BonusAccount.objects.get(member=many)
    assert shape(a_many) == shape(a_one)
    assert shape(a_many)["totals"] == (Decimal("190"), Decimal("0"))
    assert BonusOperation.objects.get(idempotency_key=f"gift:{many.pk}").account_id == a_many.pk
    assert_ledger_consistent(a_many)


def test_bulk_accrual_opens_missing_accounts_and_is_once_per_key(currency):
    # given a member without an account and one whose key was already used
    fresh, done = factories.MemberFactory(), factories.MemberFactory()
    gift_to([done], currency=currency)
    # when the set-wise accrual runs for both, twice
    first = gift_to([fresh, done], currency=currency)
    again = gift_to([fresh, done], currency=currency)
    # then each key accrued exactly once
    assert (first, again) == (1, 0)
    for member in (fresh, done):
        account = BonusAccount.objects.get(member=member, currency=currency)
        assert account.available == Decimal("150")
        assert account.lots.count() == 1
        assert_ledger_consistent(account)


def test_a_key_repeated_in_the_source_accrues_once(currency):
    member = factories.MemberFactory()
    sql = MEMBERS + "(%s) UNION ALL " + MEMBERS + "(%s)"
    written = ledger.bonus_accrue_bulk(
        members_sql=sql, params=[member.pk, member.pk], currency=currency, amount=10, source=GIFT, at=T0
    )
    assert written == 1
    account = BonusAccount.objects.get(member=member)
    assert account.available == 10
    assert_ledger_consistent(account)


def test_bulk_lots_activate_expire_and_spend_like_any_other(currency):
    # given lots pending for a week, expiring after a month
    members = [factories.MemberFactory() for _ in range(3)]
    gift_to(
        members,
        currency=currency,
        amount=Decimal("99.99"),
        activates_at=T0 + dt.timedelta(days=7),
        expires_at=T0 + dt.timedelta(days=30),
    )
    account = BonusAccount.objects.get(member=members[0])
    assert (account.available, account.pending) == (0, Decimal("99.99"))
    # when the nightly runs pass and a member spends
    assert ledger.bonuses_activate(now=T0 + dt.timedelta(days=7)) == 3
    ledger.bonus_spend(account=account, amount=Decimal("9.99"), source=GIFT, at=T0 + dt.timedelta(days=8))
    assert ledger.bonuses_expire(now=T0 + dt.timedelta(days=30)) == 3
    # then everything adds up
    for member in members:
        acc = BonusAccount.objects.get(member=member)
        assert (acc.available, acc.pending) == (0, 0)
        assert_ledger_consistent(acc)


def test_bulk_accrual_refuses_what_a_single_accrual_refuses(currency):
    member = factories.MemberFactory()
    with pytest.raises(ValueError):
        gift_to([member], currency=currency, amount=0)
    with pytest.raises(ValueError):
        gift_to([member], currency=currency, expires_at=T0 - dt.timedelta(days=1))
    assert not BonusOperation.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_accruals_accrue_once_per_key(currency):
    # given 50 members, half with an account already
    members = [factories.MemberFactory() for _ in range(50)]
    for member in members[::2]:
        ledger.account_get_or_create(member=member, currency=currency)
    barrier = threading.Barrier(4)
    outcomes = []

    def worker():
        try:
            barrier.wait()
            outcomes.append(gift_to(members, currency=currency))
        except Exception as exc:  # noqa: BLE001 - the outcome is what we assert on
            outcomes.append(exc)
        finally:
            connection.close()

    # when four connections run the same accrual at once
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # then every key accrued once in all
    assert sum(o for o in outcomes if not isinstance(o, Exception)) == 50, outcomes
    assert BonusOperation.objects.count() == 50
    for account in BonusAccount.objects.all():
        assert account.available == Decimal("150")
        assert_ledger_consistent(account)
