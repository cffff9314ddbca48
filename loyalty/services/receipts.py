"""Receipts: record, confirm (spend and accrue), cancel, refund in full or in part.

The offers engine decides discounts and accruals; these services only store a receipt
and move the ledger as told, atomically.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty import refcache
from loyalty.models import (
    BonusAccount,
    Card,
    CardState,
    Currency,
    Member,
    MemberState,
    PaymentMethod,
    PointOfSale,
    Product,
    Receipt,
    ReceiptKind,
    ReceiptLine,
    ReceiptPayment,
    ReceiptState,
    SourceType,
)
from loyalty.prepared import PreparedRead, insert_family
from loyalty.services import ledger
from loyalty.services.errors import CardStateError, MemberBlocked, ReceiptStateError
from loyalty.services.events import event_record

ZERO = Decimal("0")
# Payment methods are read through the reference cache for this long.
METHOD_SECONDS = 60.0


# A receipt's lines are made with their values in the order of the model's fields
# (``receipt_store``): twice as fast as by keyword, and a receipt has dozens of lines.
_LINE_FIELDS = (
    "id",
    "receipt_id",
    "position",
    "product_id",
    "sku",
    "name",
    "quantity",
    "price",
    "amount",
    "discount",
)
if tuple(f.attname for f in ReceiptLine._meta.concrete_fields) != _LINE_FIELDS:
    raise ImproperlyConfigured("ReceiptLine's fields changed: update receipt_store and _LINE_FIELDS")

# ``LineInput.product_id`` when the caller has not looked the product up.
UNRESOLVED = -1


@dataclass(frozen=True)
class LineInput:
    sku: str
    quantity: Decimal
    price: Decimal
    discount: Decimal = ZERO
    name: str = ""
    # The product of the SKU when the caller knows it (None: no such product); by default
    # it is looked up.
    product_id: int | None = UNRESOLVED


@dataclass(frozen=True)
class AccrualInput:
    amount: Decimal
    currency: Currency | None = None
    activates_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    source: ledger.Source | None = None


@dataclass(frozen=True)
class PaymentInput:
    method: str  # PaymentMethod.code
    amount: Decimal


@dataclass
class ConfirmInput:
    bonus_payment: Decimal = ZERO
    accruals: list[AccrualInput] = field(default_factory=list)
    # The member's accounts the caller has read in this request (currency id -> account
    # id), so that they are not looked up again.
    accounts: dict[int, int] = field(default_factory=dict)
    # ``accounts`` is every account the member had when read in this transaction: one
    # missing from it is made without looking for it first (a first purchase).
    accounts_complete: bool = False


def _figures(confirm: ConfirmInput) -> tuple[Decimal, Decimal]:
    """The receipt's bonus paid and bonus accrued once ``confirm`` is carried out."""
    paid = ledger.points(confirm.bonus_payment) if confirm.bonus_payment > 0 else ZERO
    return paid, sum((ledger.points(a.amount) for a in confirm.accruals), ZERO)


def _account(member: Member, currency: Currency | None, confirm: ConfirmInput) -> BonusAccount | int:
    if currency is not None and currency.pk in confirm.accounts:
        return confirm.accounts[currency.pk]
    return ledger.account_get_or_create(
        member=member, currency=currency, missing=currency is not None and confirm.accounts_complete
    )


def _identify(card: Card | None, member: Member | None) -> Member | None:
    if card is not None:
        if card.state == CardState.BLOCKED:
            raise CardStateError(_("Card is blocked."))
        if card.state == CardState.REPLACED:
            raise CardStateError(_("Card %(number)s was replaced.") % {"number": card.number})
        member = member or card.member
    if member is not None and member.state == MemberState.BLOCKED:
        raise MemberBlocked(_("Member is blocked."))
    return member


def _relations_kept(given: Receipt, locked: Receipt) -> Receipt:
    """The row read again under its lock, with the member, card and point of sale the
    caller already loaded (when they are still the receipt's), not read a second time."""
    for name in ("member", "card", "point_of_sale"):
        field = Receipt._meta.get_field(name)
        if field.is_cached(given) and getattr(given, field.attname) == getattr(locked, field.attname):
            field.set_cached_value(locked, field.get_cached_value(given))
    return locked


