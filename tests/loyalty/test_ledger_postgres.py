"""Concurrency of the ledger, proven with real parallel connections on PostgreSQL."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from loyalty.models import LedgerEntry, SourceType
from loyalty.services import ledger
from loyalty.services.errors import InsufficientBonuses

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
SOURCE = ledger.Source(type=SourceType.OFFER, id="1")


def run_in_threads(n, fn):
    barrier = threading.Barrier(n)
    outcomes = []
    lock = threading.Lock()

    def worker(i):
        try:
            barrier.wait()
            result = fn(i)
        except Exception as exc:  # noqa: BLE001 - the outcome is what we assert on
            result = exc
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def test_parallel_spends_of_one_account_never_overdraw(account):
    # given 100 points in three lots
    for amount in (40, 35, 25):
        ledger.bonus_accrue(account=account, amount=amount, source=SOURCE)
    # when 24 connections each try to spend 10 at the same moment
    outcomes = run_in_threads(
        24, lambda i: ledger.bonus_spend(account=account, amount=Decimal(10), source=SOURCE)
    )
    # then exactly ten succeed, the rest are refused, and the balance is zero, not negative
    assert sum(1 for o in outcomes if isinstance(o, InsufficientBonuses)) == 14
    assert sum(1 for o in outcomes if not isinstance(o, Exception)) == 10
    account.refresh_from_db()
    assert account.available == 0
    assert LedgerEntry.objects.filter(account=account).aggregate(s=Sum("available_delta"))["s"] == 0


def test_parallel_repeats_of_one_idempotency_key_have_one_effect(account):
    ledger.bonus_accrue(account=account, amount=100, source=SOURCE)
    outcomes = run_in_threads(
        20,
        lambda i: ledger.bonus_spend(
            account=account, amount=Decimal(30), source=SOURCE, idempotency_key="receipt-42"
        ),
    )
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert len({o.pk for o in outcomes}) == 1
    account.refresh_from_db()
    assert account.available == 70


def test_nightly_expiry_and_parallel_spends_agree(account):
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    for _ in range(5):
        ledger.bonus_accrue(
            account=account,
            amount=20,
            source=SOURCE,
            at=now - dt.timedelta(days=2),
            expires_at=now + dt.timedelta(seconds=1),
        )
    ledger.bonus_accrue(account=account, amount=50, source=SOURCE)
    later = now + dt.timedelta(seconds=2)

    def act(i):
        if i == 0:
            return ledger.bonuses_expire(now=later)
        return ledger.bonus_spend(account=account, amount=Decimal(10), source=SOURCE, at=later)

    outcomes = run_in_threads(9, act)
    account.refresh_from_db()
    entries = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("available_delta"))["s"]
    # the 100 expiring points burned whoever came first; only the 50 lasting ones paid
    spent = [o for o in outcomes if not isinstance(o, int | Exception)]
    assert len(spent) == 5
    assert account.available == entries == 0


def test_parallel_first_accruals_of_a_member_share_one_new_account(member, currency):
    # given a member without an account in the currency
    # when 12 connections accrue to it at the same moment, each making the account first
    def accrue(i):
        account = ledger.account_get_or_create(member=member, currency=currency)
        ledger.bonus_accrue(account=account, amount=Decimal(5), source=SOURCE, idempotency_key=f"first-{i}")
        return account.pk

    outcomes = run_in_threads(12, accrue)

    # then all of them found the one account, which holds every accrual
    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert len(set(outcomes)) == 1
    (account,) = member.bonus_accounts.filter(currency=currency)
    assert account.pk == outcomes[0] and account.available == Decimal(60)
