"""Offer writes, purchase calculation and confirmation, and event offers."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty.models import Card, Member, MemberEvent, PointOfSale, Receipt, SourceType, Status
from loyalty.selectors import currencies_by_code
from loyalty.services import ledger, receipts
from loyalty.services.errors import InsufficientBonuses
from offers.catalog import PURCHASE_CALCULATION, entry_validate, offer_actions, offer_events, offer_filters
from offers.context import LineIn, event_context, local_time, period_start, purchase_context
from offers.engine import Context, Limits, Result, evaluate
from offers.metavariables import render
from offers.models import (
    Counter,
    CounterValue,
    Offer,
    OfferApplication,
    OfferStatus,
    OfferVersion,
)
from offers.selectors import OFFERS_VERSION, active_offers, offers_at

log = logging.getLogger(__name__)
ZERO = Decimal("0")


def limits() -> Limits:
    return Limits(
        max_line_discount_share=Decimal(str(settings.LOYALTY.get("MAX_LINE_DISCOUNT_SHARE", "0.9"))),
        max_bonus_payment_share=Decimal(str(settings.LOYALTY.get("MAX_BONUS_PAYMENT_SHARE", "0.5"))),
    )


def _bump() -> None:
    """A new offers version: every process recompiles its offers (this one at once, the
    others within a second)."""
    OFFERS_VERSION.bump()


# --- offers ---------------------------------------------------------------------------
def rules_validate(*, event_type: str, rules: Any) -> list[dict]:
    """Validate a rule list against the catalogs; errors name the rule, the entry and the
    field (``rules[0].actions[1].value``)."""
    if event_type not in offer_events:
        raise ValidationError({"event_type": _("Unknown event %(key)s.") % {"key": event_type}})
    if not isinstance(rules, list):
        raise ValidationError({"rules": _("Rules must be a list.")})
    has_receipt = offer_events.has_receipt(event_type)
    cleaned, errors = [], {}
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            errors[f"rules[{i}]"] = [_("A rule is an object with filters and actions.")]
            continue
        out = {"filters": [], "actions": []}
        for part, registry in (("filters", offer_filters), ("actions", offer_actions)):
            for j, item in enumerate(rule.get(part) or []):
                where = f"rules[{i}].{part}[{j}]"
                try:
                    entry = entry_validate(registry, item, where)
                except ValidationError as exc:
                    errors.update(exc.message_dict)
                    continue
                if registry.get(entry["key"]).purchase_only and not has_receipt:
                    errors[where] = [
                        _("%(entry)s needs a receipt; this event has none.")
                        % {"entry": registry.get(entry["key"]).label}
                    ]
                    continue
                out[part].append(entry)
        if not (rule.get("actions") or []):
            errors[f"rules[{i}].actions"] = [_("A rule needs at least one action.")]
        cleaned.append(out)
    if not rules:
        errors["rules"] = [_("An offer needs at least one rule.")]
    if errors:
        raise ValidationError(errors)
    return cleaned


SETTINGS_FIELDS = (
    "name",
    "description",
    "event_type",
    "starts_at",
    "ends_at",
    "priority",
    "stop_further",
    "audience",
)


@transaction.atomic
def offer_save(*, offer: Offer, rules: Any, user=None, **fields) -> Offer:
    """Create or change an offer. A draft changes freely; changing an active or paused
    offer keeps its previous rules and settings as a version. Invalidates every
    process's compiled offers."""
    for name, value in fields.items():
        if name not in SETTINGS_FIELDS:
            raise TypeError(f"unexpected field {name}")
        setattr(offer, name, value)
    if offer.ends_at and offer.starts_at and offer.ends_at <= offer.starts_at:
        raise ValidationError({"ends_at": _("The offer must end after it starts.")})
    if offer.status in (OfferStatus.FINISHED, OfferStatus.ARCHIVED) and offer.pk:
        raise ValidationError({"status": _("A finished or archived offer cannot be changed.")})
    cleaned = rules_validate(event_type=offer.event_type, rules=rules)
    if offer.pk and offer.status in (OfferStatus.ACTIVE, OfferStatus.PAUSED):
        before = Offer.objects.select_for_update().get(pk=offer.pk)
        snapshot = {
            f: _plain(getattr(before, f if f != "audience" else "audience_id")) for f in SETTINGS_FIELDS
        }
        OfferVersion.objects.create(
            offer=before, number=before.version, rules=before.rules, options=snapshot, created_by=user
        )
        offer.version = before.version + 1
    offer.rules = cleaned
    offer.updated_by = user if getattr(user, "pk", None) else None
    offer.full_clean(exclude=["rules", "updated_by"])
    offer.save()
    _bump()
    return offer