def _payment_methods(codes: list[str]) -> dict[str, int]:
    """Payment method ids by code, through the reference cache (a method added since is
    looked up at once; an unknown code is absent)."""
    return refcache.cached_many(
        "payment_method_id",
        set(codes),
        lambda missing: dict(PaymentMethod.objects.filter(code__in=missing).values_list("code", "pk")),
        ttl=METHOD_SECONDS,
    )


def _products(lines: list[LineInput]) -> dict[str, tuple[int | None, str]]:
    """``{sku: (product id, name)}`` for the lines whose caller did not resolve them."""
    skus = [ln.sku for ln in lines if ln.product_id == UNRESOLVED]
    if not skus:
        return {}
    found = Product.objects.filter(sku__in=skus).values_list("sku", "pk", "name")
    return {sku: (pk, name) for sku, pk, name in found}


# A sale by its point of sale's receipt id, looked for on every confirmation: the SQL is
# written once (see loyalty.prepared).
_SALE_AT_POINT = PreparedRead(
    Receipt, where="{t}.point_of_sale_id = %s AND {t}.kind = %s AND {t}.external_id = %s"
)


def receipt_record(
    *,
    point_of_sale: PointOfSale,
    external_id: str,
    lines: list[LineInput],
    payments: list[PaymentInput] = (),
    card: Card | None = None,
    member: Member | None = None,
    purchased_at: dt.datetime | None = None,
) -> Receipt:
    """Store a calculated receipt with its lines and payments. The same external id at
    the same point of sale returns the stored receipt (a repeated request)."""
    receipt, _created = receipt_store(
        point_of_sale=point_of_sale,
        external_id=external_id,
        lines=lines,
        payments=payments,
        card=card,
        member=member,
        purchased_at=purchased_at,
    )
    return receipt


def receipt_state_error(receipt: Receipt) -> ReceiptStateError:
    """The refusal of a change the receipt's state does not allow."""
    return ReceiptStateError(_("Receipt is %(state)s.") % {"state": receipt.get_state_display().lower()})


@transaction.atomic(savepoint=False)
def receipt_store(
    *,
    point_of_sale: PointOfSale,
    external_id: str,
    lines: list[LineInput],
    payments: list[PaymentInput] = (),
    card: Card | None = None,
    member: Member | None = None,
    purchased_at: dt.datetime | None = None,
    confirmed: ConfirmInput | None = None,
) -> tuple[Receipt, bool]:
    """``receipt_record`` telling whether the receipt was stored now (``True``: this
    transaction inserted it and holds its row; its lines are on it, not to be read
    again). ``confirmed``: a new receipt is inserted confirmed with these figures, and
    the caller's ``receipt_confirm(stored_now=True)`` in the same transaction moves the
    bonuses (one write of the row instead of two). Joins the caller's transaction
    without a savepoint of its own: an error rolls the caller's transaction back."""
    member = _identify(card, member)
    if not lines:
        raise ValidationError({"lines": _("A receipt needs at least one line.")})
    products = _products(lines)
    methods = _payment_methods([p.method for p in payments]) if payments else {}
    errors = {}
    for i, ln in enumerate(lines):
        if ln.quantity <= 0:
            errors[f"lines[{i}].quantity"] = _("Quantity must be positive.")
        if ln.price < 0:
            errors[f"lines[{i}].price"] = _("Price cannot be negative.")
        if ln.discount < 0 or ln.discount > ln.quantity * ln.price:
            errors[f"lines[{i}].discount"] = _("Discount must be between 0 and the line amount.")
    for i, p in enumerate(payments):
        if p.method not in methods:
            errors[f"payments[{i}].method"] = _("Unknown payment method %(code)s.") % {"code": p.method}
    if errors:
        raise ValidationError(errors)
    receipt = Receipt(
        point_of_sale=point_of_sale,
        external_id=external_id,
        card=card,
        member=member,
        purchased_at=purchased_at or timezone.now(),
    )
    line_rows = []
    points = ledger.points
    for i, ln in enumerate(lines, start=1):
        if ln.product_id == UNRESOLVED:
            product_id, product_name = products.get(ln.sku, (None, ""))
        else:
            product_id, product_name = ln.product_id, ""
        # id, receipt, position, product, sku, name, quantity, price, amount, discount
        line_rows.append(
            ReceiptLine(
                None,
                None,
                i,
                product_id,
                ln.sku,
                ln.name or product_name,
                ln.quantity,
                ln.price,
                points(ln.quantity * ln.price),
                points(ln.discount),
            )
        )
    receipt.amount = sum((r.amount for r in line_rows), ZERO)
    receipt.discount = sum((r.discount for r in line_rows), ZERO)
    receipt.total = receipt.amount - receipt.discount
    if confirmed is not None:
        receipt.state, receipt.confirmed_at = ReceiptState.CONFIRMED, timezone.now()
        receipt.bonus_paid, receipt.bonus_accrued = _figures(confirmed)
    paid = [ReceiptPayment(method_id=methods[p.method], amount=ledger.points(p.amount)) for p in payments]
    # With its lines and payments, in one statement on PostgreSQL. The receipt id stored
    # before (a repeat), or by a concurrent request first: then that one stands. (Insert
    # first, read on conflict: a repeat is rare, a new receipt is not.)
    if not insert_family(
        receipt,
        unique_fields=("point_of_sale", "kind", "external_id"),
        children=[
            (ReceiptLine, "receipt", line_rows),
            (ReceiptPayment, "receipt", paid),
        ],
    ):
        return _SALE_AT_POINT.first(point_of_sale.pk, ReceiptKind.SALE, external_id), False
    # As prefetch_related leaves them: receipt.lines.all() answers without a query.
    receipt._prefetched_objects_cache = {"lines": line_rows}
    return receipt, True


