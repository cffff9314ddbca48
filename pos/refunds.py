"""Turning "return 1 of SKU X" into refund lines priced like the original receipt.

Each returned unit takes its original line's price and the matching share of that
line's discount, so the refunded amount is what the buyer actually paid for it; the
last units of a line take whatever discount is left of it, so refunding a receipt in
parts adds up to the kopeck to refunding it at once."""

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from loyalty.models import Receipt, ReceiptLine
from loyalty.services import ledger
from loyalty.services.receipts import LineInput

ZERO = Decimal("0")


@dataclass
class _Left:
    line: ReceiptLine
    quantity: Decimal
    discount: Decimal


def _what_is_left(receipt: Receipt) -> list[_Left]:
    originals = list(receipt.lines.order_by("position"))
    taken_qty: dict[tuple[str, Decimal], Decimal] = {}
    taken_discount: dict[tuple[str, Decimal], Decimal] = {}
    for ln in ReceiptLine.objects.filter(receipt__refund_of=receipt):
        key = (ln.sku, ln.price)
        taken_qty[key] = taken_qty.get(key, ZERO) + ln.quantity
        taken_discount[key] = taken_discount.get(key, ZERO) + ln.discount
    out = []
    for ln in originals:
        key = (ln.sku, ln.price)
        qty = min(ln.quantity, taken_qty.get(key, ZERO))
        discount = min(ln.discount, taken_discount.get(key, ZERO))
        taken_qty[key] = taken_qty.get(key, ZERO) - qty
        taken_discount[key] = taken_discount.get(key, ZERO) - discount
        out.append(_Left(ln, ln.quantity - qty, ln.discount - discount))
    return out


def refund_lines(receipt: Receipt, requested: list[tuple[str, Decimal]] | None) -> list[LineInput]:
    """Refund lines for ``requested`` (sku, quantity) pairs, or for everything not yet
    refunded when ``requested`` is ``None``. Raises ``ValidationError`` naming
    ``lines[i].sku`` / ``lines[i].quantity``."""
    left = _what_is_left(receipt)
    if requested is None:
        requested = [(item.line.sku, item.quantity) for item in left if item.quantity > 0]
        if not requested:
            raise ValidationError({"lines": _("Everything on this receipt was already refunded.")})
    out: list[LineInput] = []
    errors: dict[str, str] = {}
    for i, (sku, quantity) in enumerate(requested):
        pool = [item for item in left if item.line.sku == sku]
        if not pool:
            errors[f"lines[{i}].sku"] = _("There is no %(sku)s on this receipt.") % {"sku": sku}
            continue
        available = sum((item.quantity for item in pool), ZERO)
        if quantity > available:
            errors[f"lines[{i}].quantity"] = _("Only %(left)s of %(sku)s can still be refunded.") % {
                "left": available.normalize(),
                "sku": sku,
            }
            continue
        want = quantity
        for item in pool:
            if want <= 0:
                break
            take = min(want, item.quantity)
            if take <= 0:
                continue
            if take == item.quantity:
                discount = item.discount
            else:
                discount = min(item.discount, ledger.points(item.line.discount * take / item.line.quantity))
            out.append(
                LineInput(
                    sku=sku, quantity=take, price=item.line.price, discount=discount, name=item.line.name
                )
            )
            item.quantity -= take
            item.discount -= discount
            want -= take
    if errors:
        raise ValidationError(errors)
    if all(item.quantity == 0 for item in left):
        out = _settle_rounding(receipt, out)
    return out


def _settle_rounding(receipt: Receipt, lines: list[LineInput]) -> list[LineInput]:
    """The last refund of a receipt returns exactly what is left of its total: line
    amounts of fractional quantities may round a kopeck away from the original's."""
    already = sum((r.total for r in receipt.refunds.all()), ZERO)
    remaining = receipt.total - already
    amount = sum((ledger.points(ln.quantity * ln.price) - ln.discount for ln in lines), ZERO)
    diff = amount - remaining
    if diff == 0 or not lines:
        return lines
    last = lines[-1]
    discount = last.discount + diff
    if discount < 0 or discount > ledger.points(last.quantity * last.price):
        return lines
    return [
        *lines[:-1],
        LineInput(sku=last.sku, quantity=last.quantity, price=last.price, discount=discount, name=last.name),
    ]