def _plain(value):
    return value.isoformat() if isinstance(value, dt.datetime) else value


TRANSITIONS = {
    OfferStatus.DRAFT: {OfferStatus.ACTIVE, OfferStatus.ARCHIVED},
    OfferStatus.ACTIVE: {OfferStatus.PAUSED, OfferStatus.FINISHED},
    OfferStatus.PAUSED: {OfferStatus.ACTIVE, OfferStatus.FINISHED},
    OfferStatus.FINISHED: {OfferStatus.ARCHIVED},
    OfferStatus.ARCHIVED: set(),
}


@transaction.atomic
def offer_set_status(*, offer: Offer, status: str, user=None) -> Offer:
    offer = Offer.objects.select_for_update().get(pk=offer.pk)
    if status not in TRANSITIONS[offer.status]:
        raise ValidationError(
            {
                "status": _("An offer that is %(old)s cannot become %(new)s.")
                % {"old": offer.get_status_display(), "new": OfferStatus(status).label}
            }
        )
    if status == OfferStatus.ACTIVE:
        rules_validate(event_type=offer.event_type, rules=offer.rules)  # catalogs may have changed
    offer.status = status
    offer.save(update_fields=["status", "updated_at"])
    _bump()
    return offer


def offer_delete_refusal(offer: Offer) -> str | None:
    """Why ``offer`` may not be deleted, or ``None``: only a draft is. An offer that was
    ever active stays, for the receipts and events it priced (finish or archive it)."""
    if offer.status == OfferStatus.DRAFT:
        return None
    return _(
        "Offer %(name)s is %(status)s: only a draft can be deleted. An offer that has been "
        "active is kept with the receipts it priced; archive it instead."
    ) % {"name": offer.name, "status": offer.get_status_display()}


@transaction.atomic
def offer_delete(*, offer: Offer) -> None:
    """Delete a draft offer (with its versions); any other is refused by its status."""
    offer = Offer.objects.select_for_update().get(pk=offer.pk)
    refusal = offer_delete_refusal(offer)
    if refusal:
        raise ValidationError({"status": refusal})
    offer.delete()
    _bump()


# --- purchases ------------------------------------------------------------------------
@dataclass
class Calculation:
    ctx: Context
    result: Result
    balance: Decimal = ZERO
    max_bonus_payment: Decimal = ZERO
    cheque_messages: list[str] = field(default_factory=list)
    cashier_messages: list[str] = field(default_factory=list)
    # purchase_confirm: this call confirmed the receipt (False: it was confirmed before,
    # by an earlier or a concurrent request with the same receipt id).
    confirmed: bool = False


_SHOWN_TEXTS = {"cheque_messages": "cheque_message", "cashier_messages": "cashier_message"}


def _render_pending(ctx: Context, result: Result) -> None:
    values: dict = {}  # the final figures, computed once for all the texts
    for target, offer_id, template in result.pending_texts:
        try:
            text = render(template, ctx, result, values)
        except Exception as exc:  # a template error must not break the till
            log.warning("offer %s message failed to render: %s", offer_id, exc)
            continue
        getattr(result, target).append(text)
        # The explained effect shows the text as printed, not its template.
        action = _SHOWN_TEXTS.get(target)
        for effect in result.effects:
            if effect.offer_id == offer_id and effect.action == action and effect.text == template:
                effect.text = text
                break
    result.pending_texts.clear()


