"""The bonus ledger: accrue, spend, refund, adjust; activate and expire set-wise.

Locking: every operation on one account first takes that account's row lock
(``SELECT ... FOR UPDATE``; on SQLite the IMMEDIATE transaction serialises writers), then
reads the account's open lots (``LotRemainder``) and writes entries. The set-wise runs lock
the accounts of a chunk, in id order, before touching their lots. So two operations on one
account never interleave, and the CHECK constraints on the projections turn any bug that
would overdraw into an error instead of a negative balance.

Idempotency: an operation with an ``idempotency_key`` that was already used returns the
first operation unchanged (after the account lock, so concurrent repeats serialise).
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty.models import (
    BonusAccount,
    BonusLot,
    BonusOperation,
    Currency,
    EntryKind,
    LedgerEntry,
    LotRemainder,
    Member,
    OperationKind,
    Receipt,
    SourceType,
)
from loyalty.services.errors import IdempotencyConflict, InsufficientBonuses

ZERO = Decimal("0")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Source:
    """What caused a ledger operation; shown in the member's point history."""

    type: str
    id: str = ""
    label: str = ""
    receipt: Receipt | None = None
    operator: object | None = None
    reason: str = ""


@dataclass
class RefundResult:
    operations: list[BonusOperation] = field(default_factory=list)
    restored: Decimal = ZERO
    restored_expired: Decimal = ZERO
    clawed_back: Decimal = ZERO
    uncollected: Decimal = ZERO


