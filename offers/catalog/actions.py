"""Offer actions: what a rule does when its filters pass.

``apply(ctx, result, lines, offer, rule, limits)`` adds to the ``Result``; ``lines`` are
the receipt lines the rule's line filters left (all lines when it has none). Actions
never touch the database: the services turn the result into ledger entries, messages,
counters and statuses when the purchase is confirmed or the event is processed.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import ClassVar

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from offers.catalog.base import CatalogEntry, Registry
from offers.engine import (
    CENT,
    ZERO,
    Accrual,
    CompiledOffer,
    Context,
    Effect,
    Limits,
    Line,
    Result,
    from_kopecks,
    kopecks,
)


class OfferAction(CatalogEntry):
    purchase_only: ClassVar[bool] = False

    def apply(
        self, ctx: Context, result: Result, lines: list[Line], offer: CompiledOffer, rule: int, limits: Limits
    ) -> None:
        raise NotImplementedError


offer_actions: Registry[type[OfferAction]] = Registry("action")

ROUNDING = [
    ("kopeck", _("to the kopeck")),
    ("ruble_down", _("down to whole rubles")),
    ("ruble_up", _("up to whole rubles")),
    ("ruble_half", _("to the nearest ruble")),
]


def rounded(value: Decimal, rule: str) -> Decimal:
    if rule == "ruble_down":
        return value.quantize(Decimal("1"), rounding=ROUND_DOWN)
    if rule == "ruble_up":
        return value.quantize(Decimal("1"), rounding=ROUND_UP)
    if rule == "ruble_half":
        return value.quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class DiscountParams(forms.Form):
    kind = forms.ChoiceField(
        label=_("discount"), choices=[("percent", _("percentage")), ("fixed", _("fixed amount"))]
    )
    value = forms.DecimalField(label=_("value"), min_value=Decimal("0.01"), decimal_places=2)
    target = forms.ChoiceField(
        label=_("applies to"),
        choices=[
            ("lines", _("each chosen line")),
            ("receipt", _("the receipt, spread over the chosen lines")),
        ],
        initial="lines",
    )
    rounding = forms.ChoiceField(label=_("rounding"), choices=ROUNDING, initial="kopeck")
    min_line_price = forms.DecimalField(
        label=_("minimum price per unit after discount"), min_value=0, decimal_places=2, required=False
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == "percent" and cleaned.get("value") and cleaned["value"] > 100:
            self.add_error("value", _("A percentage cannot exceed 100."))
        return cleaned


@offer_actions.register
class DiscountAction(OfferAction):
    """A percentage or a fixed amount off the chosen lines (or the receipt, spread over
    them in proportion), rounded by rule, never below the minimum unit price nor above
    the program's maximum share of a line."""

    key = "discount"
    label = _("Discount")
    params = DiscountParams
    purchase_only = True

    def setup(self, params):
        self.kind = params["kind"]
        self.value = Decimal(params["value"])
        self.target = params.get("target", "lines")
        self.rounding = params.get("rounding", "kopeck")
        self.min_price = Decimal(params.get("min_line_price") or 0)
        # The value in hundredths (a percentage in basis points, an amount in kopecks),
        # when it has at most two decimal places, as the form allows: integer arithmetic.
        hundredths = self.value.scaleb(2)
        self.value_h = int(hundredths) if hundredths == hundredths.to_integral_value() else None

    def _wants(self, lines: list[Line]) -> list[int] | None:
        """What the offer would take off each line, in kopecks, before the caps."""
        if self.kind == "percent":
            if self.rounding == "kopeck" and self.value_h is not None:
                # total × p / 100 rounded half up, as whole numbers: (2·t·bp + 10⁴) // (2·10⁴)
                bp2 = 2 * self.value_h
                return [((ln.amount_k - ln.discount_k) * bp2 + 10000) // 20000 for ln in lines]
            factor = self.value / 100
            return [kopecks(rounded(ln.total * factor, self.rounding)) for ln in lines]
        if self.target == "lines":
            return [kopecks(rounded(self.value * ln.quantity, self.rounding)) for ln in lines]
        # One amount spread over the lines in proportion to what is left on each, every
        # share rounded down to the kopeck; the kopecks that leaves go one each to the
        # lines whose share was rounded, from the last line back (so none gets more than
        # its exact share rounded up, and the whole amount is given).
        totals = [ln.amount_k - ln.discount_k for ln in lines]
        base = sum(totals)
        if base <= 0:
            return None
        value = self.value_h if self.value_h is not None else int(self.value.scaleb(2))
        spread = min(value, base)  # more than the lines cost: all of each line
        wants, rounded_off = [], []
        for line_total in totals:
            share, fraction = divmod(spread * line_total, base)
            wants.append(share)
            rounded_off.append(fraction)
        short = spread - sum(wants)
        i = len(wants) - 1
        while short:
            if rounded_off[i]:
                wants[i] += 1
                short -= 1
            i -= 1
        return wants

    def apply(self, ctx, result, lines, offer, rule, limits):
        if not lines:
            return
        wants = self._wants(lines)
        if wants is None:
            return
        share_cap = limits.max_line_discount_share
        floor_price = self.min_price
        total = 0
        touched = []
        for ln, want in zip(lines, wants, strict=True):
            if want <= 0:
                continue
            # Room left on the line: the program's cap, and the minimum unit price.
            if ln.cap_share is not share_cap:
                ln.cap_k = int((ln.amount * share_cap).quantize(CENT, ROUND_DOWN).scaleb(2))
                ln.cap_share = share_cap
            room = ln.cap_k - ln.discount_k
            floor = ln.floor_k
            if floor_price:
                floor = max(floor, kopecks(floor_price * ln.quantity))
            if floor:
                room = min(room, ln.amount_k - floor - ln.discount_k)
            amount = want if want < room else room
            if amount > 0:
                ln.discount_k += amount
                total += amount
                touched.append(ln.index)
        if total > 0:
            result.effects.append(
                Effect(offer.id, offer.name, rule, self.key, from_kopecks(total), ctx.currency, touched)
            )


class BonusParams(forms.Form):
    kind = forms.ChoiceField(
        label=_("bonus points"),
        choices=[("percent", _("percentage of the amount paid")), ("fixed", _("fixed number"))],
    )
    value = forms.DecimalField(label=_("value"), min_value=Decimal("0.01"), decimal_places=2)
    per = forms.ChoiceField(
        label=_("counted"),
        choices=[("receipt", _("once per receipt")), ("line", _("per chosen line (per unit)"))],
        initial="receipt",
    )
    currency = forms.CharField(
        label=_("bonus currency code"), required=False, help_text=_("Empty: the default currency.")
    )
    lifetime_days = forms.IntegerField(label=_("lifetime, days"), min_value=1, required=False)
    delay_days = forms.IntegerField(label=_("activation delay, days"), min_value=0, required=False, initial=0)


def _currency_check(params: dict) -> None:
    from loyalty.models import Currency

    code = params.get("currency")
    if code and not Currency.objects.filter(code=code).exists():
        raise ValidationError(_("Unknown bonus currency %(code)s.") % {"code": code})


@offer_actions.register
class BonusAction(OfferAction):
    """Bonus points for the purchase: a percentage of what the chosen lines cost after
    discounts, or a fixed number per receipt or per unit of the chosen lines."""

    key = "bonus"
    label = _("Bonus points")
    params = BonusParams
    purchase_only = True
    clean_params = staticmethod(_currency_check)

    def setup(self, params):
        self.kind = params["kind"]
        self.value = Decimal(params["value"])
        self.per = params.get("per", "receipt")
        self.currency = params.get("currency", "")
        self.lifetime = params.get("lifetime_days")
        self.delay = int(params.get("delay_days") or 0)

    def apply(self, ctx, result, lines, offer, rule, limits):
        if not lines:
            return
        if self.kind == "percent":
            amount = Decimal(sum(ln.amount_k - ln.discount_k for ln in lines)) * self.value / 10000
        elif self.per == "line":
            amount = self.value * sum((ln.quantity for ln in lines), ZERO)
        else:
            amount = self.value
        amount = amount.quantize(CENT, rounding=ROUND_DOWN)
        if amount <= 0:
            return
        result.accruals.append(Accrual(offer.id, amount, self.currency, self.lifetime, self.delay))
        result.effects.append(
            Effect(offer.id, offer.name, rule, self.key, amount, self.currency, [ln.index for ln in lines])
        )


class TextParams(forms.Form):
    text = forms.CharField(
        label=_("text"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=1000,
        help_text=_("Metavariables in double braces, e.g. {{ discount }} or {{ first_name }}."),
    )


def _template_check(params: dict) -> None:
    from offers.metavariables import template_errors

    errors = template_errors(params.get("text", ""))
    if errors:
        raise ValidationError(errors)


@offer_actions.register
class ChequeMessageAction(OfferAction):
    """A line printed on the member's receipt ("Your discount is {{ discount }} p.")."""

    key = "cheque_message"
    label = _("Cheque message")
    params = TextParams
    purchase_only = True
    clean_params = staticmethod(_template_check)

    def setup(self, params):
        self.text = params["text"]

    def apply(self, ctx, result, lines, offer, rule, limits):
        result.pending_texts.append(("cheque_messages", offer.id, self.text))
        result.effects.append(Effect(offer.id, offer.name, rule, self.key, text=self.text))


@offer_actions.register
class CashierMessageAction(OfferAction):
    """A message shown to the cashier at the till ("Offer the member a bag")."""

    key = "cashier_message"
    label = _("Message to cashier")
    params = TextParams
    purchase_only = True
    clean_params = staticmethod(_template_check)

    def setup(self, params):
        self.text = params["text"]

    def apply(self, ctx, result, lines, offer, rule, limits):
        result.pending_texts.append(("cashier_messages", offer.id, self.text))
        result.effects.append(Effect(offer.id, offer.name, rule, self.key, text=self.text))