@transaction.atomic(savepoint=False)
def receipt_confirm(
    *, receipt: Receipt, confirm: ConfirmInput | None = None, stored_now: bool = False
) -> Receipt:
    """Finalise a calculated receipt: pay ``bonus_payment`` from the member's default
    account, accrue the given lots, record ``purchase_completed`` (and ``friend_purchase``
    for the member's referrer). Confirming twice is a no-op. Locks the receipt's row
    first, unless ``stored_now``: the caller's transaction inserted it (``receipt_store``),
    so it holds the row and the instance is current; inserted already confirmed
    (``receipt_store(confirmed=confirm)``), the row is not written again. Joins the
    caller's transaction without a savepoint of its own."""
    confirm = confirm or ConfirmInput()
    if not stored_now:
        receipt = _relations_kept(receipt, Receipt.objects.select_for_update().get(pk=receipt.pk))
    # Inserted confirmed by this transaction (receipt_store(confirmed=...)): the row holds
    # the figures already; the bonuses are moved here.
    inserted_confirmed = stored_now and receipt.state == ReceiptState.CONFIRMED
    if receipt.state == ReceiptState.CONFIRMED and not inserted_confirmed:
        return receipt
    if receipt.state not in (ReceiptState.CALCULATED, ReceiptState.CONFIRMED):
        raise receipt_state_error(receipt)
    member = receipt.member
    if (confirm.bonus_payment > 0 or confirm.accruals) and member is None:
        raise ValidationError({"member": _("Bonuses need an identified member.")})
    label = _("Receipt %(id)s") % {"id": receipt.external_id}
    # A calculated receipt's bonus_paid is what its reservation holds: the payment takes
    # it, drawing more or giving back the rest.
    held = receipt.bonus_paid if receipt.state == ReceiptState.CALCULATED else ZERO
    pay = ledger.points(confirm.bonus_payment) if confirm.bonus_payment > 0 else ZERO
    if pay > held:
        _payable(receipt, pay)
        account = ledger.account_get_or_create(member=member)
        spent = ledger.bonus_spend(
            account=account,
            amount=pay - held,
            source=ledger.Source(type=SourceType.RECEIPT, id=str(receipt.pk), label=label, receipt=receipt),
            idempotency_key=f"receipt:{receipt.pk}:spend",
        )
        _available_after(receipt, account.currency_id, spent)
    elif pay < held:
        _hold_release(receipt, held - pay)
    receipt.bonus_paid = pay
    accrued = ZERO
    for i, accrual in enumerate(confirm.accruals):
        account = _account(member, accrual.currency, confirm)
        source = accrual.source or ledger.Source(type=SourceType.RECEIPT, id=str(receipt.pk), label=label)
        source = ledger.Source(
            type=source.type, id=source.id, label=source.label, receipt=receipt, reason=source.reason
        )
        accrued_op = ledger.bonus_accrue(
            account=account,
            amount=accrual.amount,
            source=source,
            activates_at=accrual.activates_at,
            expires_at=accrual.expires_at,
            idempotency_key=f"receipt:{receipt.pk}:accrual:{i}",
        )
        _available_after(
            receipt, accrual.currency.pk if accrual.currency else account.currency_id, accrued_op
        )
        accrued += ledger.points(accrual.amount)
    if inserted_confirmed:
        if (receipt.bonus_paid, receipt.bonus_accrued) != _figures(confirm):
            raise ValueError("the receipt was inserted with other figures than it is confirmed with")
    else:
        receipt.bonus_accrued = accrued
        receipt.state, receipt.confirmed_at = ReceiptState.CONFIRMED, timezone.now()
        receipt.save(update_fields=["state", "confirmed_at", "bonus_paid", "bonus_accrued"])
    if member is not None:
        payload = {
            "receipt_id": receipt.pk,
            "total": str(receipt.total),
            "bonus_paid": str(receipt.bonus_paid),
            "bonus_accrued": str(accrued),
        }
        event_record(
            event_type="purchase_completed",
            member=member,
            point_of_sale=receipt.point_of_sale,
            payload=payload,
            occurred_at=receipt.purchased_at,
        )
        if member.referrer_id:
            event_record(
                event_type="friend_purchase",
                member=member.referrer,
                point_of_sale=receipt.point_of_sale,
                payload={**payload, "friend_id": member.pk},
                occurred_at=receipt.purchased_at,
            )
    return receipt