def points(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def currency_default() -> Currency:
    currency = Currency.objects.filter(is_default=True).first()
    if currency is None:
        currency, _created = Currency.objects.get_or_create(
            code="bonus", defaults={"name": _("Bonus points"), "is_default": True}
        )
    return currency


def account_get_or_create(*, member: Member, currency: Currency | None = None) -> BonusAccount:
    currency = currency or currency_default()
    account, _created = BonusAccount.objects.get_or_create(member=member, currency=currency)
    return account


def _lock(account: BonusAccount) -> BonusAccount:
    return BonusAccount.objects.select_for_update().get(pk=account.pk)


def _existing(key: str | None, *, kind: str, account: BonusAccount, amount: Decimal):
    if not key:
        return None
    op = BonusOperation.objects.filter(idempotency_key=key).first()
    if op is None:
        return None
    if op.kind != kind or op.account_id != account.pk or op.amount != amount:
        raise IdempotencyConflict(
            _("Key %(key)s was first used for a different operation.") % {"key": key}
        )
    return op


def _operation(*, kind: str, account, amount: Decimal, source: Source, key: str | None, at):
    try:
        with transaction.atomic():
            return BonusOperation.objects.create(
                kind=kind,
                account=account,
                idempotency_key=key or None,
                amount=amount,
                source_type=source.type,
                source_id=source.id,
                source_label=source.label,
                receipt=source.receipt,
                operator=source.operator,
                reason=source.reason,
                created_at=at,
            )
    except IntegrityError as exc:
        raise IdempotencyConflict(
            _("Key %(key)s was first used for a different operation.") % {"key": key}
        ) from exc


def _settle(account: BonusAccount, remainders: list[LotRemainder], op_factory, at) -> list[LotRemainder]:
    """Activate and expire this account's due lots inline, so a spend never uses expired
    points nor misses activated ones even if the nightly run has not happened yet."""
    entries, live = [], []
    op = None
    for r in remainders:
        changed = False
        if r.pending > 0 and r.activates_at <= at:
            op = op or op_factory()
            entries.append(
                LedgerEntry(operation=op, account=account, lot_id=r.lot_id, kind=EntryKind.ACTIVATION,
                            available_delta=r.pending, pending_delta=-r.pending, created_at=at)
            )
            account.available += r.pending
            account.pending -= r.pending
            r.available, r.pending, changed = r.available + r.pending, ZERO, True
        if r.expires_at is not None and r.expires_at <= at and (r.available > 0 or r.pending > 0):
            op = op or op_factory()
            entries.append(
                LedgerEntry(operation=op, account=account, lot_id=r.lot_id, kind=EntryKind.EXPIRY,
                            available_delta=-r.available, pending_delta=-r.pending, created_at=at)
            )
            account.available -= r.available
            account.pending -= r.pending
            r.available, r.pending, changed = ZERO, ZERO, True
        r._changed = changed
        live.append(r)
    if entries:
        LedgerEntry.objects.bulk_create(entries)
    return live


def _save_account(account: BonusAccount) -> None:
    BonusAccount.objects.filter(pk=account.pk).update(
        available=account.available, pending=account.pending
    )


def _save_remainders(remainders: list[LotRemainder]) -> None:
    changed = [r for r in remainders if getattr(r, "_changed", False)]
    empty = [r.lot_id for r in changed if r.available == 0 and r.pending == 0]
    kept = [r for r in changed if r.available != 0 or r.pending != 0]
    if empty:
        LotRemainder.objects.filter(lot_id__in=empty).delete()
    if kept:
        LotRemainder.objects.bulk_update(kept, ["available", "pending"])


def _open_lots(account: BonusAccount) -> list[LotRemainder]:
    return list(LotRemainder.objects.filter(account=account).order_by("expires_at", "lot_id"))


def _spend_order(r: LotRemainder):
    # Earliest expiry first; lots that never expire last; then oldest first.
    return (r.expires_at is None, r.expires_at or dt.datetime.max.replace(tzinfo=dt.UTC), r.lot_id)


@transaction.atomic
def bonus_accrue(
    *,
    account: BonusAccount,
    amount: Decimal,
    source: Source,
    activates_at: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
    idempotency_key: str | None = None,
    kind: str = OperationKind.ACCRUAL,
    at: dt.datetime | None = None,
) -> BonusOperation:
    """Create a lot of ``amount`` points: pending until ``activates_at`` (now if not
    given), expiring at ``expires_at`` (never if not given)."""
    amount = points(amount)
    if amount <= 0:
        raise ValueError("accrual amount must be positive")
    at = at or timezone.now()
    activates_at = activates_at or at
    if expires_at is not None and expires_at <= activates_at:
        raise ValueError("a lot must expire after it activates")
    account = _lock(account)
    if op := _existing(idempotency_key, kind=kind, account=account, amount=amount):
        return op
    op = _operation(kind=kind, account=account, amount=amount, source=source, key=idempotency_key, at=at)
    lot = BonusLot.objects.create(
        account=account, operation=op, amount=amount, activates_at=activates_at,
        expires_at=expires_at, created_at=at,
    )
    is_pending = activates_at > at
    LedgerEntry.objects.create(
        operation=op, account=account, lot=lot,
        kind=EntryKind.ACCRUAL if kind == OperationKind.ACCRUAL else EntryKind.ADJUSTMENT,
        available_delta=ZERO if is_pending else amount,
        pending_delta=amount if is_pending else ZERO,
        created_at=at,
    )
    LotRemainder.objects.create(
        lot=lot, account=account, activates_at=activates_at, expires_at=expires_at,
        available=ZERO if is_pending else amount, pending=amount if is_pending else ZERO,
    )
    if is_pending:
        account.pending += amount
    else:
        account.available += amount
    _save_account(account)
    return op


def _draw(account, remainders, amount: Decimal, op, kind: str, at) -> None:
    """Take ``amount`` from available lots in expiry order (caller holds the lock and has
    checked the total)."""
    left = amount
    entries = []
    for r in sorted(remainders, key=_spend_order):
        if left == 0:
            break
        if r.available <= 0:
            continue
        take = min(r.available, left)
        entries.append(
            LedgerEntry(operation=op, account=account, lot_id=r.lot_id, kind=kind,
                        available_delta=-take, created_at=at)
        )
        r.available -= take
        r._changed = True
        left -= take
    LedgerEntry.objects.bulk_create(entries)
    account.available -= amount


@transaction.atomic
def bonus_spend(
    *,
    account: BonusAccount,
    amount: Decimal,
    source: Source,
    idempotency_key: str | None = None,
    kind: str = OperationKind.SPEND,
    at: dt.datetime | None = None,
) -> BonusOperation:
    """Draw ``amount`` available points, earliest-expiring lots first. Raises
    ``InsufficientBonuses`` (and writes nothing) if the account has less."""
    amount = points(amount)
    if amount <= 0:
        raise ValueError("spend amount must be positive")
    at = at or timezone.now()
    account = _lock(account)
    if op := _existing(idempotency_key, kind=kind, account=account, amount=-amount):
        return op
    holder: list[BonusOperation] = []

    def op_factory():
        if not holder:
            holder.append(
                _operation(kind=kind, account=account, amount=-amount, source=source,
                           key=idempotency_key, at=at)
            )
        return holder[0]

    remainders = _settle(account, _open_lots(account), op_factory, at)
    if account.available < amount:
        # Raising rolls back any inline settlement too; the nightly runs redo it.
        raise InsufficientBonuses(
            _("Asked for %(asked)s, %(available)s available.")
            % {"asked": amount, "available": account.available},
            available=str(account.available),
        )
    op = op_factory()
    _draw(account, remainders, amount, op, EntryKind.SPEND if kind == OperationKind.SPEND else EntryKind.ADJUSTMENT, at)
    _save_remainders(remainders)
    _save_account(account)
    return op


@transaction.atomic
def bonus_adjust(
    *,
    account: BonusAccount,
    amount: Decimal,
    operator,
    reason: str,
    expires_at: dt.datetime | None = None,
    idempotency_key: str | None = None,
) -> BonusOperation:
    """A manual correction by an operator: positive adds a lot, negative draws lots like a
    spend. The reason is required and shown in the point history."""
    from django.core.exceptions import ValidationError

    if not (reason or "").strip():
        raise ValidationError({"reason": _("Give a reason for the adjustment.")})
    amount = points(amount)
    if amount == 0:
        raise ValidationError({"amount": _("The adjustment cannot be zero.")})
    source = Source(type=SourceType.OPERATOR, operator=operator, reason=reason.strip(),
                    label=str(operator) if operator else "")
    if amount > 0:
        return bonus_accrue(account=account, amount=amount, source=source, expires_at=expires_at,
                            idempotency_key=idempotency_key, kind=OperationKind.ADJUSTMENT)
    return bonus_spend(account=account, amount=-amount, source=source,
                       idempotency_key=idempotency_key, kind=OperationKind.ADJUSTMENT)


@transaction.atomic
def bonus_refund(
    *,
    receipt: Receipt,
    share: Decimal = Decimal("1"),
    source_label: str = "",
    idempotency_key: str | None = None,
    at: dt.datetime | None = None,
) -> RefundResult:
    """Undo ``share`` (0 < share ≤ 1) of what ``receipt`` did to the ledger: points it
    drew go back into exactly the lots they came from (latest-expiring first for a partial
    refund; a lot that has expired meanwhile gets them back and loses them again at once,
    so they stay expired), and points it accrued are taken back, from its own lots first,
    then from other available points; what cannot be collected is reported, never made
    negative."""
    at = at or timezone.now()
    share = Decimal(share)
    if not (0 < share <= 1):
        raise ValueError("share must be in (0, 1]")
    result = RefundResult()
    account_ids = sorted(
        set(receipt.bonus_operations.exclude(account=None).values_list("account_id", flat=True))
    )
    for account_id in account_ids:
        account = BonusAccount.objects.select_for_update().get(pk=account_id)
        key = f"{idempotency_key}:{account_id}" if idempotency_key else None
        if key and (op := BonusOperation.objects.filter(idempotency_key=key).first()):
            result.operations.append(op)
            continue
        entries = LedgerEntry.objects.filter(operation__receipt=receipt, account=account)
        drawn = {
            row["lot_id"]: -points(row["s"])
            for row in entries.filter(kind=EntryKind.SPEND).values("lot_id").annotate(s=Sum("available_delta"))
        }
        for row in entries.filter(kind=EntryKind.RESTORE).values("lot_id").annotate(s=Sum("available_delta")):
            drawn[row["lot_id"]] = drawn.get(row["lot_id"], ZERO) - points(row["s"])
        accrued_lots = list(
            BonusLot.objects.filter(operation__receipt=receipt, operation__kind=OperationKind.ACCRUAL,
                                    account=account)
        )
        accrued = sum((lot.amount for lot in accrued_lots), ZERO)
        clawed = entries.filter(kind=EntryKind.CLAWBACK).aggregate(
            a=Sum("available_delta"), p=Sum("pending_delta"))
        already_clawed = -points((clawed["a"] or ZERO) + (clawed["p"] or ZERO))
        total_drawn = sum((v for v in drawn.values() if v > 0), ZERO)
        original_drawn = -points(
            entries.filter(kind=EntryKind.SPEND).aggregate(s=Sum("available_delta"))["s"] or ZERO
        )
        to_restore = min(points(original_drawn * share), total_drawn)
        to_claw = min(points(accrued * share), accrued - already_clawed)
        if to_restore <= 0 and to_claw <= 0:
            continue
        op = _operation(kind=OperationKind.REFUND, account=account, amount=to_restore - to_claw,
                        source=Source(type=SourceType.RECEIPT, id=str(receipt.pk), label=source_label,
                                      receipt=receipt), key=key, at=at)
        result.operations.append(op)
        remainders = {r.lot_id: r for r in _settle(account, _open_lots(account), lambda op=op: op, at)}
        new_entries: list[LedgerEntry] = []
        # 1. Restore drawn points into their own lots.
        lots = {lot.pk: lot for lot in BonusLot.objects.filter(pk__in=[k for k, v in drawn.items() if v > 0])}
        order = sorted(lots.values(), key=lambda lot: (lot.expires_at is None, lot.expires_at or at), reverse=True)
        left = to_restore
        for lot in order:
            if left <= 0:
                break
            give = min(drawn[lot.pk], left)
            left -= give
            new_entries.append(LedgerEntry(operation=op, account=account, lot=lot, kind=EntryKind.RESTORE,
                                           available_delta=give, created_at=at))
            if lot.expires_at is not None and lot.expires_at <= at:
                new_entries.append(LedgerEntry(operation=op, account=account, lot=lot, kind=EntryKind.EXPIRY,
                                               available_delta=-give, created_at=at))
                result.restored_expired += give
                continue
            r = remainders.get(lot.pk)
            if r is None:
                r = LotRemainder.objects.create(lot=lot, account=account, activates_at=lot.activates_at,
                                                expires_at=lot.expires_at)
                remainders[lot.pk] = r
            r.available += give
            r._changed = True
            account.available += give
            result.restored += give
        # 2. Take back what the purchase accrued: its own lots first (pending, then available).
        left = to_claw
        own = [remainders[lot.pk] for lot in accrued_lots if lot.pk in remainders]
        others = sorted((r for r in remainders.values() if r not in own), key=_spend_order)
        for r in [*own, *others]:
            if left <= 0:
                break
            take_pending = min(r.pending, left) if r in own else ZERO
            take_available = min(r.available, left - take_pending)
            if take_pending == 0 and take_available == 0:
                continue
            new_entries.append(LedgerEntry(operation=op, account=account, lot_id=r.lot_id, kind=EntryKind.CLAWBACK,
                                           available_delta=-take_available, pending_delta=-take_pending,
                                           created_at=at))
            r.pending -= take_pending
            r.available -= take_available
            r._changed = True
            account.pending -= take_pending
            account.available -= take_available
            left -= take_pending + take_available
        result.clawed_back += to_claw - left
        result.uncollected += left
        LedgerEntry.objects.bulk_create(new_entries)
        _save_remainders(list(remainders.values()))
        _save_account(account)
    return result


# --- set-wise runs ---------------------------------------------------------------------

def _run_chunks(*, kind: str, due_sql: str, entry_sql: str, account_sql: str, remainder_sql: str,
                now: dt.datetime, chunk_size: int) -> int:
    """Process due lots a chunk of accounts at a time: lock the chunk's accounts (id
    order), insert one entry per due lot with ``INSERT ... SELECT``, move the accounts'
    totals with one ``UPDATE ... FROM``, then update or drop the remainders."""
    processed = 0
    after = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute(due_sql, [now, after, chunk_size])
                ids = [row[0] for row in cur.fetchall()]
                if not ids:
                    return processed
                after = ids[-1]
                list(BonusAccount.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))
                op = BonusOperation.objects.create(
                    kind=kind, account=None, source_type=SourceType.REGULAR_TASK,
                    source_label=kind, created_at=now,
                )
                lo, hi = ids[0], ids[-1]
                cur.execute(entry_sql, [op.pk, now, lo, hi, now])
                processed += cur.rowcount
                cur.execute(account_sql, [op.pk])
                cur.execute(remainder_sql, [lo, hi, now])
                moved = LedgerEntry.objects.filter(operation=op).aggregate(s=Sum("available_delta"))
                BonusOperation.objects.filter(pk=op.pk).update(amount=points(moved["s"] or ZERO))


