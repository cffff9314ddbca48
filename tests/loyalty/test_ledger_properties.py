"""Ledger invariants under any sequence of operations (hypothesis stateful test)."""

import contextlib
import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from loyalty.models import EntryKind, LedgerEntry, LotRemainder, ReceiptState
from loyalty.services import ledger
from loyalty.services.errors import InsufficientBonuses
from loyalty.services.receipts import ConfirmInput, LineInput, receipt_confirm, receipt_record, receipt_refund
from tests import factories

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.member = factories.MemberFactory()
        self.pos = factories.PointOfSaleFactory()
        self.account = ledger.account_get_or_create(member=self.member)
        self.now = T0
        self.receipts = []
        self.n = 0

    def _source(self):
        return ledger.Source(type="offer", id="p", label="prop")

    @rule(amount=amounts, delay=st.integers(0, 20), lifetime=st.one_of(st.none(), st.integers(1, 60)))
    def accrue(self, amount, delay, lifetime):
        activates = self.now + dt.timedelta(days=delay)
        expires = activates + dt.timedelta(days=lifetime) if lifetime else None
        ledger.bonus_accrue(
            account=self.account,
            amount=amount,
            source=self._source(),
            at=self.now,
            activates_at=activates,
            expires_at=expires,
        )

    @rule(amount=amounts)
    def spend(self, amount):
        with contextlib.suppress(InsufficientBonuses):
            ledger.bonus_spend(account=self.account, amount=amount, source=self._source(), at=self.now)

    @rule(price=amounts, pay=st.decimals(min_value=0, max_value=1, places=2), earn=st.integers(0, 50))
    def purchase(self, price, pay, earn):
        self.n += 1
        receipt = receipt_record(
            point_of_sale=self.pos,
            external_id=f"r{self.n}",
            member=self.member,
            lines=[LineInput(sku="x", quantity=Decimal(1), price=price)],
            purchased_at=self.now,
        )
        self.account.refresh_from_db()
        bonus = min(ledger.points(price * pay), self.account.available)
        accruals = [ledger_accrual(earn, self.now)] if earn else []
        try:
            receipt_confirm(receipt=receipt, confirm=ConfirmInput(bonus_payment=bonus, accruals=accruals))
        except InsufficientBonuses:
            return  # some points expired just now; nothing was written
        self.receipts.append(receipt)

    @precondition(
        lambda self: any(r.state == ReceiptState.CALCULATED for r in self.receipts) or self.receipts
    )
    @rule(data=st.data())
    def refund(self, data):
        receipt = data.draw(st.sampled_from(self.receipts))
        receipt.refresh_from_db()
        if receipt.state != ReceiptState.CONFIRMED:
            return
        spends = LedgerEntry.objects.filter(operation__receipt=receipt, kind=EntryKind.SPEND)
        drawn = {e.lot_id: -e.available_delta for e in spends}
        refund = receipt_refund(receipt=receipt, external_id=f"ref-{receipt.pk}", at=self.now)
        restored = {}
        for e in LedgerEntry.objects.filter(operation__receipt=receipt, kind=EntryKind.RESTORE):
            restored[e.lot_id] = restored.get(e.lot_id, 0) + e.available_delta
        restored = {k: v for k, v in restored.items() if v}
        drawn = {k: v for k, v in drawn.items() if v}
        # A full refund puts back exactly the points into exactly the lots they came from.
        assert restored == drawn
        assert refund.kind == "refund"

    @rule(days=st.integers(1, 40))
    def time_passes(self, days):
        self.now += dt.timedelta(days=days)

    @rule()
    def nightly_run(self):
        ledger.bonuses_activate(now=self.now)
        ledger.bonuses_expire(now=self.now)

    @invariant()
    def balance_is_the_sum_of_entries_and_never_negative(self):
        if not hasattr(self, "account"):
            return
        self.account.refresh_from_db()
        sums = LedgerEntry.objects.filter(account=self.account).aggregate(
            a=Sum("available_delta"), p=Sum("pending_delta")
        )
        # (SQLite sums decimals as floats: compare at the ledger's precision)
        assert self.account.available == ledger.points(sums["a"] or 0)
        assert self.account.pending == ledger.points(sums["p"] or 0)
        assert self.account.available >= 0 and self.account.pending >= 0
        for r in LotRemainder.objects.filter(account=self.account):
            lot_sums = LedgerEntry.objects.filter(lot_id=r.lot_id).aggregate(
                a=Sum("available_delta"), p=Sum("pending_delta")
            )
            assert (r.available, r.pending) == (ledger.points(lot_sums["a"]), ledger.points(lot_sums["p"]))
            assert r.available >= 0 and r.pending >= 0


def ledger_accrual(earn, now):
    from loyalty.services.receipts import AccrualInput

    return AccrualInput(
        amount=Decimal(earn),
        activates_at=now + dt.timedelta(days=earn % 3 * 7),
        expires_at=now + dt.timedelta(days=90),
    )


LedgerMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.django_db(transaction=True)
def test_ledger_invariants_hold_for_any_sequence():
    LedgerMachine.TestCase().runTest()