def _available_after(receipt: Receipt, currency_id: int, op) -> None:
    """Keep on the receipt what its operations left available in each of the member's
    currencies (``receipt.available_after``: currency id -> balance), where the ledger
    says (PostgreSQL's accruals); elsewhere the caller reads the account."""
    available = getattr(op, "available_after", None)
    if not hasattr(receipt, "available_after"):
        receipt.available_after = {}
    if available is None:
        receipt.available_after.pop(currency_id, None)
    else:
        receipt.available_after[currency_id] = available


def _payable(receipt: Receipt, amount: Decimal) -> None:
    """Refuse a payment with bonuses the receipt's card or total does not allow."""
    if receipt.card is not None and receipt.card.state != CardState.ACTIVATED:
        raise CardStateError(_("Bonuses can only be paid with an activated card."))
    if amount > receipt.total:
        raise ValidationError({"bonus_payment": _("Cannot pay more than the receipt total.")})


def _hold_release(receipt: Receipt, amount: Decimal) -> None:
    """Give ``amount`` of the bonuses held for the receipt back into the lots they came
    from (a lot that expired meanwhile gets them back expired)."""
    n = receipt.bonus_operations.count()
    ledger.bonus_refund(
        receipt=receipt,
        release=amount,
        source_label=_("Receipt %(id)s: reservation released") % {"id": receipt.external_id},
        idempotency_key=f"receipt:{receipt.pk}:release:{n}",
    )


@transaction.atomic(savepoint=False)
def receipt_hold(*, receipt: Receipt, amount: Decimal) -> Receipt:
    """Reserve ``amount`` of the member's bonuses to pay for a calculated receipt: they
    leave the available balance now (so nothing else spends them) and become the
    payment when the receipt is confirmed, or go back when it is cancelled or the
    reservation lapses (``receipt_holds_release``). The caller holds the receipt's row
    (it inserted it). Joins the caller's transaction without a savepoint of its own."""
    amount = ledger.points(amount)
    if amount <= 0:
        return receipt
    if receipt.state != ReceiptState.CALCULATED:
        raise receipt_state_error(receipt)
    if receipt.member is None:
        raise ValidationError({"member": _("Bonuses need an identified member.")})
    _payable(receipt, receipt.bonus_paid + amount)
    account = ledger.account_get_or_create(member=receipt.member)
    held = ledger.bonus_spend(
        account=account,
        amount=amount,
        source=ledger.Source(
            type=SourceType.RECEIPT,
            id=str(receipt.pk),
            label=_("Receipt %(id)s: reserved until confirmed") % {"id": receipt.external_id},
            receipt=receipt,
        ),
        idempotency_key=f"receipt:{receipt.pk}:hold:{receipt.bonus_operations.count()}",
    )
    _available_after(receipt, account.currency_id, held)
    receipt.bonus_paid += amount
    receipt.save(update_fields=["bonus_paid"])
    return receipt