_E = LedgerEntry._meta.db_table
_R = LotRemainder._meta.db_table
_A = BonusAccount._meta.db_table


def bonuses_activate(*, now: dt.datetime | None = None, chunk_size: int = 5000) -> int:
    """Make pending lots whose activation time has come available. Returns lots done."""
    return _run_chunks(
        kind=OperationKind.ACTIVATION,
        now=now or timezone.now(),
        chunk_size=chunk_size,
        due_sql=f"SELECT DISTINCT account_id FROM {_R} WHERE activates_at <= %s AND pending > 0 "
        f"AND account_id > %s ORDER BY account_id LIMIT %s",
        entry_sql=f"INSERT INTO {_E} (operation_id, account_id, lot_id, kind, available_delta, "
        f"pending_delta, created_at) SELECT %s, account_id, lot_id, 'activation', pending, -pending, %s "
        f"FROM {_R} WHERE account_id BETWEEN %s AND %s AND activates_at <= %s AND pending > 0",
        account_sql=f"UPDATE {_A} SET available = ROUND(available + s.a, 2), pending = ROUND(pending + s.p, 2) "
        f"FROM (SELECT account_id, SUM(available_delta) AS a, SUM(pending_delta) AS p FROM {_E} "
        f"WHERE operation_id = %s GROUP BY account_id) AS s WHERE {_A}.id = s.account_id",
        remainder_sql=f"UPDATE {_R} SET available = ROUND(available + pending, 2), pending = 0 "
        f"WHERE account_id BETWEEN %s AND %s AND activates_at <= %s AND pending > 0",
    )


