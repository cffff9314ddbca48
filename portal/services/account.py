"""What a member sees about themselves: the same reads serve the pages and the member
API. Each function is one section of a page and costs a fixed, small number of queries
whatever the member's history (asserted in the tests)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty.models import (
    Card,
    CardState,
    LedgerEntry,
    LotRemainder,
    Member,
    Receipt,
    ReceiptLine,
    ReceiptState,
    Status,
)
from loyalty.models.ledger import EntryKind, OperationKind, SourceType
from loyalty.selectors import Balance, member_balances

ZERO = Decimal("0")
QUALIFYING_DAYS = 365


@dataclass(frozen=True)
class Lot:
    currency_code: str
    amount: Decimal
    at: dt.datetime


@dataclass
class BalanceSection:
    balances: list[Balance]
    pending: list[Lot] = field(default_factory=list)  # not yet active, soonest first
    expiring: list[Lot] = field(default_factory=list)  # expiring soon, soonest first
    expiring_days: int = 30


def balance_section(member: Member, *, now: dt.datetime | None = None) -> BalanceSection:
    """Balance per currency, the lots still to activate and those expiring soon (three
    queries)."""
    now = now or timezone.now()
    days = settings.PORTAL["EXPIRING_DAYS"]
    balances = member_balances(member=member, expiring_days=days, now=now)
    codes = {b.account_id: b.currency_code for b in balances}
    horizon = now + dt.timedelta(days=days)
    rows = (
        LotRemainder.objects.filter(account_id__in=list(codes))
        .filter(Q(pending__gt=0) | Q(available__gt=0, expires_at__gt=now, expires_at__lte=horizon))
        .values_list("account_id", "pending", "available", "activates_at", "expires_at")
        .order_by("activates_at")[:200]
    )
    section = BalanceSection(balances=balances, expiring_days=days)
    for account_id, pending, available, activates_at, expires_at in rows:
        code = codes[account_id]
        if pending > 0:
            section.pending.append(Lot(code, pending, activates_at))
        if available > 0 and expires_at and now < expires_at <= horizon:
            section.expiring.append(Lot(code, available, expires_at))
    section.expiring.sort(key=lambda lot: lot.at)
    return section


@dataclass(frozen=True)
class StatusSection:
    current: Status | None
    next: Status | None
    qualifying: Decimal  # purchases over the qualifying period
    needed: Decimal | None  # what is left to reach ``next``
    percent: int  # progress to ``next``, 0–100


def status_section(member: Member, *, now: dt.datetime | None = None) -> StatusSection:
    """The member's status, the next one up and the progress to it (two queries)."""
    now = now or timezone.now()
    statuses = list(Status.objects.order_by("rank"))
    current = next((s for s in statuses if s.pk == member.status_id), None)
    above = [s for s in statuses if current is None or s.rank > current.rank]
    upcoming = next((s for s in above if s.qualifying_total is not None), None)
    qualifying = ZERO
    if upcoming is not None:
        qualifying = (
            Receipt.objects.filter(
                member=member,
                purchased_at__gte=now - dt.timedelta(days=QUALIFYING_DAYS),
                state__in=[ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED],
            ).aggregate(total=Sum("total"))["total"]
            or ZERO
        )
    if upcoming is None:
        return StatusSection(current, None, qualifying, None, 100)
    target = upcoming.qualifying_total or ZERO
    needed = max(target - qualifying, ZERO)
    percent = 100 if target <= 0 else min(100, int(qualifying * 100 / target))
    return StatusSection(current, upcoming, qualifying, needed, percent)


def card_section(member: Member) -> Card | None:
    """The card to show (the newest working one; one query)."""
    return (
        Card.objects.filter(member=member, state__in=[CardState.ACTIVATED, CardState.ISSUED])
        .order_by("-activated_at", "-issued_at")
        .first()
    )


def member_cards(member: Member) -> list[Card]:
    return list(Card.objects.filter(member=member).order_by("-issued_at"))