@transaction.atomic
def receipt_cancel(*, receipt: Receipt) -> Receipt:
    """Drop a calculated (not yet confirmed) receipt, giving back the bonuses reserved
    for it."""
    receipt = _relations_kept(receipt, Receipt.objects.select_for_update().get(pk=receipt.pk))
    if receipt.state == ReceiptState.CANCELLED:
        return receipt
    if receipt.state != ReceiptState.CALCULATED:
        raise ReceiptStateError(_("Only a calculated receipt can be cancelled; refund a confirmed one."))
    if receipt.bonus_paid > 0:
        _hold_release(receipt, receipt.bonus_paid)
    receipt.state, receipt.bonus_paid = ReceiptState.CANCELLED, ZERO
    receipt.save(update_fields=["state", "bonus_paid"])
    return receipt


def receipt_holds_release(*, older_than: dt.timedelta, now: dt.datetime | None = None) -> int:
    """Cancel the calculated receipts whose reservation was made more than
    ``older_than`` ago and never confirmed or cancelled (the till went away), giving the
    bonuses they hold back. Each receipt in its own short transaction; one a till is
    confirming right now is left to that till. Returns how many were cancelled."""
    cutoff = (now or timezone.now()) - older_than
    stale = Receipt.objects.filter(
        kind=ReceiptKind.SALE, state=ReceiptState.CALCULATED, created_at__lt=cutoff
    )
    released = 0
    for pk in stale.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=500):
        with transaction.atomic():
            receipt = Receipt.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if receipt is None or receipt.state != ReceiptState.CALCULATED:
                continue
            receipt_cancel(receipt=receipt)
            released += 1
    return released


@transaction.atomic
def receipt_refund(
    *,
    receipt: Receipt,
    external_id: str,
    lines: list[LineInput] | None = None,
    at: dt.datetime | None = None,
) -> Receipt:
    """Refund a confirmed receipt, wholly (``lines`` omitted) or the given lines. Bonuses
    follow the refunded share of the receipt total: paid bonuses go back to their lots,
    accrued ones are taken back. The same ``external_id`` twice is one refund."""
    receipt = Receipt.objects.select_for_update().get(pk=receipt.pk)
    existing = receipt.refunds.filter(external_id=external_id).first()
    if existing is not None:
        return existing
    if receipt.state not in (ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED):
        raise receipt_state_error(receipt)
    already = sum((r.total for r in receipt.refunds.all()), ZERO)
    remaining = receipt.total - already
    if lines is None:
        refund_lines = [
            LineInput(sku=ln.sku, quantity=ln.quantity, price=ln.price, discount=ln.discount, name=ln.name)
            for ln in receipt.lines.all()
        ]
        amount = remaining
    else:
        refund_lines = lines
        amount = sum((ledger.points(ln.quantity * ln.price) - ln.discount for ln in lines), ZERO)
    if amount <= 0 or amount > remaining:
        raise ValidationError(
            {
                "lines": _("Refund amount must be positive and at most %(remaining)s.")
                % {"remaining": remaining}
            }
        )
    refund = Receipt.objects.create(
        point_of_sale=receipt.point_of_sale,
        external_id=external_id,
        kind=ReceiptKind.REFUND,
        refund_of=receipt,
        card=receipt.card,
        member=receipt.member,
        state=ReceiptState.CONFIRMED,
        purchased_at=at or timezone.now(),
        confirmed_at=timezone.now(),
        amount=amount,
        total=amount,
    )
    ReceiptLine.objects.bulk_create(
        [
            ReceiptLine(
                receipt=refund,
                position=i,
                sku=ln.sku,
                name=ln.name,
                quantity=ln.quantity,
                price=ln.price,
                amount=ledger.points(ln.quantity * ln.price),
                discount=ln.discount,
            )
            for i, ln in enumerate(refund_lines, start=1)
        ]
    )
    share = Decimal(1) if amount == remaining else (amount / receipt.total)
    result = ledger.bonus_refund(
        receipt=receipt,
        share=share,
        source_label=_("Refund %(id)s") % {"id": external_id},
        idempotency_key=f"refund:{refund.pk}",
        at=at,
    )
    refund.bonus_paid = -result.restored - result.restored_expired
    refund.bonus_accrued = -result.clawed_back
    refund.save(update_fields=["bonus_paid", "bonus_accrued"])
    receipt.state = ReceiptState.REFUNDED if amount == remaining else ReceiptState.PARTLY_REFUNDED
    receipt.save(update_fields=["state"])
    if receipt.member is not None:
        event_record(
            event_type="purchase_refunded",
            member=receipt.member,
            point_of_sale=receipt.point_of_sale,
            payload={"receipt_id": receipt.pk, "refund_id": refund.pk, "amount": str(amount)},
        )
    return refund
