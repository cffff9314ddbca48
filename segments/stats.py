"""Per-member purchase figures (``MemberPurchaseStats``): all time and rolling windows.

Three ways keep them true, all set-wise or one row at a time, never a rescan per member:

* ``stats_add_receipt`` — a confirmed purchase adds to its member's row (called from the
  ``purchase_completed`` event handler after commit; a full refund takes it away again);
* ``stats_age`` — the nightly run subtracts what left each window since the last run
  (only the receipts that crossed a window boundary: about a day's worth);
* ``stats_rebuild`` — recomputes every row from the receipts (after a bulk load, or to
  repair), with one ``INSERT ... SELECT``.

The purchases by product group (``MemberGroupPurchase``: first and last purchase and
receipts per member and the product's group) are kept alongside: a purchase adds its
groups, a full refund recomputes its member's rows, the rebuild recomputes them all.
They have no windows to age: "in the last N days" compares the last purchase.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from loyalty.models import Product, Receipt, ReceiptKind, ReceiptLine, ReceiptState
from segments.models import STATS_WINDOWS, MemberGroupPurchase, MemberPurchaseStats, StatsClock

SALE_STATES = (ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED)
_S = MemberPurchaseStats._meta.db_table
_G = MemberGroupPurchase._meta.db_table
_RECEIPTS = Receipt._meta.db_table
_LINES = ReceiptLine._meta.db_table
_PRODUCTS = Product._meta.db_table


def _sales_where() -> tuple[str, list]:
    return "kind = %s AND state IN (%s, %s) AND member_id IS NOT NULL", [ReceiptKind.SALE, *SALE_STATES]


@transaction.atomic
def stats_rebuild(*, now: dt.datetime | None = None) -> int:
    """Recompute every member's figures from the receipts; returns rows written."""
    now = now or timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    where, params = _sales_where()
    windows = []
    window_params = []
    for days in STATS_WINDOWS:
        since = connection.ops.adapt_datetimefield_value(now - dt.timedelta(days=days))
        windows.append(
            "COUNT(*) FILTER (WHERE purchased_at >= %s), COALESCE(SUM(total) FILTER (WHERE purchased_at >= %s), 0)"
        )
        window_params += [since, since]
    columns = ", ".join(f"count_{d}, total_{d}" for d in STATS_WINDOWS)
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {_S}")
        cur.execute(
            f"INSERT INTO {_S} (member_id, first_purchase_at, last_purchase_at, count_all, total_all, {columns}) "
            f"SELECT member_id, MIN(purchased_at), MAX(purchased_at), COUNT(*), SUM(total), {', '.join(windows)} "
            f"FROM {_RECEIPTS} WHERE {where} AND purchased_at <= %s GROUP BY member_id",
            [*window_params, *params, at],
        )
        written = cur.rowcount
    groups_rebuild(now=now)
    StatsClock.objects.all().delete()
    StatsClock.objects.create(aged_at=now)
    return written


def _groups_select(where: str) -> str:
    """Per (member, group): first and last purchase and receipts, over the sales that
    ``where`` (on receipt ``r``) keeps."""
    return (
        f"SELECT g.member_id, g.group_id, MIN(g.purchased_at), MAX(g.purchased_at), COUNT(*) FROM ("
        f"  SELECT DISTINCT r.id, r.member_id, r.purchased_at, p.group_id FROM {_RECEIPTS} r "
        f"  JOIN {_LINES} l ON l.receipt_id = r.id JOIN {_PRODUCTS} p ON p.id = l.product_id "
        f"  WHERE {where} AND p.group_id IS NOT NULL"
        f") g GROUP BY g.member_id, g.group_id"
    )


def _sales_where_r() -> tuple[str, list]:
    return "r.kind = %s AND r.state IN (%s, %s) AND r.member_id IS NOT NULL", [ReceiptKind.SALE, *SALE_STATES]


@transaction.atomic
def groups_rebuild(*, now: dt.datetime | None = None) -> int:
    """Recompute every member's purchases by product group from the receipts."""
    now = now or timezone.now()
    where, params = _sales_where_r()
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute(f"DELETE FROM {_G}")
        cur.execute(
            f"INSERT INTO {_G} (member_id, group_id, first_purchase_at, last_purchase_at, receipts) "
            + _groups_select(f"{where} AND r.purchased_at <= %s"),
            [*params, at],
        )
        return cur.rowcount