def purchase_calculate(
    *,
    point_of_sale: PointOfSale,
    lines: list[LineIn],
    payments: list[str] = (),
    card: Card | None = None,
    member: Member | None = None,
    now: dt.datetime | None = None,
) -> Calculation:
    """Price a receipt through the active purchase-flow offers (a preview: nothing is
    written). The maximum payable with bonuses is the smaller of the member's balance
    and the program's share of what is left to pay."""
    if card is not None:
        member = member or card.member
    if not lines:
        raise ValidationError({"lines": _("A receipt needs at least one line.")})
    offers, needs = offers_at(PURCHASE_CALCULATION, point_of_sale)
    ctx = purchase_context(
        event="discount_calculated",
        point_of_sale=point_of_sale,
        lines=lines,
        payments=list(payments),
        member=member,
        needs=needs,
        now=now,
    )
    result = evaluate(ctx, offers, limits())
    _render_pending(ctx, result)
    balance = ctx.member.balances.get("", ZERO) if ctx.member else ZERO
    return Calculation(
        ctx=ctx,
        result=result,
        balance=balance,
        max_bonus_payment=min(balance, result.max_bonus_payment),
        cheque_messages=result.cheque_messages,
        cashier_messages=result.cashier_messages,
    )


def _accrual_inputs(result: Result, now: dt.datetime, source_label: str = "") -> list[receipts.AccrualInput]:
    """Ledger inputs for the result's accruals: one lot per currency, activation,
    expiry and funding partner (many offers on one receipt make a handful of lots, not
    dozens of ledger writes), labelled with the offers that gave it. What each offer
    gave is kept per offer in ``OfferApplication``."""
    if not result.accruals:
        return []
    names = {e.offer_id: e.offer_name for e in result.effects}
    currencies = currencies_by_code({a.currency for a in result.accruals if a.currency})
    default = next((c for c in currencies.values() if c.is_default), None)
    groups: dict[tuple, list] = {}
    for accrual in result.accruals:
        currency = currencies.get(accrual.currency) if accrual.currency else default
        activates = now + dt.timedelta(days=accrual.delay_days) if accrual.delay_days else None
        expires = (
            (activates or now) + dt.timedelta(days=accrual.lifetime_days) if accrual.lifetime_days else None
        )
        key = (currency.pk if currency else None, activates, expires, accrual.account)
        groups.setdefault(key, [currency, activates, expires, accrual.account, ZERO, []])
        group = groups[key]
        group[4] += accrual.amount
        if accrual.offer_id not in group[5]:
            group[5].append(accrual.offer_id)
    inputs = []
    for currency, activates, expires, account, amount, offer_ids in groups.values():
        label = "; ".join(names.get(i, "") for i in offer_ids if names.get(i)) or source_label
        if len(label) > 255:
            label = label[:254] + "…"
        inputs.append(
            receipts.AccrualInput(
                amount=amount,
                currency=currency,
                activates_at=activates,
                expires_at=expires,
                source=ledger.Source(
                    type=SourceType.OFFER,
                    id=",".join(str(i) for i in offer_ids)[:64],
                    label=label,
                    reason=_("funded by partner %(id)s") % {"id": account} if account else "",
                ),
            )
        )
    return inputs


def _priced_lines(calc: Calculation) -> list[receipts.LineInput]:
    """The receipt's lines as priced, for storing (the context looked the products up)."""
    return [
        receipts.LineInput(
            sku=ln.sku,
            quantity=ln.quantity,
            price=ln.price,
            discount=ln.discount,
            name=ln.name,
            product_id=ln.product_id,
        )
        for ln in calc.ctx.lines
    ]


