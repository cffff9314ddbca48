"""The bonus ledger: accrue, spend, refund, adjust; activate and expire set-wise.

Every operation is computed as a ``Plan`` by pure functions over the account's open lots
(``plan_settle``, ``plan_draw``) and written at once: on PostgreSQL as one statement of
data-modifying CTEs, elsewhere through the ORM.

Locking: an operation that draws points (spend, negative adjustment, refund) first locks
the account's open-lot rows (``LotRemainder ... FOR UPDATE``); it reads them fresh and
keeps them until commit, so two draws on one account serialise and neither can take the
same points. Accruals insert new lots and add to the account totals in one statement, so
they need no lock. The set-wise runs lock the due lot rows of a chunk of accounts before
touching them. Everything locks lot rows before the account row, so they cannot deadlock.
The account's totals are moved by deltas and guarded by CHECK constraints: a bug that
would overdraw fails instead of leaving a negative balance. (On SQLite, IMMEDIATE
transactions serialise all writers instead.)

Idempotency: an operation with an ``idempotency_key`` that was already used returns the
first operation unchanged; a concurrent repeat loses the race on the key's unique index
and then returns the winner's operation.
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
from loyalty.selectors import ACCOUNT_OF_MEMBER
from loyalty.services.errors import IdempotencyConflict, InsufficientBonuses

ZERO = Decimal("0")
CENT = Decimal("0.01")
_A = BonusAccount._meta.db_table
_O = BonusOperation._meta.db_table
_L = BonusLot._meta.db_table
_E = LedgerEntry._meta.db_table
_R = LotRemainder._meta.db_table


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


def account_get_or_create(
    *, member: Member, currency: Currency | None = None, missing: bool = False
) -> BonusAccount:
    """The member's account in ``currency`` (the default one when omitted), made on first
    use by one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` without a savepoint (a
    concurrent first use inserts nothing and reads the row the other made). ``missing``:
    the caller has just read the member's accounts and this one was not there, so the
    insert comes first (one statement instead of two on a member's first accrual)."""
    currency = currency or currency_default()
    if not missing:
        account = ACCOUNT_OF_MEMBER.first(member.pk, currency.pk)
        if account is not None:
            return account
    now = timezone.now()
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {_A} (member_id, currency_id, available, pending, created_at) "
            "VALUES (%s, %s, 0, 0, %s) ON CONFLICT (member_id, currency_id) DO NOTHING RETURNING id",
            [member.pk, currency.pk, connection.ops.adapt_datetimefield_value(now)],
        )
        row = cur.fetchone()
    if row is None:
        return ACCOUNT_OF_MEMBER.first(member.pk, currency.pk)
    account = BonusAccount(
        id=row[0], member=member, currency=currency, available=ZERO, pending=ZERO, created_at=now
    )
    account._state.adding, account._state.db = False, connection.alias
    return account


# --- the plan: pure functions over in-memory lot states ----------------------------------


@dataclass
class LotState:
    """What is left of one open lot, as read under the account lock."""

    lot_id: int | None  # None: the lot this operation creates
    available: Decimal
    pending: Decimal
    activates_at: dt.datetime
    expires_at: dt.datetime | None
    changed: bool = False
    is_new_row: bool = False  # its remainder row must be inserted


@dataclass
class Move:
    """One ledger entry to write."""

    lot_id: int | None  # None: the lot this operation creates
    kind: str
    available: Decimal = ZERO
    pending: Decimal = ZERO


@dataclass
class Plan:
    """Everything one operation writes: the operation row, at most one new lot, entries,
    remainder changes and the account's new totals."""

    account_id: int
    kind: str
    amount: Decimal
    source: Source
    key: str | None
    at: dt.datetime
    available_delta: Decimal = ZERO
    pending_delta: Decimal = ZERO
    moves: list[Move] = field(default_factory=list)
    lots: list[LotState] = field(default_factory=list)
    new_lot: LotState | None = None

    def move(self, lot: LotState, kind: str, available: Decimal = ZERO, pending: Decimal = ZERO) -> None:
        self.moves.append(Move(lot.lot_id, kind, available, pending))
        lot.available += available
        lot.pending += pending
        lot.changed = True
        self.available_delta += available
        self.pending_delta += pending


def _spend_order(lot: LotState):
    # Earliest expiry first; lots that never expire last; then oldest first.
    return (
        lot.expires_at is None,
        lot.expires_at or dt.datetime.max.replace(tzinfo=dt.UTC),
        lot.lot_id,
    )


def plan_settle(plan: Plan, lots: list[LotState]) -> None:
    """Activate and expire this account's due lots inline, so a spend never uses expired
    points nor misses activated ones even if the nightly run has not happened yet."""
    for lot in lots:
        if lot.pending > 0 and lot.activates_at <= plan.at:
            plan.move(lot, EntryKind.ACTIVATION, available=lot.pending, pending=-lot.pending)
        if lot.expires_at is not None and lot.expires_at <= plan.at and (lot.available or lot.pending):
            plan.move(lot, EntryKind.EXPIRY, available=-lot.available, pending=-lot.pending)


def plan_draw(plan: Plan, lots: list[LotState], amount: Decimal, kind: str) -> Decimal:
    """Take up to ``amount`` available points, earliest-expiring lots first; returns what
    could not be taken."""
    left = amount
    for lot in sorted(lots, key=_spend_order):
        if left <= 0:
            break
        take = min(lot.available, left)
        if take > 0:
            plan.move(lot, kind, available=-take)
            left -= take
    return left


# --- reading and writing under the account lock -------------------------------------------


def _conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(_("Key %(key)s was first used for a different operation.") % {"key": key})


def _replay(key: str | None, *, kind: str, account_id: int, amount: Decimal) -> BonusOperation | None:
    """The operation an idempotency key already produced, if it matches this request."""
    if not key:
        return None
    op = BonusOperation.objects.filter(idempotency_key=key).first()
    if op is None:
        return None
    if op.kind != kind or op.account_id != account_id or op.amount != amount:
        raise _conflict(key)
    return op


def _lost_race(key: str | None, *, kind: str, account_id: int, amount: Decimal) -> BonusOperation:
    """Our insert lost to a concurrent request with the same key: return the winner's
    operation if it is the same request, else refuse."""
    op = _replay(key, kind=kind, account_id=account_id, amount=amount)
    if op is None:
        raise _conflict(key)
    return op


def _totals(account_id: int) -> tuple[Decimal, Decimal]:
    with connection.cursor() as cur:
        cur.execute(f"SELECT available, pending FROM {_A} WHERE id = %s", [account_id])
        row = cur.fetchone()
    if row is None:
        raise BonusAccount.DoesNotExist(account_id)
    return points(row[0]), points(row[1])


def _open_lots(account_id: int) -> list[LotState]:
    """The account's open lots, locked until commit (PostgreSQL re-reads each locked row
    after waiting, so the values are current)."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT lot_id, available, pending, activates_at, expires_at FROM {_R} "
            f"WHERE account_id = %s{lock}",
            [account_id],
        )
        rows = cur.fetchall()
    convert = connection.ops.convert_datetimefield_value if connection.vendor == "sqlite" else None
    out = []
    for lot_id, available, pending, activates_at, expires_at in rows:
        if convert:
            activates_at = convert(activates_at, None, connection)
            expires_at = convert(expires_at, None, connection) if expires_at else None
        out.append(LotState(lot_id, points(available), points(pending), activates_at, expires_at))
    return out


def _write(plan: Plan) -> BonusOperation | None:
    """Persist a plan; ``None`` when the idempotency key was taken concurrently. On
    PostgreSQL the operation carries the account's available balance after it
    (``available_after``), as this transaction now sees it."""
    if not plan.moves and plan.new_lot is None:
        return None
    available_after = None
    if connection.vendor == "postgresql":
        written = _write_postgres(plan)
        op_id, available_after = written if written is not None else (None, None)
    else:
        op_id = _write_portable(plan)
    if op_id is None:
        return None
    op = _write_result(plan, op_id)
    op.available_after = available_after
    return op


def _write_result(plan: Plan, op_id: int) -> BonusOperation:
    return BonusOperation(pk=op_id, **_operation_fields(plan))


def _operation_fields(plan: Plan) -> dict:
    source = plan.source
    return {
        "kind": plan.kind,
        "account_id": plan.account_id,
        "idempotency_key": plan.key or None,
        "amount": plan.amount,
        "source_type": source.type,
        "source_id": source.id,
        "source_label": source.label,
        "receipt": source.receipt,
        "operator": source.operator,
        "reason": source.reason,
        "created_at": plan.at,
    }


def _op_values(plan: Plan) -> list:
    """``_operation_fields`` in ``_OP_COLUMNS`` order, foreign keys as ids."""
    return [
        (value.pk if value is not None else None) if name in ("receipt", "operator") else value
        for name, value in _operation_fields(plan).items()
    ]


# The columns of _operation_fields, in its order.
_OP_COLUMNS = (
    "kind, account_id, idempotency_key, amount, source_type, source_id, source_label, "
    "receipt_id, operator_id, reason, created_at"
)


def _write_postgres(plan: Plan) -> tuple[int, Decimal] | None:
    """The whole operation as one statement (data-modifying CTEs): one round trip. The
    operation's id and the account's available balance after it."""
    params: list = _op_values(plan)
    sql = [
        f"WITH op AS (INSERT INTO {_O} ({_OP_COLUMNS}) VALUES ({', '.join(['%s'] * 11)}) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id)"
    ]
    lot = plan.new_lot
    if lot is not None:
        sql.append(
            f", newlot AS (INSERT INTO {_L} (account_id, operation_id, amount, activates_at, expires_at, "
            "created_at) SELECT %s, op.id, %s, %s, %s, %s FROM op RETURNING id)"
        )
        params += [plan.account_id, plan.amount, lot.activates_at, lot.expires_at, plan.at]
    newlot_id = "(SELECT id FROM newlot)" if lot is not None else "NULL"
    if plan.moves:
        values = ", ".join(["(%s::bigint, %s::varchar, %s::numeric, %s::numeric)"] * len(plan.moves))
        sql.append(
            f", ent AS (INSERT INTO {_E} (operation_id, account_id, lot_id, kind, available_delta, "
            f"pending_delta, created_at) SELECT op.id, %s, COALESCE(v.lot_id, {newlot_id}), "
            "v.kind, v.a, v.p, %s "
            f"FROM op, (VALUES {values}) AS v(lot_id, kind, a, p))"
        )
        params += [plan.account_id, plan.at]
        for m in plan.moves:
            params += [m.lot_id, m.kind, m.available, m.pending]
    inserted = [s for s in plan.lots + ([lot] if lot else []) if s.is_new_row and (s.available or s.pending)]
    updated = [s for s in plan.lots if s.changed and not s.is_new_row and (s.available or s.pending)]
    emptied = [
        s.lot_id for s in plan.lots if s.changed and not s.is_new_row and not (s.available or s.pending)
    ]
    if inserted:
        values = ", ".join(
            ["(%s::bigint, %s::numeric, %s::numeric, %s::timestamptz, %s::timestamptz)"] * len(inserted)
        )
        sql.append(
            f", remins AS (INSERT INTO {_R} "
            "(lot_id, account_id, available, pending, activates_at, expires_at) "
            f"SELECT COALESCE(v.lot_id, {newlot_id}), %s, v.a, v.p, v.act, v.exp FROM op, "
            f"(VALUES {values}) AS v(lot_id, a, p, act, exp))"
        )
        params.append(plan.account_id)
        for s in inserted:
            params += [s.lot_id, s.available, s.pending, s.activates_at, s.expires_at]
    if updated:
        values = ", ".join(["(%s::bigint, %s::numeric, %s::numeric)"] * len(updated))
        sql.append(
            f", remupd AS (UPDATE {_R} r SET available = v.a, pending = v.p FROM op, "
            f"(VALUES {values}) AS v(lot_id, a, p) WHERE r.lot_id = v.lot_id)"
        )
        for s in updated:
            params += [s.lot_id, s.available, s.pending]
    if emptied:
        sql.append(
            f", remdel AS (DELETE FROM {_R} WHERE lot_id = ANY(%s::bigint[]) AND EXISTS (SELECT 1 FROM op))"
        )
        params.append(emptied)
    sql.append(
        f", acc AS (UPDATE {_A} SET available = available + %s, pending = pending + %s "
        "WHERE id = %s AND EXISTS (SELECT 1 FROM op) RETURNING available) "
        "SELECT op.id, (SELECT available FROM acc) FROM op"
    )
    params += [plan.available_delta, plan.pending_delta, plan.account_id]
    with connection.cursor() as cur:
        cur.execute("".join(sql), params)
        row = cur.fetchone()
    return (row[0], row[1]) if row else None


@transaction.atomic
def _write_portable(plan: Plan) -> int | None:
    """The same writes through the ORM, for databases without data-modifying CTEs."""
    try:
        with transaction.atomic():
            op = BonusOperation.objects.create(**_operation_fields(plan))
    except IntegrityError:
        return None
    lot = plan.new_lot
    if lot is not None:
        lot.lot_id = BonusLot.objects.create(
            account_id=plan.account_id,
            operation=op,
            amount=plan.amount,
            activates_at=lot.activates_at,
            expires_at=lot.expires_at,
            created_at=plan.at,
        ).pk
    LedgerEntry.objects.bulk_create(
        LedgerEntry(
            operation=op,
            account_id=plan.account_id,
            lot_id=m.lot_id if m.lot_id else lot.lot_id,
            kind=m.kind,
            available_delta=m.available,
            pending_delta=m.pending,
            created_at=plan.at,
        )
        for m in plan.moves
    )
    states = plan.lots + ([lot] if lot else [])
    LotRemainder.objects.bulk_create(
        LotRemainder(
            lot_id=s.lot_id,
            account_id=plan.account_id,
            available=s.available,
            pending=s.pending,
            activates_at=s.activates_at,
            expires_at=s.expires_at,
        )
        for s in states
        if s.is_new_row and (s.available or s.pending)
    )
    for s in states:
        if s.changed and not s.is_new_row:
            if s.available or s.pending:
                LotRemainder.objects.filter(lot_id=s.lot_id).update(available=s.available, pending=s.pending)
            else:
                LotRemainder.objects.filter(lot_id=s.lot_id).delete()
    # Absolute totals: exact decimals (SQLite would do the arithmetic in floating point).
    available, pending = _totals(plan.account_id)
    BonusAccount.objects.filter(pk=plan.account_id).update(
        available=available + plan.available_delta, pending=pending + plan.pending_delta
    )
    return op.pk


def _account_id(account: BonusAccount | int) -> int:
    return account if isinstance(account, int) else account.pk


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
    given), expiring at ``expires_at`` (never if not given). One statement on PostgreSQL,
    atomic by itself (and part of the caller's transaction when there is one)."""
    amount = points(amount)
    if amount <= 0:
        raise ValueError("accrual amount must be positive")
    at = at or timezone.now()
    activates_at = activates_at or at
    if expires_at is not None and expires_at <= activates_at:
        raise ValueError("a lot must expire after it activates")
    account_id = _account_id(account)
    # No look-up first: a repeated key makes the insert write nothing (the key is unique),
    # and the operation that holds it is returned then.
    pending = activates_at > at
    lot = LotState(None, ZERO, ZERO, activates_at, expires_at, is_new_row=True)
    plan = Plan(
        account_id=account_id,
        kind=kind,
        amount=amount,
        source=source,
        key=idempotency_key,
        at=at,
        new_lot=lot,
    )
    plan.move(
        lot,
        EntryKind.ACCRUAL if kind == OperationKind.ACCRUAL else EntryKind.ADJUSTMENT,
        available=ZERO if pending else amount,
        pending=amount if pending else ZERO,
    )
    op = _write(plan)
    if op is None:  # the key was used before (a repeat) or concurrently
        return _lost_race(idempotency_key, kind=kind, account_id=account_id, amount=amount)
    return op


def bonus_spend(
    *,
    account: BonusAccount,
    amount: Decimal,
    source: Source,
    idempotency_key: str | None = None,
    kind: str = OperationKind.SPEND,
    at: dt.datetime | None = None,
) -> BonusOperation:
    """Draw ``amount`` available points, earliest-expiring lots first. Locks the account's
    open lots before reading them. Raises ``InsufficientBonuses`` (and writes nothing) if
    the account has less."""
    amount = points(amount)
    if amount <= 0:
        raise ValueError("spend amount must be positive")
    at = at or timezone.now()
    account_id = _account_id(account)
    entry_kind = EntryKind.SPEND if kind == OperationKind.SPEND else EntryKind.ADJUSTMENT
    if connection.vendor == "postgresql":
        outcome = _spend_postgres(account_id, amount, kind, entry_kind, source, idempotency_key, at)
        if outcome is not None:
            return outcome
    with transaction.atomic():
        lots = _open_lots(account_id)  # lock first: a repeat of this key waits here for the first
        if idempotency_key and (
            op := _replay(idempotency_key, kind=kind, account_id=account_id, amount=-amount)
        ):
            return op
        plan = Plan(
            account_id=account_id,
            kind=kind,
            amount=-amount,
            source=source,
            key=idempotency_key,
            at=at,
            lots=lots,
        )
        plan_settle(plan, lots)
        short = plan_draw(plan, lots, amount, entry_kind)
        if short > 0:
            raise _insufficient(amount, sum((lot.available for lot in lots), ZERO) + (amount - short))
        op = _write(plan)
        if op is None:  # a concurrent request with the same key won
            return _lost_race(idempotency_key, kind=kind, account_id=account_id, amount=-amount)
        return op


def _insufficient(asked: Decimal, available: Decimal) -> InsufficientBonuses:
    return InsufficientBonuses(
        _("Asked for %(asked)s, %(available)s available.") % {"asked": asked, "available": available},
        available=str(available),
    )


def _spend_postgres(account_id, amount, kind, entry_kind, source, key, at) -> BonusOperation | None:
    """The common spend as one statement (so one round trip, committed by itself): lock
    the account's spendable lots, draw them in expiry order with a running sum, write the
    operation, entries, lot remainders and account total. Returns ``None`` when the
    account has lots due for activation or expiry that the nightly run has not processed
    yet: the caller then takes the general path, which settles them first."""
    plan = Plan(account_id=account_id, kind=kind, amount=-amount, source=source, key=key, at=at)
    params = {"acc": account_id, "amt": amount, "now": at, "key": key or None, "kind": entry_kind}
    op_params = dict(zip([f"o{i}" for i in range(11)], _op_values(plan), strict=True))
    sql = f"""
    WITH prior AS (SELECT id FROM {_O} WHERE idempotency_key = %(key)s),
    due AS (
        SELECT 1 FROM {_R} WHERE account_id = %(acc)s
        AND ((pending > 0 AND activates_at <= %(now)s) OR expires_at <= %(now)s) LIMIT 1
    ),
    lots AS MATERIALIZED (
        SELECT lot_id, available, pending, expires_at FROM {_R}
        WHERE account_id = %(acc)s AND available > 0 AND (expires_at IS NULL OR expires_at > %(now)s)
        FOR UPDATE
    ),
    ordered AS (
        SELECT lot_id, available, pending,
               SUM(available) OVER (ORDER BY expires_at NULLS LAST, lot_id) - available AS before
        FROM lots
    ),
    draw AS (
        SELECT lot_id, available, pending, LEAST(available, %(amt)s - before) AS take
        FROM ordered WHERE before < %(amt)s
    ),
    go AS (
        SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM prior) AND NOT EXISTS (SELECT 1 FROM due)
        AND (SELECT COALESCE(SUM(take), 0) FROM draw) >= %(amt)s
    ),
    op AS (
        INSERT INTO {_O} ({_OP_COLUMNS})
        SELECT {", ".join(f"%({k})s" for k in op_params)} FROM go
        ON CONFLICT (idempotency_key) DO NOTHING RETURNING id
    ),
    ent AS (
        INSERT INTO {_E} (operation_id, account_id, lot_id, kind, available_delta, pending_delta, created_at)
        SELECT op.id, %(acc)s, d.lot_id, %(kind)s, -d.take, 0, %(now)s FROM op, draw d
    ),
    upd AS (
        UPDATE {_R} r SET available = r.available - d.take FROM op, draw d
        WHERE r.lot_id = d.lot_id AND (d.take < d.available OR d.pending > 0)
    ),
    del AS (
        DELETE FROM {_R} r USING op, draw d
        WHERE r.lot_id = d.lot_id AND d.take = d.available AND d.pending = 0
    ),
    acc AS (
        UPDATE {_A} SET available = available - %(amt)s WHERE id = %(acc)s AND EXISTS (SELECT 1 FROM op)
    )
    SELECT (SELECT id FROM op), (SELECT id FROM prior), EXISTS (SELECT 1 FROM due),
           (SELECT COALESCE(SUM(available), 0) FROM lots)
    """
    with connection.cursor() as cur:
        cur.execute(sql, {**params, **op_params})
        op_id, prior_id, due, available = cur.fetchone()
    if op_id is not None:
        return _write_result(plan, op_id)
    if prior_id is not None:
        return _replay(key, kind=kind, account_id=account_id, amount=-amount)
    if due:
        return None
    if points(available) < amount:
        raise _insufficient(amount, points(available))
    # Enough points but no operation: a concurrent request with the same key won.
    return _lost_race(key, kind=kind, account_id=account_id, amount=-amount)


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
    source = Source(
        type=SourceType.OPERATOR,
        operator=operator,
        reason=reason.strip(),
        label=str(operator) if operator else "",
    )
    if amount > 0:
        return bonus_accrue(
            account=account,
            amount=amount,
            source=source,
            expires_at=expires_at,
            idempotency_key=idempotency_key,
            kind=OperationKind.ADJUSTMENT,
        )
    return bonus_spend(
        account=account,
        amount=-amount,
        source=source,
        idempotency_key=idempotency_key,
        kind=OperationKind.ADJUSTMENT,
    )


@transaction.atomic
def bonus_refund(
    *,
    receipt: Receipt,
    share: Decimal = Decimal("1"),
    source_label: str = "",
    idempotency_key: str | None = None,
    at: dt.datetime | None = None,
    release: Decimal | None = None,
) -> RefundResult:
    """Undo ``share`` (0 < share ≤ 1) of what ``receipt`` did to the ledger: points it
    drew go back into exactly the lots they came from (latest-expiring first for a partial
    refund; a lot that has expired meanwhile gets them back and loses them again at once,
    so they stay expired), and points it accrued are taken back, from its own lots first,
    then from other available points; what cannot be collected is reported, never made
    negative. ``release``: instead, give back exactly this many of the points the receipt
    drew (a hold let go of, wholly or in part) and take nothing back."""
    at = at or timezone.now()
    share = Decimal(share)
    if not (0 < share <= 1):
        raise ValueError("share must be in (0, 1]")
    result = RefundResult()
    account_ids = sorted(
        set(receipt.bonus_operations.exclude(account=None).values_list("account_id", flat=True))
    )
    for account_id in account_ids:
        lots = _open_lots(account_id)
        key = f"{idempotency_key}:{account_id}" if idempotency_key else None
        if key and (op := BonusOperation.objects.filter(idempotency_key=key).first()):
            result.operations.append(op)
            continue
        entries = LedgerEntry.objects.filter(operation__receipt=receipt, account_id=account_id)
        by_kind: dict[str, dict[int, Decimal]] = {
            EntryKind.SPEND: {},
            EntryKind.RESTORE: {},
            EntryKind.RELEASE: {},
        }
        for row in (
            entries.filter(kind__in=list(by_kind)).values("kind", "lot_id").annotate(s=Sum("available_delta"))
        ):
            by_kind[row["kind"]][row["lot_id"]] = points(row["s"])
        # What the receipt drew and kept (a reservation's released part was never paid).
        released = by_kind[EntryKind.RELEASE]
        spent = {lot_id: -s - released.get(lot_id, ZERO) for lot_id, s in by_kind[EntryKind.SPEND].items()}
        unrestored = {k: v - by_kind[EntryKind.RESTORE].get(k, ZERO) for k, v in spent.items()}
        accrued_lots = set(
            BonusLot.objects.filter(
                operation__receipt=receipt,
                operation__kind=OperationKind.ACCRUAL,
                account_id=account_id,
            ).values_list("pk", flat=True)
        )
        accrued = points(BonusLot.objects.filter(pk__in=accrued_lots).aggregate(s=Sum("amount"))["s"] or ZERO)
        clawed = entries.filter(kind=EntryKind.CLAWBACK).aggregate(
            a=Sum("available_delta"), p=Sum("pending_delta")
        )
        already_clawed = -points((clawed["a"] or ZERO) + (clawed["p"] or ZERO))
        if release is not None:
            to_restore, to_claw = min(points(release), sum(unrestored.values(), ZERO)), ZERO
        else:
            to_restore = min(points(sum(spent.values(), ZERO) * share), sum(unrestored.values(), ZERO))
            to_claw = min(points(accrued * share), accrued - already_clawed)
        if to_restore <= 0 and to_claw <= 0:
            continue
        plan = Plan(
            account_id=account_id,
            kind=OperationKind.REFUND if release is None else OperationKind.RELEASE,
            amount=to_restore - to_claw,
            source=Source(type=SourceType.RECEIPT, id=str(receipt.pk), label=source_label, receipt=receipt),
            key=key,
            at=at,
            lots=lots,
        )
        plan_settle(plan, lots)
        open_by_id = {lot.lot_id: lot for lot in lots}
        # 1. Restore drawn points into their own lots, latest-expiring first.
        left = to_restore
        for lot in sorted(
            BonusLot.objects.filter(pk__in=[k for k, v in unrestored.items() if v > 0]),
            key=lambda lot: (lot.expires_at is None, lot.expires_at or at),
            reverse=True,
        ):
            if left <= 0:
                break
            give = min(unrestored[lot.pk], left)
            left -= give
            state = open_by_id.get(lot.pk)
            if state is None:
                state = LotState(lot.pk, ZERO, ZERO, lot.activates_at, lot.expires_at, is_new_row=True)
                plan.lots.append(state)
                open_by_id[lot.pk] = state
            plan.move(state, EntryKind.RESTORE if release is None else EntryKind.RELEASE, available=give)
            if lot.expires_at is not None and lot.expires_at <= at:
                plan.move(state, EntryKind.EXPIRY, available=-give)
                result.restored_expired += give
            else:
                result.restored += give
        # 2. Take back what the purchase accrued: its own lots first (pending, then available).
        left = to_claw
        own = [lot for lot in plan.lots if lot.lot_id in accrued_lots]
        others = sorted((lot for lot in plan.lots if lot.lot_id not in accrued_lots), key=_spend_order)
        for lot in own:
            take_pending = min(lot.pending, left)
            take_available = min(lot.available, left - take_pending)
            if take_pending or take_available:
                plan.move(lot, EntryKind.CLAWBACK, available=-take_available, pending=-take_pending)
                left -= take_pending + take_available
        left = plan_draw(plan, others, left, EntryKind.CLAWBACK)
        result.clawed_back += to_claw - left
        result.uncollected += left
        if not plan.moves:
            # Nothing to restore and nothing left to take back (the accrued points were
            # spent or expired): no operation, the uncollected part is reported.
            continue
        op = _write(plan)
        if op is None:
            raise _conflict(key)
        result.operations.append(op)
    return result


# --- set-wise runs ---------------------------------------------------------------------


def _run_chunks(
    *, kind: str, due: str, entry: str, remainder_sql: str, now: dt.datetime, chunk_size: int
) -> int:
    """Process due lots a chunk of accounts at a time, each chunk in one transaction:
    lock the chunk's due lot rows, insert one entry per due lot with ``INSERT ... SELECT``,
    move the accounts' totals with one ``UPDATE ... FROM``, then update or drop the
    remainders. ``due`` is the SQL condition on a remainder row; ``entry`` the selected
    ``kind, available_delta, pending_delta``."""
    processed = 0
    after = 0
    at = connection.ops.adapt_datetimefield_value(now)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    chunk = "account_id BETWEEN %s AND %s"
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                f"SELECT DISTINCT account_id FROM {_R} WHERE {due} AND account_id > %s "
                "ORDER BY account_id LIMIT %s",
                [at, after, chunk_size],
            )
            ids = [row[0] for row in cur.fetchall()]
            if not ids:
                return processed
            lo, hi = after, after = ids[0], ids[-1]
            cur.execute(
                f"SELECT lot_id FROM {_R} WHERE {chunk} AND {due} ORDER BY lot_id{lock}", [lo, hi, at]
            )
            op = BonusOperation.objects.create(
                kind=kind,
                account=None,
                source_type=SourceType.REGULAR_TASK,
                source_label=kind,
                created_at=now,
            )
            cur.execute(
                f"INSERT INTO {_E} (operation_id, account_id, lot_id, kind, available_delta, pending_delta, "
                f"created_at) SELECT %s, account_id, lot_id, {entry}, %s FROM {_R} WHERE {chunk} AND {due}",
                [op.pk, at, lo, hi, at],
            )
            processed += cur.rowcount
            cur.execute(
                f"UPDATE {_A} SET available = ROUND(available + s.a, 2), pending = ROUND(pending + s.p, 2) "
                f"FROM (SELECT account_id, SUM(available_delta) AS a, SUM(pending_delta) AS p FROM {_E} "
                f"WHERE operation_id = %s GROUP BY account_id) AS s WHERE {_A}.id = s.account_id",
                [op.pk],
            )
            cur.execute(f"{remainder_sql} WHERE {chunk} AND {due}", [lo, hi, at])
            moved = LedgerEntry.objects.filter(operation=op).aggregate(s=Sum("available_delta"))
            BonusOperation.objects.filter(pk=op.pk).update(amount=points(moved["s"] or ZERO))


def bonuses_activate(*, now: dt.datetime | None = None, chunk_size: int = 5000) -> int:
    """Make pending lots whose activation time has come available. Returns lots done."""
    return _run_chunks(
        kind=OperationKind.ACTIVATION,
        now=now or timezone.now(),
        chunk_size=chunk_size,
        due="activates_at <= %s AND pending > 0",
        entry="'activation', pending, -pending",
        remainder_sql=f"UPDATE {_R} SET available = ROUND(available + pending, 2), pending = 0",
    )


def bonuses_expire(*, now: dt.datetime | None = None, chunk_size: int = 5000) -> int:
    """Burn what is left of lots whose expiry time has come. Returns lots done."""
    return _run_chunks(
        kind=OperationKind.EXPIRY,
        now=now or timezone.now(),
        chunk_size=chunk_size,
        due="expires_at <= %s",
        entry="'expiry', -available, -pending",
        remainder_sql=f"DELETE FROM {_R}",
    )


# --- set-wise accrual ------------------------------------------------------------------------


def bonus_accrue_bulk(
    *,
    members_sql: str,
    params: tuple | list = (),
    currency: Currency,
    amount: Decimal,
    source: Source,
    activates_at: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Accrue a lot of ``amount`` points in ``currency`` to every member ``members_sql``
    selects (columns ``member_id`` and ``idempotency_key``), as a handful of
    ``INSERT ... SELECT`` statements whatever the number of members. Returns how many
    accruals were written.

    Each accrual is the same as ``bonus_accrue`` would write (an operation, a lot, its
    remainder, one entry, and the account's totals moved by the same amount); accounts
    missing in ``currency`` are opened. Idempotent by key: a key already on an operation
    is skipped, so a repeated or concurrent call accrues once per key. On PostgreSQL the
    accruals are one statement of data-modifying CTEs that moves the accounts' totals by
    deltas (row locks on those accounts only, no lot is locked); elsewhere writers are
    serialised and the touched accounts' totals are set to the sum of their entries."""
    amount = points(amount)
    if amount <= 0:
        raise ValueError("accrual amount must be positive")
    if source.receipt is not None or source.operator is not None:
        raise ValueError("a set-wise accrual names neither a receipt nor an operator")
    at = at or timezone.now()
    activates_at = activates_at or at
    if expires_at is not None and expires_at <= activates_at:
        raise ValueError("a lot must expire after it activates")
    pending = amount if activates_at > at else ZERO
    available = amount - pending
    entry_kind = EntryKind.ACCRUAL
    adapt = connection.ops.adapt_datetimefield_value
    stamp, act, exp = adapt(at), adapt(activates_at), adapt(expires_at) if expires_at else None
    params = list(params)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {_A} (member_id, currency_id, available, pending, created_at) "
            f"SELECT DISTINCT s.member_id, %s, 0, 0, %s FROM ({members_sql}) s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {_O} o WHERE o.idempotency_key = s.idempotency_key) "
            f"AND NOT EXISTS (SELECT 1 FROM {_A} a WHERE a.member_id = s.member_id AND a.currency_id = %s) "
            "ON CONFLICT DO NOTHING",
            [currency.pk, stamp, *params, currency.pk],
        )
        op_values = [
            OperationKind.ACCRUAL, amount, source.type, source.id, source.label, source.reason, stamp
        ]  # fmt: skip
        if connection.vendor == "postgresql":
            cur.execute(
                f"""
                WITH src AS MATERIALIZED (
                    SELECT DISTINCT ON (s.idempotency_key) s.member_id, s.idempotency_key
                    FROM ({members_sql}) s
                    WHERE NOT EXISTS (SELECT 1 FROM {_O} o WHERE o.idempotency_key = s.idempotency_key)
                ),
                op AS (
                    INSERT INTO {_O} ({_OP_COLUMNS})
                    SELECT %s, a.id, src.idempotency_key, %s::numeric, %s, %s, %s, NULL, NULL, %s,
                           %s::timestamptz
                    FROM src JOIN {_A} a ON a.member_id = src.member_id AND a.currency_id = %s
                    ON CONFLICT (idempotency_key) DO NOTHING
                    RETURNING id, account_id
                ),
                lot AS (
                    INSERT INTO {_L} (account_id, operation_id, amount, activates_at, expires_at, created_at)
                    SELECT account_id, id, %s::numeric, %s::timestamptz, %s::timestamptz, %s::timestamptz
                    FROM op RETURNING id, account_id, operation_id
                ),
                rem AS (
                    INSERT INTO {_R} (lot_id, account_id, available, pending, activates_at, expires_at)
                    SELECT id, account_id, %s::numeric, %s::numeric, %s::timestamptz, %s::timestamptz FROM lot
                ),
                ent AS (
                    INSERT INTO {_E} (operation_id, account_id, lot_id, kind, available_delta, pending_delta,
                                      created_at)
                    SELECT operation_id, account_id, id, %s, %s::numeric, %s::numeric, %s::timestamptz
                    FROM lot
                ),
                acc AS (
                    UPDATE {_A} a SET available = a.available + s.n * %s::numeric,
                                      pending = a.pending + s.n * %s::numeric
                    FROM (SELECT account_id, COUNT(*) AS n FROM lot GROUP BY account_id) s
                    WHERE a.id = s.account_id
                )
                SELECT COUNT(*) FROM lot
                """,
                [
                    *params,
                    *op_values[:6], op_values[6], currency.pk,
                    amount, act, exp, stamp,
                    available, pending, act, exp,
                    entry_kind, available, pending, stamp,
                    available, pending,
                ],
            )  # fmt: skip
            return cur.fetchone()[0]
        return _accrue_bulk_portable(
            cur, members_sql, params, currency, op_values, (amount, available, pending, act, exp, stamp)
        )


def _accrue_bulk_portable(cur, members_sql, params, currency, op_values, lot_values) -> int:
    """``bonus_accrue_bulk`` one table at a time, for SQLite (a single writer). The
    operations written by this call are recognised as accrual operations of the keys that
    have no lot yet, and their lots as those that have no entry yet: both are written in
    this transaction only."""
    amount, available, pending, act, exp, stamp = lot_values
    keys = f"(SELECT DISTINCT idempotency_key FROM ({members_sql}) s0) k"
    cur.execute(
        f"INSERT INTO {_O} ({_OP_COLUMNS}) "
        "SELECT %s, a.id, s.idempotency_key, %s, %s, %s, %s, NULL, NULL, %s, %s "
        f"FROM ({members_sql}) s JOIN {_A} a ON a.member_id = s.member_id AND a.currency_id = %s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {_O} o WHERE o.idempotency_key = s.idempotency_key) "
        "ON CONFLICT DO NOTHING",
        [*op_values, *params, currency.pk],
    )
    written = max(cur.rowcount, 0)
    if not written:
        return 0
    cur.execute(
        f"INSERT INTO {_L} (account_id, operation_id, amount, activates_at, expires_at, created_at) "
        f"SELECT o.account_id, o.id, %s, %s, %s, %s FROM {keys} "
        f"JOIN {_O} o ON o.idempotency_key = k.idempotency_key "
        f"WHERE o.kind = %s AND o.created_at = %s "
        f"AND NOT EXISTS (SELECT 1 FROM {_L} l WHERE l.operation_id = o.id)",
        [amount, act, exp, stamp, *params, OperationKind.ACCRUAL, stamp],
    )
    new_lots = (
        f"FROM {keys} JOIN {_O} o ON o.idempotency_key = k.idempotency_key "
        f"JOIN {_L} l ON l.operation_id = o.id "
        f"WHERE NOT EXISTS (SELECT 1 FROM {_E} e WHERE e.lot_id = l.id)"
    )
    cur.execute(
        f"INSERT INTO {_R} (lot_id, account_id, available, pending, activates_at, expires_at) "
        f"SELECT l.id, l.account_id, %s, %s, %s, %s {new_lots}",
        [available, pending, act, exp, *params],
    )
    cur.execute(
        f"INSERT INTO {_E} (operation_id, account_id, lot_id, kind, available_delta, pending_delta, "
        f"created_at) SELECT o.id, l.account_id, l.id, %s, %s, %s, %s {new_lots}",
        [EntryKind.ACCRUAL, available, pending, stamp, *params],
    )
    # Absolute totals, rounded to the ledger's precision (SQLite sums decimals as floats).
    cur.execute(
        f"UPDATE {_A} SET "
        f"available = ROUND((SELECT COALESCE(SUM(e.available_delta), 0) FROM {_E} e "
        f"WHERE e.account_id = {_A}.id), 2), "
        f"pending = ROUND((SELECT COALESCE(SUM(e.pending_delta), 0) FROM {_E} e "
        f"WHERE e.account_id = {_A}.id), 2) "
        f"WHERE currency_id = %s AND member_id IN (SELECT s.member_id FROM ({members_sql}) s)",
        [currency.pk, *params],
    )
    return written