def groups_recompute_member(member_id: int) -> None:
    """Recompute one member's purchases by product group (after a refund)."""
    where, params = _sales_where_r()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"DELETE FROM {_G} WHERE member_id = %s", [member_id])
        cur.execute(
            f"INSERT INTO {_G} (member_id, group_id, first_purchase_at, last_purchase_at, receipts) "
            + _groups_select(f"{where} AND r.member_id = %s"),
            [*params, member_id],
        )


def _groups_upsert_sql() -> str:
    """Add one sale's product groups to its member's rows; parameters: member id,
    purchased at (twice), receipt id. Each line's group is looked up by the product's
    key (a scalar subquery, kept apart on PostgreSQL by ``OFFSET 0`` so that it runs once
    a line): a join let the planner hash the whole catalog for a receipt's thirty lines."""
    g = _G
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    return (
        f"INSERT INTO {g} (member_id, group_id, first_purchase_at, last_purchase_at, receipts) "
        f"SELECT DISTINCT %s, s.group_id, %s, %s, 1 FROM (SELECT (SELECT p.group_id FROM {_PRODUCTS} p "
        f"WHERE p.id = l.product_id) AS group_id FROM {_LINES} l WHERE l.receipt_id = %s{fence}) s "
        f"WHERE s.group_id IS NOT NULL "
        f"ON CONFLICT (member_id, group_id) DO UPDATE SET receipts = {g}.receipts + 1, "
        f"first_purchase_at = CASE WHEN excluded.first_purchase_at < {g}.first_purchase_at "
        f"THEN excluded.first_purchase_at ELSE {g}.first_purchase_at END, "
        f"last_purchase_at = CASE WHEN excluded.last_purchase_at > {g}.last_purchase_at "
        f"THEN excluded.last_purchase_at ELSE {g}.last_purchase_at END"
    )


def _groups_params(receipt: "Receipt | Sale") -> list:
    return [receipt.member_id, receipt.purchased_at, receipt.purchased_at, receipt.pk]


def groups_add_receipt(receipt: Receipt) -> None:
    """Add one sale's product groups to its member's rows (one statement)."""
    with connection.cursor() as cur:
        cur.execute(_groups_upsert_sql(), _groups_params(receipt))


def _window_changes(purchased_at: dt.datetime, total: Decimal, sign: int, now: dt.datetime) -> dict:
    changes = {"count_all": F("count_all") + sign, "total_all": F("total_all") + sign * total}
    for days in STATS_WINDOWS:
        if purchased_at >= now - dt.timedelta(days=days):
            changes[f"count_{days}"] = F(f"count_{days}") + sign
            changes[f"total_{days}"] = F(f"total_{days}") + sign * total
    return changes


def _stats_upsert_sql(receipt: "Receipt | Sale", now: dt.datetime) -> tuple[str, list]:
    """Add one sale to its member's row, making the row on the member's first purchase:
    one ``INSERT ... ON CONFLICT DO UPDATE`` (a concurrent first purchase of the same
    member waits on the row and adds to it)."""
    s = _S
    columns, values = ["count_all", "total_all"], [1, receipt.total]
    for days in STATS_WINDOWS:
        inside = receipt.purchased_at >= now - dt.timedelta(days=days)
        columns += [f"count_{days}", f"total_{days}"]
        values += [1 if inside else 0, receipt.total if inside else Decimal(0)]
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    at = connection.ops.adapt_datetimefield_value(receipt.purchased_at)
    sql = (
        f"INSERT INTO {s} (member_id, first_purchase_at, last_purchase_at, {', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * (len(columns) + 3))}) "
        f"ON CONFLICT (member_id) DO UPDATE SET "
        + ", ".join(f"{c} = {s}.{c} + excluded.{c}" for c in columns)
        + f", first_purchase_at = {least}(COALESCE({s}.first_purchase_at, excluded.first_purchase_at), "
        f"excluded.first_purchase_at), last_purchase_at = {greatest}(COALESCE({s}.last_purchase_at, "
        f"excluded.last_purchase_at), excluded.last_purchase_at)"
    )
    return sql, [receipt.member_id, at, at, *values]