# --- history ----------------------------------------------------------------------------
def receipts_page(member: Member, *, before_id: int | None = None, limit: int = 20) -> list[Receipt]:
    """Receipts newest first with their lines and point of sale (two queries)."""
    receipts = (
        Receipt.objects.filter(member=member)
        .exclude(state=ReceiptState.CALCULATED)
        .select_related("point_of_sale")
        .prefetch_related(Prefetch("lines", queryset=ReceiptLine.objects.order_by("position")))
        .order_by("-purchased_at", "-id")
    )
    if before_id:
        # The cursor is the last receipt shown: pages follow (purchased_at, id), so a
        # receipt sent in late is neither skipped nor shown twice.
        cursor = (
            Receipt.objects.filter(member=member, pk=before_id).values_list("purchased_at", flat=True).first()
        )
        if cursor is None:
            return []
        receipts = receipts.filter(Q(purchased_at__lt=cursor) | Q(purchased_at=cursor, id__lt=before_id))
    return list(receipts[:limit])


def receipt_of(member: Member, receipt_id: int) -> Receipt | None:
    """One of the member's own receipts, or ``None`` (another member's is not found)."""
    return (
        Receipt.objects.filter(member=member, pk=receipt_id)
        .exclude(state=ReceiptState.CALCULATED)
        .select_related("point_of_sale")
        .prefetch_related(Prefetch("lines", queryset=ReceiptLine.objects.order_by("position")))
        .first()
    )


def movements_page(member: Member, *, limit: int = 50, offset: int = 0) -> list[LedgerEntry]:
    """Ledger movements newest first with what caused them (one query)."""
    return list(
        LedgerEntry.objects.filter(account__member=member)
        .select_related("operation", "operation__receipt", "account__currency", "lot")
        .order_by("-created_at", "-id")[offset : offset + limit]
    )


def movement_reason(entry: LedgerEntry) -> str:
    """Why the points moved, in the member's words (never an operator's name)."""
    op = entry.operation
    receipt = op.receipt if op else None
    label = op.source_label if op else ""
    if entry.kind == EntryKind.ACTIVATION:
        return _("Bonuses became available")
    if entry.kind == EntryKind.EXPIRY:
        return _("Bonuses expired")
    if op is None:
        return entry.get_kind_display()
    if op.kind == OperationKind.SPEND:
        if receipt:
            return _("Paid for purchase %(number)s") % {"number": receipt.external_id}
        return _("Bonuses spent")
    if op.kind == OperationKind.REFUND:
        if receipt:
            return _("Purchase %(number)s returned") % {"number": receipt.external_id}
        return _("Returned purchase")
    if op.kind == OperationKind.RELEASE:
        if receipt:
            return _("Purchase %(number)s cancelled, bonuses returned") % {"number": receipt.external_id}
        return _("Purchase cancelled, bonuses returned")
    if op.kind == OperationKind.ADJUSTMENT:
        return op.reason or _("Correction by the program's support")
    if op.source_type == SourceType.RECEIPT and receipt:
        return _("For purchase %(number)s") % {"number": receipt.external_id}
    if op.source_type == SourceType.OFFER:
        if receipt:
            return _("%(offer)s, purchase %(number)s") % {
                "offer": label or _("Offer"),
                "number": receipt.external_id,
            }
        return label or _("Offer")
    if op.source_type == SourceType.REGULAR_TASK:
        return label or _("Gift from the program")
    if op.source_type == SourceType.CAMPAIGN:
        return label or _("Campaign")
    if receipt:
        return _("For purchase %(number)s") % {"number": receipt.external_id}
    return label or op.reason or op.get_kind_display()


def receipt_bonuses(receipts: list[Receipt]) -> dict[int, dict[str, Decimal]]:
    """What each receipt earned and spent, from the ledger (one query)."""
    out: dict[int, dict[str, Decimal]] = {r.pk: {"earned": ZERO, "spent": ZERO} for r in receipts}
    if not receipts:
        return out
    rows = LedgerEntry.objects.filter(operation__receipt_id__in=list(out)).values_list(
        "operation__receipt_id", "operation__kind", "available_delta", "pending_delta"
    )
    for receipt_id, kind, available, pending in rows:
        if kind == OperationKind.SPEND:
            out[receipt_id]["spent"] += -available
        elif kind in (OperationKind.ACCRUAL,):
            out[receipt_id]["earned"] += available + pending
    return out