@transaction.atomic(savepoint=False)
def purchase_confirm(
    *,
    point_of_sale: PointOfSale,
    external_id: str,
    lines: list[LineIn],
    payments: list[receipts.PaymentInput] = (),
    card: Card | None = None,
    member: Member | None = None,
    bonus_payment: Decimal = ZERO,
    now: dt.datetime | None = None,
) -> tuple[Receipt, Calculation]:
    """Price the receipt again, pay ``bonus_payment`` and accrue what the offers give,
    in one transaction; the same external id at the same point of sale is one receipt.
    Joins the caller's transaction without a savepoint of its own."""
    now = now or timezone.now()
    calc = purchase_calculate(
        point_of_sale=point_of_sale,
        lines=lines,
        payments=[p.method for p in payments],
        card=card,
        member=member,
        now=now,
    )
    confirm = receipts.ConfirmInput(
        bonus_payment=bonus_payment, accruals=_accrual_inputs(calc.result, now, _("offer"))
    )
    # A new receipt id is inserted confirmed; the same one again returns the stored
    # receipt (confirmed: as it is).
    receipt, stored_now = receipts.receipt_store(
        point_of_sale=point_of_sale,
        external_id=external_id,
        lines=_priced_lines(calc),
        payments=list(payments),
        card=card,
        member=member,
        purchased_at=now,
        confirmed=confirm,
    )
    if not stored_now and receipt.state != "calculated":
        # Confirmed before, or by a concurrent request with the same receipt id first: its
        # offers' effects are recorded there, not twice.
        return receipt, calc
    # Reserved before (``purchase_reserve``): the bonuses held for it are the member's to
    # pay with here, though the balance no longer shows them.
    held = ZERO if stored_now else receipt.bonus_paid
    if not stored_now:
        _same_receipt(receipt, calc)
    _payable_at_most(bonus_payment, min(calc.balance + held, calc.result.max_bonus_payment))
    known = calc.ctx.member
    if known is not None and known.id == receipt.member_id:
        confirm.accounts = known.account_ids  # read by the context: not looked up again
        confirm.accounts_complete = known.accounts_read
    receipt = receipts.receipt_confirm(receipt=receipt, confirm=confirm, stored_now=stored_now)
    calc.confirmed = True
    _applications_record(calc.result, member=receipt.member, receipt=receipt, at=now)
    if receipt.member is not None:
        # Messages, counters and a status from the purchase-flow offers (accruals went
        # through the receipt above).
        result_apply(
            ctx=calc.ctx,
            result=calc.result,
            member=receipt.member,
            occurrence=f"receipt-{receipt.pk}",
            accruals=False,
        )
    return receipt, calc


def _payable_at_most(bonus_payment: Decimal, limit: Decimal) -> None:
    if bonus_payment > 0 and bonus_payment > limit:
        raise InsufficientBonuses(
            _("At most %(max)s can be paid with bonuses on this receipt.") % {"max": limit}
        )


def _same_receipt(receipt: Receipt, calc: Calculation) -> None:
    """A reserved receipt is confirmed with the lines it was reserved with: its figures
    and the bonuses held were worked out from them."""
    amount = sum((ledger.points(ln.quantity * ln.price) for ln in calc.ctx.lines), ZERO)
    discount = sum((ledger.points(ln.discount) for ln in calc.ctx.lines), ZERO)
    if (amount, discount) != (receipt.amount, receipt.discount):
        raise ValidationError(
            {
                "lines": _(
                    "Receipt %(id)s was reserved with other lines (total %(total)s); confirm it with "
                    "the same lines, or cancel it and reserve the receipt again under a new id."
                )
                % {"id": receipt.external_id, "total": receipt.total}
            }
        )


@transaction.atomic(savepoint=False)
def purchase_reserve(
    *,
    point_of_sale: PointOfSale,
    external_id: str,
    lines: list[LineIn],
    payments: list[receipts.PaymentInput] = (),
    card: Card | None = None,
    member: Member | None = None,
    bonus_payment: Decimal = ZERO,
    now: dt.datetime | None = None,
) -> tuple[Receipt, Calculation, bool]:
    """The first phase of a two-phase purchase: price the receipt, store it calculated
    and hold ``bonus_payment`` of the member's bonuses for it, in one transaction. The
    purchase then ends with ``purchase_confirm`` (same receipt id: the hold becomes the
    payment, more is drawn or the rest given back) or ``receipts.receipt_cancel`` (the hold
    goes back); a hold nobody ends lapses (``receipts.receipt_holds_release``). Returns
    the receipt, its pricing and whether it was stored now (``False``: the receipt id was
    used before, and that receipt is returned as it is)."""
    now = now or timezone.now()
    calc = purchase_calculate(
        point_of_sale=point_of_sale,
        lines=lines,
        payments=[p.method for p in payments],
        card=card,
        member=member,
        now=now,
    )
    _payable_at_most(bonus_payment, calc.max_bonus_payment)
    receipt, stored_now = receipts.receipt_store(
        point_of_sale=point_of_sale,
        external_id=external_id,
        lines=_priced_lines(calc),
        payments=list(payments),
        card=card,
        member=member,
        purchased_at=now,
    )
    if stored_now:
        receipts.receipt_hold(receipt=receipt, amount=bonus_payment)
    return receipt, calc, stored_now