@dataclass(frozen=True)
class Sale:
    """What the figures need of a confirmed sale (named as on ``Receipt``)."""

    pk: int
    member_id: int
    purchased_at: dt.datetime
    total: Decimal


def sale_add(sale: Sale | Receipt, *, now: dt.datetime | None = None) -> None:
    """Add one sale to its member's figures, no savepoint of its own: on PostgreSQL one
    statement (the groups' upsert as a data-modifying CTE of the figures' upsert), on
    other databases two."""
    now = now or timezone.now()
    stats_sql, stats_params = _stats_upsert_sql(sale, now)
    with transaction.atomic(savepoint=False), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                f"WITH groups AS ({_groups_upsert_sql()}) {stats_sql}", [*_groups_params(sale), *stats_params]
            )
        else:
            cur.execute(_groups_upsert_sql(), _groups_params(sale))
            cur.execute(stats_sql, stats_params)


def stats_add_receipt(receipt: Receipt, *, sign: int = 1, now: dt.datetime | None = None) -> None:
    """Add (or with ``sign=-1`` take away) one sale to its member's figures."""
    if receipt.member_id is None or receipt.kind != ReceiptKind.SALE:
        return
    now = now or timezone.now()
    if sign > 0:
        sale_add(receipt, now=now)
        return
    with transaction.atomic():
        groups_recompute_member(receipt.member_id)
        # One statement: the figures without the sale (first and last purchase stay).
        MemberPurchaseStats.objects.filter(member_id=receipt.member_id).update(
            **_window_changes(receipt.purchased_at, receipt.total, sign, now)
        )


@transaction.atomic
def stats_age(*, now: dt.datetime | None = None) -> int:
    """Subtract the sales that left each window since the last run: for the 30-day window,
    the receipts bought between 30 days before the last run and 30 days before now; and
    so on. Returns the number of (receipt, window) pairs aged out."""
    now = now or timezone.now()
    clock = StatsClock.objects.select_for_update().first()
    if clock is None:
        stats_rebuild(now=now)
        return 0
    if now <= clock.aged_at:
        return 0
    where, params = _sales_where()
    aged = 0
    with connection.cursor() as cur:
        for days in STATS_WINDOWS:
            start = connection.ops.adapt_datetimefield_value(clock.aged_at - dt.timedelta(days=days))
            end = connection.ops.adapt_datetimefield_value(now - dt.timedelta(days=days))
            cur.execute(
                f"UPDATE {_S} SET count_{days} = count_{days} - s.n, total_{days} = ROUND(total_{days} - s.t, 2) "
                f"FROM (SELECT member_id, COUNT(*) AS n, SUM(total) AS t FROM {_RECEIPTS} "
                f"WHERE {where} AND purchased_at >= %s AND purchased_at < %s GROUP BY member_id) AS s "
                f"WHERE {_S}.member_id = s.member_id",
                [*params, start, end],
            )
            aged += cur.rowcount
    clock.aged_at = now
    clock.save(update_fields=["aged_at"])
    return aged


def on_purchase_completed(event) -> None:
    """Event handler, in the confirming transaction: the sale counts in its member's
    figures exactly when the receipt is confirmed. Only a receipt's confirmation records
    this event; it carries the receipt's id and total and occurred at the purchase."""
    payload = event.payload or {}
    if event.member_id is None or not payload.get("receipt_id"):
        return
    sale_add(
        Sale(
            pk=payload["receipt_id"],
            member_id=event.member_id,
            purchased_at=event.occurred_at,
            total=Decimal(payload["total"]),
        )
    )


def on_purchase_refunded(event) -> None:
    """Event handler: a fully refunded sale no longer counts."""
    receipt_id = (event.payload or {}).get("receipt_id")
    receipt = Receipt.objects.filter(pk=receipt_id).first() if receipt_id else None
    if receipt is not None and receipt.state == ReceiptState.REFUNDED:
        stats_add_receipt(receipt, sign=-1)