def bonuses_expire(*, now: dt.datetime | None = None, chunk_size: int = 5000) -> int:
    """Burn what is left of lots whose expiry time has come. Returns lots done."""
    return _run_chunks(
        kind=OperationKind.EXPIRY,
        now=now or timezone.now(),
        chunk_size=chunk_size,
        due_sql=f"SELECT DISTINCT account_id FROM {_R} WHERE expires_at <= %s "
        f"AND account_id > %s ORDER BY account_id LIMIT %s",
        entry_sql=f"INSERT INTO {_E} (operation_id, account_id, lot_id, kind, available_delta, "
        f"pending_delta, created_at) SELECT %s, account_id, lot_id, 'expiry', -available, -pending, %s "
        f"FROM {_R} WHERE account_id BETWEEN %s AND %s AND expires_at <= %s",
        account_sql=f"UPDATE {_A} SET available = ROUND(available + s.a, 2), pending = ROUND(pending + s.p, 2) "
        f"FROM (SELECT account_id, SUM(available_delta) AS a, SUM(pending_delta) AS p FROM {_E} "
        f"WHERE operation_id = %s GROUP BY account_id) AS s WHERE {_A}.id = s.account_id",
        remainder_sql=f"DELETE FROM {_R} WHERE account_id BETWEEN %s AND %s AND expires_at <= %s",
    )
