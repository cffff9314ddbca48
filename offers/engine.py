"""The offers engine: plain functions over dataclasses, no ORM inside the loop.

``evaluate(ctx, offers)`` runs the compiled active offers of one event against a
context (a receipt with its lines, or a member event) and returns a ``Result`` that says
what each offer did: line discounts, bonuses to accrue, cheque and cashier messages,
messages to send, counter changes, a status to assign. Offers run in priority order
(lower number first); an offer marked *stop further offers* ends the run once it has
applied. A line's discounts never exceed ``max_line_discount_share`` of the line;
payment with bonuses is limited to ``max_bonus_payment_share`` of what is left to pay.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

ZERO = Decimal("0")
CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def kopecks(value: Decimal) -> int:
    """An amount of money as a whole number of kopecks (cents)."""
    return int(value.quantize(CENT).scaleb(2))


def from_kopecks(value: int) -> Decimal:
    """Kopecks back to money, with two decimal places."""
    return Decimal(value).scaleb(-2)


@dataclass(slots=True)
class Line:
    """A receipt line. Quantity and price are fixed once built (``amount`` is computed
    then); only ``discount`` changes while offers run. The engine counts money on a line
    in whole kopecks (``amount_k``, ``discount_k``): integer arithmetic, exact and several
    times faster than decimals in the loops every offer runs over every line;
    ``amount``, ``discount`` and ``total`` read it as money."""

    index: int
    sku: str
    quantity: Decimal
    price: Decimal
    product_id: int | None = None
    group_path: str = ""  # "/food/coffee/" — the product's group and its ancestors as a path
    name: str = ""
    min_price: Decimal = ZERO  # the lowest price per unit a discount may bring it to
    amount: Decimal = field(init=False)
    amount_k: int = field(init=False, repr=False)
    discount_k: int = field(init=False, default=0)
    floor_k: int = field(init=False, repr=False)  # what min_price leaves to pay, kopecks
    prefixes: frozenset[str] = field(init=False, repr=False)  # the group path and its ancestors
    # The most discount the program's share allows (kopecks), for the share it was computed for.
    cap_k: int = field(init=False, repr=False, default=0)
    cap_share: Decimal | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.amount = money(self.quantity * self.price)
        self.amount_k = kopecks(self.amount)
        self.floor_k = kopecks(self.min_price * self.quantity) if self.min_price else 0
        parts = [p for p in self.group_path.split("/") if p]
        self.prefixes = frozenset("/" + "/".join(parts[: i + 1]) + "/" for i in range(len(parts)))

    @property
    def discount(self) -> Decimal:
        return from_kopecks(self.discount_k)

    @discount.setter
    def discount(self, value: Decimal) -> None:
        self.discount_k = kopecks(value)

    @property
    def total(self) -> Decimal:
        return from_kopecks(self.amount_k - self.discount_k)


@dataclass
class MemberInfo:
    id: int
    first_name: str = ""
    last_name: str = ""
    middle_name: str = ""
    gender: str = ""
    birth_date: dt.date | None = None
    registered_at: dt.datetime | None = None
    status: str = ""  # status code
    status_rank: int | None = None
    referrer_id: int | None = None
    audiences: frozenset[int] = frozenset()
    segments: frozenset[int] = frozenset()
    counters: dict[str, Decimal] = field(default_factory=dict)
    personal_products: frozenset[str] = frozenset()
    purchases: int = 0  # confirmed purchases before this one
    balances: dict[str, Decimal] = field(default_factory=dict)
    account_ids: dict[int, int] = field(default_factory=dict)  # currency id -> account id
    accounts_read: bool = False  # account_ids holds every account the member had then


@dataclass
class Context:
    event: str
    now: dt.datetime
    local_now: dt.datetime  # in the point of sale's (or the program's) time zone
    lines: list[Line] = field(default_factory=list)
    member: MemberInfo | None = None
    point_of_sale_id: int | None = None
    partner_id: int | None = None
    sales_channel: str = ""
    pos_attributes: dict[str, Any] = field(default_factory=dict)
    payment_methods: frozenset[str] = frozenset()
    payload: dict[str, Any] = field(default_factory=dict)  # the event's own values
    currency: str = "RUB"

    @property
    def amount(self) -> Decimal:
        # Lines' amounts never change while offers run: computed once.
        cached = self.__dict__.get("_amount")
        if cached is None:
            cached = self.__dict__["_amount"] = sum((ln.amount for ln in self.lines), ZERO)
        return cached

    @property
    def skus(self) -> frozenset[str]:
        cached = self.__dict__.get("_skus")
        if cached is None:
            cached = self.__dict__["_skus"] = frozenset(ln.sku for ln in self.lines)
        return cached

    @property
    def prefixes(self) -> frozenset[str]:
        """Every product group (with its ancestors) on the receipt."""
        cached = self.__dict__.get("_prefixes")
        if cached is None:
            cached = self.__dict__["_prefixes"] = frozenset().union(*(ln.prefixes for ln in self.lines))
        return cached

    @property
    def lines_by_prefix(self) -> dict[str, list[Line]]:
        """The lines under each product group on the receipt (a group and its ancestors)."""
        cached = self.__dict__.get("_by_prefix")
        if cached is None:
            cached = self.__dict__["_by_prefix"] = {}
            for ln in self.lines:
                for prefix in ln.prefixes:
                    cached.setdefault(prefix, []).append(ln)
        return cached

    @property
    def lines_by_sku(self) -> dict[str, list[Line]]:
        cached = self.__dict__.get("_by_sku")
        if cached is None:
            cached = self.__dict__["_by_sku"] = {}
            for ln in self.lines:
                cached.setdefault(ln.sku, []).append(ln)
        return cached

    @property
    def total(self) -> Decimal:
        return from_kopecks(sum(ln.amount_k - ln.discount_k for ln in self.lines))

    @property
    def quantity(self) -> Decimal:
        cached = self.__dict__.get("_quantity")  # quantities never change either
        if cached is None:
            cached = self.__dict__["_quantity"] = sum((ln.quantity for ln in self.lines), ZERO)
        return cached


@dataclass
class Effect:
    """One thing one offer did, for the explainable result."""

    offer_id: int
    offer_name: str
    rule: int
    action: str
    amount: Decimal = ZERO
    currency: str = ""
    lines: list[int] = field(default_factory=list)
    text: str = ""


@dataclass
class Accrual:
    offer_id: int
    amount: Decimal
    currency: str  # bonus currency code ("" = the program's default)
    lifetime_days: int | None = None
    delay_days: int = 0
    account: str = ""  # the legal entity's account that funds it (additional bonus points)


@dataclass
class SendRequest:
    offer_id: int
    channel: str
    content: dict[str, Any]
    cascade_id: int | None = None
    render: dict[str, Any] | None = None  # a template to render at send time instead of content


@dataclass
class Result:
    effects: list[Effect] = field(default_factory=list)
    accruals: list[Accrual] = field(default_factory=list)
    cheque_messages: list[str] = field(default_factory=list)
    cashier_messages: list[str] = field(default_factory=list)
    sends: list[SendRequest] = field(default_factory=list)
    counters: dict[str, Decimal] = field(default_factory=dict)  # counter key -> change
    counter_sets: dict[str, Decimal] = field(default_factory=dict)  # counter key -> new value
    # counter key -> start of the offer that changed it (for "the offer's period" counters)
    counter_offer_starts: dict[str, dt.datetime | None] = field(default_factory=dict)
    status: str | None = None  # status code to assign
    promo_codes: list[tuple[int, str]] = field(default_factory=list)
    applied: list[int] = field(default_factory=list)  # offer ids, in order
    max_bonus_payment: Decimal = ZERO
    # Message templates waiting for the final figures: (list name, offer id, template).
    pending_texts: list[tuple[str, int, str]] = field(default_factory=list)

    def discount_total(self) -> Decimal:
        return sum((e.amount for e in self.effects if e.action == "discount"), ZERO)

    def bonus_total(self, currency: str = "") -> Decimal:
        return sum((a.amount for a in self.accruals if a.currency == currency), ZERO)


@dataclass
class CompiledRule:
    filters: list  # filter instances
    actions: list  # action instances


@dataclass
class CompiledOffer:
    id: int
    name: str
    event: str
    priority: int
    stop_further: bool
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    audience_id: int | None
    rules: list[CompiledRule]
    version: int = 1

    def in_period(self, now: dt.datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at
        )


@dataclass(frozen=True)
class Limits:
    max_line_discount_share: Decimal = Decimal("0.9")
    max_bonus_payment_share: Decimal = Decimal("0.5")


def evaluate(ctx: Context, offers: list[CompiledOffer], limits: Limits = Limits()) -> Result:
    result = Result()
    for offer in offers:
        if not offer.in_period(ctx.now):
            continue
        if offer.audience_id is not None and (
            ctx.member is None or offer.audience_id not in ctx.member.audiences
        ):
            continue
        applied = False
        for index, rule in enumerate(offer.rules):
            lines = ctx.lines
            passed = True
            for flt in rule.filters:
                if flt.selects_lines:
                    lines = flt.select(ctx, lines)
                    passed = bool(lines)
                else:
                    passed = flt.passes(ctx)
                if not passed:
                    break
            if not passed:
                continue
            applied = True
            for action in rule.actions:
                action.apply(ctx, result, lines, offer, index, limits)
        if applied:
            result.applied.append(offer.id)
            if offer.stop_further:
                break
    result.max_bonus_payment = (ctx.total * limits.max_bonus_payment_share).quantize(
        CENT, rounding=ROUND_DOWN
    )
    return result