def _applications_record(result: Result, *, member, receipt=None, event=None, at=None) -> None:
    """One row per applied offer with what it gave: one statement (dozens of rows a
    receipt on the till's path; on PostgreSQL as a JSON document, without a model per
    row)."""
    if not result.applied:
        return
    by_offer: dict[int, list[Decimal]] = {}
    for effect in result.effects:
        totals = by_offer.setdefault(effect.offer_id, [ZERO, ZERO])
        if effect.action == "discount":
            totals[0] += effect.amount
        elif effect.action in ("bonus", "extra_bonus"):
            totals[1] += effect.amount
    at = at or timezone.now()
    offer_ids = list(result.applied)
    discounts = [by_offer.get(offer_id, (ZERO, ZERO))[0] for offer_id in offer_ids]
    bonuses = [by_offer.get(offer_id, (ZERO, ZERO))[1] for offer_id in offer_ids]
    member_id = member.pk if member is not None else None
    receipt_id = receipt.pk if receipt is not None else None
    event_id = event.pk if event is not None else None
    if connection.vendor == "postgresql":
        # The rows as one JSON document: encoded in C, where arrays are encoded value by
        # value in Python.
        rows = orjson.dumps(
            [{"o": o, "d": d, "b": b} for o, d, b in zip(offer_ids, discounts, bonuses, strict=True)],
            default=str,
        ).decode()
        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {OfferApplication._meta.db_table} "
                "(offer_id, member_id, receipt_id, event_id, discount, bonus, at) "
                "SELECT o, %s, %s, %s, d, b, %s "
                "FROM json_to_recordset(%s::json) AS t(o bigint, d numeric, b numeric)",
                [member_id, receipt_id, event_id, at, rows],
            )
        return
    OfferApplication.objects.bulk_create(
        [
            OfferApplication(
                offer_id=offer_id,
                member_id=member_id,
                receipt_id=receipt_id,
                event_id=event_id,
                discount=discount,
                bonus=bonus,
                at=at,
            )
            for offer_id, discount, bonus in zip(offer_ids, discounts, bonuses, strict=True)
        ]
    )


# --- member events --------------------------------------------------------------------
def result_apply(
    *,
    ctx: Context,
    result: Result,
    member: Member,
    event: MemberEvent | None = None,
    occurrence: str = "",
    accruals: bool = True,
) -> None:
    """Carry out what offers decided: accruals, counters, status, messages. Idempotent
    per event (ledger keys, one message per offer, event and send)."""
    key_base = f"event:{event.pk}" if event else None
    occurrence = occurrence or (f"event-{event.pk}" if event else f"at-{ctx.now.isoformat()}")
    for i, accrual in enumerate(_accrual_inputs(result, ctx.now, _("offer")) if accruals else []):
        account = ledger.account_get_or_create(member=member, currency=accrual.currency)
        ledger.bonus_accrue(
            account=account,
            amount=accrual.amount,
            source=accrual.source,
            activates_at=accrual.activates_at,
            expires_at=accrual.expires_at,
            idempotency_key=f"{key_base}:accrual:{i}" if key_base else None,
        )
    counters_apply(
        member=member,
        changes=result.counters,
        sets=result.counter_sets,
        now=ctx.now,
        offer_starts=result.counter_offer_starts,
    )
    if result.status:
        from loyalty.services.members import member_set_status

        status = Status.objects.filter(code=result.status).first()
        if status and member.status_id != status.pk:
            member_set_status(member=member, status=status, reason=_("offer"))
    sent_per_offer: dict[int, int] = {}
    for send in result.sends:
        from communications.models import Origin, Purpose
        from communications.services import message_send

        n = sent_per_offer.get(send.offer_id, 0)
        sent_per_offer[send.offer_id] = n + 1
        render = None
        if send.render:
            render = {**send.render, **_render_values(ctx, result, send.offer_id)}
        message_send(
            member=member,
            channel=send.channel,
            content=send.content,
            render=render,
            origin=Origin.OFFER,
            origin_id=send.offer_id,
            occurrence=occurrence if n == 0 else f"{occurrence}:{n}",
            purpose=Purpose.SERVICE,
        )


def _render_values(ctx: Context, result: Result, offer_id: int) -> dict:
    """The event's values (receipt figures and the event's own) and the offer's fields,
    as plain JSON for a message rendered later from a template."""
    from offers.metavariables import metavariables

    values = metavariables.values(ctx, result)
    event = {k: values[k] for k in ("discount", "bonus", "amount", "total", "currency") if k in values}
    event.update({k: v for k, v in dict(ctx.payload).items() if isinstance(v, str | int | float | bool)})
    offer = Offer.objects.filter(pk=offer_id).values("name", "starts_at", "ends_at").first() or {}
    return {
        "event": event,
        "offer": {
            "name": offer.get("name", ""),
            "starts": offer["starts_at"].date().isoformat() if offer.get("starts_at") else "",
            "ends": offer["ends_at"].date().isoformat() if offer.get("ends_at") else "",
        },
    }


def counters_apply(
    *,
    member: Member,
    changes: dict[str, Decimal],
    sets: dict[str, Decimal],
    now: dt.datetime,
    offer_starts: dict[str, dt.datetime | None] | None = None,
) -> None:
    """Add to or set the member's counters in their current period (for "the offer's
    period" counters, the period of the offer that changed them)."""
    if not changes and not sets:
        return
    local = local_time(now, member.time_zone)
    for counter in Counter.objects.filter(key__in=set(changes) | set(sets)):
        start = period_start(counter.period, local, (offer_starts or {}).get(counter.key))
        value, _created = CounterValue.objects.select_for_update().get_or_create(
            member=member, counter=counter, period_start=start
        )
        if counter.key in sets:
            value.value = sets[counter.key]
        value.value += changes.get(counter.key, ZERO)
        value.save(update_fields=["value", "updated_at"])


def event_offers_run(event: MemberEvent) -> Result | None:
    """Run the active offers of ``event``'s type for its member (the handler registered
    for every event type). Purchase events run on the confirmed receipt's lines."""
    if event.member_id is None or event.event_type in PURCHASE_CALCULATION:
        return None
    offers, needs = active_offers([event.event_type])
    if not offers:
        return None
    if OfferApplication.objects.filter(event=event).exists():
        return None  # this event's offers already ran (a repeated handler call)
    member = Member.objects.select_related("status").get(pk=event.member_id)
    pos = PointOfSale.objects.filter(pk=event.point_of_sale_id).first() if event.point_of_sale_id else None
    receipt_id = (event.payload or {}).get("receipt_id")
    if receipt_id and pos is not None:
        receipt = Receipt.objects.get(pk=receipt_id)
        lines = [
            LineIn(sku=ln.sku, quantity=ln.quantity, price=ln.price, name=ln.name)
            for ln in receipt.lines.all()
        ]
        ctx = purchase_context(
            event=event.event_type,
            point_of_sale=pos,
            lines=lines,
            member=member,
            needs=needs,
            now=event.occurred_at,
            payload=event.payload,
            exclude_receipt=receipt.pk,
        )
    else:
        receipt = None
        ctx = event_context(
            event=event.event_type, member=member, needs=needs, payload=event.payload or {}, point_of_sale=pos
        )
    result = evaluate(ctx, offers, limits())
    _render_pending(ctx, result)
    with transaction.atomic():
        result_apply(ctx=ctx, result=result, member=member, event=event)
        _applications_record(result, member=member, receipt=receipt, event=event, at=ctx.now)
    return result
