"""The point-of-sale API: one view per operation. Each parses its input with a
serializer, finds the point of sale, card, member or receipt within the API key's
partner (``pos.scoping``), calls the loyalty and offers services and renders the result.
Every change runs under the request's ``Idempotency-Key`` (``pos.idempotency``)."""

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty import refcache, selectors
from loyalty.api.parsers import JSONParser
from loyalty.api.renderers import FastJSONRenderer, PlainAcceptNegotiation
from loyalty.models import (
    Card,
    CardState,
    Currency,
    Member,
    MemberState,
    PointOfSale,
    Receipt,
    ReceiptKind,
    ReceiptState,
    RegistrationChannel,
    SalesChannel,
)
from loyalty.services import cards as card_services
from loyalty.services import members as member_services
from loyalty.services import receipts as receipt_services
from loyalty.services.errors import CardStateError, MemberBlocked
from loyalty.services.events import event_report
from offers.context import LineIn
from offers.engine import Result
from offers.services import Calculation, purchase_calculate, purchase_confirm, purchase_reserve
from pos import refunds, scoping
from pos import serializers as s
from pos.auth import ApiKeyAuthentication, ApiKeyRateThrottle, HasApiKey
from pos.errors import MemberNotFound, ReceiptExists, RefundIdUsed, pos_exception_handler
from pos.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from pos.schema import problems

ZERO = Decimal("0")
TAG_RECEIPTS, TAG_MEMBERS, TAG_CARDS, TAG_EVENTS = (
    ["pos receipts"],
    ["pos members"],
    ["pos cards"],
    ["pos events"],
)
READ_PROBLEMS = (400, 401, 404, 429)
WRITE_PROBLEMS = (400, 401, 404, 409, 422, 429)


class PosView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [JSONParser]
    renderer_classes = [FastJSONRenderer]
    content_negotiation_class = PlainAcceptNegotiation

    def get_exception_handler(self):
        return pos_exception_handler


def _usable(card: Card | None, member: Member | None) -> None:
    """A blocked or replaced card, or a blocked member, cannot buy with the program."""
    if card is not None and card.state == CardState.BLOCKED:
        raise CardStateError(_("Card is blocked."))
    if card is not None and card.state == CardState.REPLACED:
        raise CardStateError(_("Card %(number)s was replaced.") % {"number": card.number})
    if member is not None and member.state == MemberState.BLOCKED:
        raise MemberBlocked(_("Member is blocked."))


def _identify(request, v: dict) -> tuple[Card | None, Member | None]:
    return scoping.identify(request.auth, card=v.get("card", ""), phone=v.get("phone", ""))


def _member_required(request, v: dict) -> Member:
    card, member = _identify(request, v)
    if member is None:
        raise MemberNotFound(_("Card %(number)s is not bound to a member.") % {"number": card.number})
    return member


def _default_currency() -> Currency | None:
    return refcache.cached(("default_currency",), lambda: Currency.objects.filter(is_default=True).first())


def _default_code() -> str:
    currency = _default_currency()
    return currency.code if currency else "bonus"


def _lines_in(v: dict) -> list[LineIn]:
    return [
        LineIn(sku=ln["sku"], quantity=ln["quantity"], price=ln["price"], name=ln.get("name", ""))
        for ln in v["lines"]
    ]


def _line(position: int, ln) -> dict:
    """A priced line (the engine's, or one stored on a receipt) as the answers show it."""
    return {
        "position": position,
        "sku": ln.sku,
        "name": ln.name,
        "quantity": ln.quantity,
        "price": ln.price,
        "amount": ln.amount,
        "discount": ln.discount,
        "total": ln.amount - ln.discount,
    }


def _engine_lines(calc: Calculation) -> list[dict]:
    return [_line(ln.index + 1, ln) for ln in calc.ctx.lines]


def _receipt_lines(receipt: Receipt) -> list[dict]:
    if "lines" in getattr(receipt, "_prefetched_objects_cache", {}):  # stored by this request
        return [_line(ln.position, ln) for ln in sorted(receipt.lines.all(), key=lambda ln: ln.position)]
    return [
        {**ln, "total": ln["amount"] - ln["discount"]}
        for ln in receipt.lines.order_by("position").values(
            "position", "sku", "name", "quantity", "price", "amount", "discount"
        )
    ]


_BONUS_ACTIONS = frozenset({"bonus", "extra_bonus"})


def _bonuses(result: Result, default: str) -> list[dict]:
    totals: dict[str, Decimal] = {}
    for accrual in result.accruals:
        code = accrual.currency or default
        totals[code] = totals.get(code, ZERO) + accrual.amount
    return [{"currency": code, "amount": amount} for code, amount in totals.items()]


def _offers(result: Result, default: str) -> list[dict]:
    """What each applied offer did, in the order the offers ran, as the answers write it
    (amounts as money strings). Written for speed: a receipt through 200 offers has
    dozens of effects, each listing the lines it touched."""
    offers: dict[int, dict] = {
        offer_id: {"id": offer_id, "name": "", "effects": []} for offer_id in result.applied
    }
    position = (1).__add__  # a line's index to its position on the receipt
    for effect in result.effects:
        entry = offers.get(effect.offer_id)
        if entry is None:
            entry = offers[effect.offer_id] = {"id": effect.offer_id, "name": "", "effects": []}
        entry["name"] = effect.offer_name
        currency = effect.currency
        if not currency and effect.action in _BONUS_ACTIONS:
            currency = default
        entry["effects"].append(
            {
                "action": effect.action,
                "amount": _money(effect.amount),
                "currency": currency,
                "lines": list(map(position, effect.lines)),
                "text": effect.text,
            }
        )
    if any(not entry["name"] for entry in offers.values()):
        from offers.models import Offer

        names = dict(Offer.objects.filter(pk__in=list(offers)).values_list("pk", "name"))
        for entry in offers.values():
            entry["name"] = entry["name"] or names.get(entry["id"], "")
    return list(offers.values())


def _receipt_data(receipt: Receipt, pos: PointOfSale) -> dict:
    return {
        "id": receipt.pk,
        "external_id": receipt.external_id,
        "point_of_sale": pos.code,
        "state": receipt.state,
        "purchased_at": receipt.purchased_at,
        "confirmed_at": receipt.confirmed_at,
        "card": receipt.card.number if receipt.card_id else None,
        "member": receipt.member_id,
        "amount": receipt.amount,
        "discount": receipt.discount,
        "total": receipt.total,
        "bonus_paid": receipt.bonus_paid,
        "bonus_accrued": receipt.bonus_accrued,
        "lines": _receipt_lines(receipt),
    }


def _balance_after(receipt: Receipt, currency: Currency | None) -> Decimal:
    """What the receipt's member can spend after its confirmation: as the ledger's writes
    in this transaction left it, else read."""
    known = getattr(receipt, "available_after", {})
    if currency is not None and currency.pk in known:
        return known[currency.pk]
    return _available(receipt.member, currency)


def _available(member: Member | None, currency: Currency | None) -> Decimal:
    if member is None or currency is None:
        return ZERO
    return selectors.account_available(member_id=member.pk, currency_id=currency.pk)


# --- receipts -------------------------------------------------------------------------
class ReceiptCalculate(PosView):
    @extend_schema(
        tags=TAG_RECEIPTS,
        operation_id="pos_receipt_calculate",
        summary="Price a receipt: discounts per line, bonuses to earn, the most payable with bonuses",
        description="A preview through the active offers; nothing is written.",
        request=s.CalculateIn,
        responses={200: s.CalculationOut, **problems(*READ_PROBLEMS, 409)},
    )
    def post(self, request):
        v = s.validated(s.CalculateIn, request.data)
        pos = scoping.point_of_sale_get(request.auth, v["point_of_sale"])
        card, member = _identify(request, v)
        _usable(card, member)
        calc = purchase_calculate(
            point_of_sale=pos, lines=_lines_in(v), payments=v["payments"], card=card, member=member
        )
        default = _default_code()
        data = {
            "point_of_sale": pos.code,
            "card": card.number if card else None,
            "member": member.pk if member else None,
            "lines": _engine_lines(calc),
            "amount": calc.ctx.amount,
            "discount": calc.ctx.amount - calc.ctx.total,
            "total": calc.ctx.total,
            "bonuses": _bonuses(calc.result, default),
            "max_bonus_payment": calc.max_bonus_payment,
            "balance": calc.balance,
            "cheque_messages": calc.cheque_messages,
            "cashier_messages": calc.cashier_messages,
            "offers": _offers(calc.result, default),
        }
        return Response(calculation_json(data))


CENT = Decimal("0.01")
MILLI = Decimal("0.001")


def _money(value) -> str:
    # Rounded as DRF's DecimalField rounds (the context's half-even), to equal the schema's.
    if value.__class__ is not Decimal:
        value = Decimal(value)
    return str(value.quantize(CENT))


def _datetime(value) -> str | None:
    """As DRF's DateTimeField writes it: ISO 8601 in the current time zone, UTC as Z."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _lines_json(lines: list[dict]) -> list[dict]:
    return [
        {
            "position": ln["position"],
            "sku": ln["sku"],
            "name": ln["name"],
            "quantity": str(Decimal(ln["quantity"]).quantize(MILLI)),
            "price": _money(ln["price"]),
            "amount": _money(ln["amount"]),
            "discount": _money(ln["discount"]),
            "total": _money(ln["total"]),
        }
        for ln in lines
    ]


def _pricing_json(data: dict) -> dict:
    """The parts a calculation and a confirmation share: bonuses, balance, messages, offers."""
    return {
        "bonuses": [{"currency": b["currency"], "amount": _money(b["amount"])} for b in data["bonuses"]],
        "balance": _money(data["balance"]),
        "cheque_messages": [str(m) for m in data["cheque_messages"]],
        "cashier_messages": [str(m) for m in data["cashier_messages"]],
        "offers": data["offers"],  # written as the answers have them (_offers)
    }


def calculation_json(data: dict) -> dict:
    """``CalculationOut(data).data`` written out by hand: the till's hot path, where the
    generic serializer cost more than pricing the receipt (the offers as ``_offers``
    writes them). A test holds the two equal."""
    return {
        "point_of_sale": data["point_of_sale"],
        "card": data["card"],
        "member": data["member"],
        "lines": _lines_json(data["lines"]),
        "amount": _money(data["amount"]),
        "discount": _money(data["discount"]),
        "total": _money(data["total"]),
        "max_bonus_payment": _money(data["max_bonus_payment"]),
        **_pricing_json(data),
    }


def confirmation_json(data: dict) -> dict:
    """``ConfirmOut(data).data`` written out by hand, as ``calculation_json``."""
    return {
        "id": data["id"],
        "external_id": data["external_id"],
        "point_of_sale": data["point_of_sale"],
        "state": data["state"],
        "purchased_at": _datetime(data["purchased_at"]),
        "confirmed_at": _datetime(data["confirmed_at"]),
        "card": data["card"],
        "member": data["member"],
        "amount": _money(data["amount"]),
        "discount": _money(data["discount"]),
        "total": _money(data["total"]),
        "bonus_paid": _money(data["bonus_paid"]),
        "bonus_accrued": _money(data["bonus_accrued"]),
        "lines": _lines_json(data["lines"]),
        **_pricing_json(data),
    }


def _exists(receipt: Receipt) -> ReceiptExists:
    return ReceiptExists(
        _("Receipt %(id)s is already %(state)s.")
        % {"id": receipt.external_id, "state": receipt.get_state_display().lower()}
    )


def _refuse_if_confirmed(pos: PointOfSale, external_id: str) -> None:
    """409 ``receipt_exists`` when a receipt with this id here is past calculation
    (confirmed, refunded or cancelled), as ``purchase_confirm`` answers it."""
    receipt = (
        Receipt.objects.filter(point_of_sale=pos, kind=ReceiptKind.SALE, external_id=external_id)
        .exclude(state=ReceiptState.CALCULATED)
        .first()
    )
    if receipt is not None:
        raise _exists(receipt)


def _purchase(request, v: dict) -> dict:
    """A confirm or reserve body as ``purchase_confirm`` and ``purchase_reserve`` take it,
    with the card and member checked as a sale needs them."""
    pos = scoping.point_of_sale_get(request.auth, v["point_of_sale"])
    card, member = _identify(request, v)
    try:
        _usable(card, member)
    except (CardStateError, MemberBlocked):
        # A till repeating a sale it lost the answer to, after the card or member was
        # blocked, learns that the sale went through, not that the card is blocked.
        _refuse_if_confirmed(pos, v["external_id"])
        raise
    if v["bonus_payment"] > 0 and member is None:
        raise ValidationError({"bonus_payment": [_("Paying with bonuses needs a member's card or phone.")]})
    return {
        "point_of_sale": pos,
        "external_id": v["external_id"],
        "lines": _lines_in(v),
        "payments": [receipt_services.PaymentInput(p["method"], p["amount"]) for p in v["payments"]],
        "card": card,
        "member": member,
        "bonus_payment": v["bonus_payment"],
    }


def _purchase_data(receipt: Receipt, calc: Calculation, pos: PointOfSale) -> dict:
    """The receipt as stored, with what its pricing gave and the member's balance after."""
    currency = _default_currency()
    default = currency.code if currency else "bonus"
    return {
        **_receipt_data(receipt, pos),
        "bonuses": _bonuses(calc.result, default),
        "balance": _balance_after(receipt, currency),
        "cheque_messages": calc.cheque_messages,
        "cashier_messages": calc.cashier_messages,
        "offers": _offers(calc.result, default),
    }


class ReceiptConfirm(PosView):
    @extend_schema(
        tags=TAG_RECEIPTS,
        operation_id="pos_receipt_confirm",
        summary="Confirm a purchase: record the receipt, pay with bonuses, accrue what the offers give",
        description=(
            "Prices the receipt again and, in one transaction, records it, takes `bonus_payment` "
            "from the member's bonuses and accrues the bonuses the offers give. The receipt id is "
            "unique per point of sale."
        ),
        request=s.ConfirmIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: s.ConfirmOut, **problems(*WRITE_PROBLEMS, 402)},
    )
    @idempotent
    def post(self, request):
        purchase = _purchase(request, s.validated(s.ConfirmIn, request.data))
        receipt, calc = purchase_confirm(**purchase)
        if not calc.confirmed:
            # Confirmed before, or by a concurrent request with another key first.
            raise _exists(receipt)
        data = _purchase_data(receipt, calc, purchase["point_of_sale"])
        return Response(confirmation_json(data), status=status.HTTP_201_CREATED)


def reservation_lapses(receipt: Receipt):
    """When the hold on a calculated receipt lapses (``receipt_holds_release``)."""
    return receipt.created_at + dt.timedelta(minutes=settings.POS_RESERVATION_MINUTES)


class ReceiptReserve(PosView):
    @extend_schema(
        tags=TAG_RECEIPTS,
        operation_id="pos_receipt_reserve",
        summary="Reserve a purchase: record the receipt as calculated and hold the bonuses it pays with",
        description=(
            "The first phase of a two-phase purchase. Prices the receipt, records it as calculated "
            "and holds `bonus_payment` of the member's bonuses for it: they leave the available "
            "balance, so nothing else spends them. Finish with `confirm` (the same receipt id and "
            "lines: the held bonuses become the payment; a smaller `bonus_payment` gives the rest "
            "back, a larger one draws more) or `cancel` (the bonuses go back). A reservation "
            "neither confirmed nor cancelled lapses at `reserved_until` and is cancelled. The "
            "receipt id is unique per point of sale."
        ),
        request=s.ConfirmIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: s.ReserveOut, **problems(*WRITE_PROBLEMS, 402)},
    )
    @idempotent
    def post(self, request):
        purchase = _purchase(request, s.validated(s.ConfirmIn, request.data))
        receipt, calc, stored_now = purchase_reserve(**purchase)
        if not stored_now:
            raise _exists(receipt)
        data = {
            **_purchase_data(receipt, calc, purchase["point_of_sale"]),
            "reserved_until": reservation_lapses(receipt),
        }
        return Response(s.ReserveOut(data).data, status=status.HTTP_201_CREATED)


class ReceiptRead(PosView):
    @extend_schema(
        tags=TAG_RECEIPTS,
        operation_id="pos_receipt_read",
        summary="A receipt as it stands: its state, figures, lines and refunds",
        description=(
            "For a till that lost the answer to a confirmation, or checks a sale before "
            "refunding it. Receipts of another partner's points of sale are not found (404)."
        ),
        parameters=[s.ReceiptQuery],
        responses={200: s.ReceiptReadOut, **problems(*READ_PROBLEMS)},
    )
    def get(self, request):
        v = s.validated(s.ReceiptQuery, request.query_params)
        pos = scoping.point_of_sale_get(request.auth, v["point_of_sale"])
        receipt = scoping.receipt_get(pos, v["external_id"])
        refunds = [
            {
                "refund_id": refund.external_id,
                "refunded_at": refund.confirmed_at or refund.purchased_at,
                "amount": refund.total,
                "bonus_restored": ZERO - refund.bonus_paid,
                "bonus_clawed_back": ZERO - refund.bonus_accrued,
            }
            for refund in receipt.refunds.order_by("pk")
        ]
        calculated = receipt.state == ReceiptState.CALCULATED
        data = {
            **_receipt_data(receipt, pos),
            "refunds": refunds,
            "reserved_until": reservation_lapses(receipt) if calculated else None,
        }
        return Response(s.ReceiptReadOut(data).data)


class ReceiptCancel(PosView):
    @extend_schema(
        tags=TAG_RECEIPTS,
        operation_id="pos_receipt_cancel",
        summary="Cancel a reserved receipt: the bonuses held for it go back",
        description=(
            "Ends a purchase begun with `reserve` without confirming it: the receipt is cancelled "
            "and the bonuses held for it return to the member's balance. Cancelling again answers "
            "the cancelled receipt. A confirmed receipt cannot be cancelled (409): refund it."
        ),
        request=s.PointOfSaleIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={200: s.ReceiptOut, **problems(*WRITE_PROBLEMS)},
    )
    @idempotent
    def post(self, request, external_id: str):
        v = s.validated(s.PointOfSaleIn, request.data)
        pos = scoping.point_of_sale_get(request.auth, v["point_of_sale"])
        receipt = receipt_services.receipt_cancel(receipt=scoping.receipt_get(pos, external_id))
        return Response(s.ReceiptOut(_receipt_data(receipt, pos)).data)


class ReceiptRefund(PosView):
    @extend_schema(
        tags=TAG_RECEIPTS,
        operation_id="pos_receipt_refund",
        summary="Refund a confirmed receipt, wholly or by lines",
        description=(
            "Returned units are priced like the original lines, with their share of the discount. "
            "Bonuses follow the refunded share of the receipt: those paid go back to the member, "
            "those earned are taken back. The same `refund_id` twice is one refund."
        ),
        request=s.RefundIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: s.RefundOut, 200: s.RefundOut, **problems(*WRITE_PROBLEMS)},
    )
    @idempotent
    def post(self, request, external_id: str):
        v = s.validated(s.RefundIn, request.data)
        pos = scoping.point_of_sale_get(request.auth, v["point_of_sale"])
        receipt = scoping.receipt_get(pos, external_id)
        refund = receipt.refunds.filter(external_id=v["refund_id"]).first()
        created = refund is None
        if refund is None:
            if Receipt.objects.filter(
                point_of_sale=pos, kind=ReceiptKind.REFUND, external_id=v["refund_id"]
            ).exists():
                raise RefundIdUsed(_("Refund %(id)s is of another receipt.") % {"id": v["refund_id"]})
            if receipt.state not in (ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED):
                raise receipt_services.receipt_state_error(receipt)
            requested = [(ln["sku"], ln["quantity"]) for ln in v["lines"]] if "lines" in v else None
            lines = refunds.refund_lines(receipt, requested)
            refund = receipt_services.receipt_refund(receipt=receipt, external_id=v["refund_id"], lines=lines)
        receipt.refresh_from_db(fields=["state"])
        data = {
            "id": refund.pk,
            "refund_id": refund.external_id,
            "receipt": receipt.external_id,
            "receipt_state": receipt.state,
            "point_of_sale": pos.code,
            "amount": refund.total,
            "bonus_restored": ZERO - refund.bonus_paid,
            "bonus_clawed_back": ZERO - refund.bonus_accrued,
            "lines": _receipt_lines(refund),
        }
        return Response(
            s.RefundOut(data).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


# --- balance and members ----------------------------------------------------------------
class Balance(PosView):
    @extend_schema(
        tags=TAG_MEMBERS,
        operation_id="pos_balance",
        summary="A member's bonuses per currency: available, pending, expiring soon",
        parameters=[s.BalanceQuery],
        responses={200: s.BalancesOut, **problems(*READ_PROBLEMS)},
    )
    def get(self, request):
        v = s.validated(s.BalanceQuery, request.query_params)
        member = _member_required(request, v)
        rows = selectors.member_balances(member=member, expiring_days=v["expiring_days"])
        balances = [
            {
                "currency": b.currency_code,
                "currency_name": b.currency_name,
                "available": b.available,
                "pending": b.pending,
                "expiring": b.expiring,
                "expiring_days": b.expiring_days,
                "next_expiry": b.next_expiry,
                "next_activation": b.next_activation,
                "reserved": b.reserved,
            }
            for b in rows
        ]
        default = _default_currency()
        if default is not None and default.code not in {b["currency"] for b in balances}:
            balances.insert(
                0,
                {
                    "currency": default.code,
                    "currency_name": default.label,
                    "available": ZERO,
                    "pending": ZERO,
                    "expiring": ZERO,
                    "expiring_days": v["expiring_days"],
                    "next_expiry": None,
                    "next_activation": None,
                    "reserved": ZERO,
                },
            )
        return Response(s.BalancesOut({"member": member.pk, "balances": balances}).data)


def _member_data(request, member: Member) -> dict:
    return {
        "id": member.pk,
        "external_id": member.external_id,
        "last_name": member.last_name,
        "first_name": member.first_name,
        "middle_name": member.middle_name,
        "phone": member.phone,
        "email": member.email,
        "state": member.state,
        "status": member.status.code if member.status_id else None,
        "registered_at": member.registered_at,
        "cards": list(
            scoping.cards(request.auth)
            .filter(member=member)
            .order_by("issued_at")
            .values_list("number", flat=True)
        ),
        "consents": {c.channel: c.granted for c in member.consents.all()},
    }


class MemberLookup(PosView):
    @extend_schema(
        tags=TAG_MEMBERS,
        operation_id="pos_member_lookup",
        summary="Find the member by card number or phone",
        parameters=[s.IdentityQuery],
        responses={200: s.MemberOut, **problems(*READ_PROBLEMS)},
    )
    def get(self, request):
        v = s.validated(s.IdentityQuery, request.query_params)
        return Response(s.MemberOut(_member_data(request, _member_required(request, v))).data)


REGISTRATION_CHANNELS = {
    SalesChannel.OFFLINE: RegistrationChannel.POINT_OF_SALE,
    SalesChannel.ONLINE_STORE: RegistrationChannel.ONLINE_STORE,
    SalesChannel.MOBILE_APP: RegistrationChannel.MOBILE_APP,
}


class MemberRegister(PosView):
    @extend_schema(
        tags=TAG_MEMBERS,
        operation_id="pos_member_register",
        summary="Register a member, with consents per channel and optionally the card they hold",
        request=s.MemberIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: s.MemberOut, **problems(*WRITE_PROBLEMS)},
    )
    @idempotent
    def post(self, request):
        v = dict(s.validated(s.MemberIn, request.data))
        pos_code = v.pop("point_of_sale", "")
        pos = scoping.point_of_sale_get(request.auth, pos_code) if pos_code else None
        card_number = v.pop("card", "")
        card = scoping.card_get(request.auth, card_number) if card_number else None
        consents = v.pop("consents", {})
        channel = (
            REGISTRATION_CHANNELS.get(pos.kind, RegistrationChannel.POINT_OF_SALE)
            if pos
            else (RegistrationChannel.POINT_OF_SALE)
        )
        member = member_services.member_create(
            consents=consents,
            consent_source=(f"pos:{pos.code}" if pos else "pos")[:64],
            registration_channel=channel,
            **v,
        )
        if card is not None:
            card_services.card_bind(card=card, member=member)
            card_services.card_activate(card=card, channel=channel)
        member = Member.objects.select_related("status").get(pk=member.pk)
        return Response(s.MemberOut(_member_data(request, member)).data, status=status.HTTP_201_CREATED)


# --- cards ------------------------------------------------------------------------------
def _card_member(request, v: dict) -> Member | None:
    """The member a card request names by id or by phone (``CardMemberIn``), if any."""
    if v.get("member"):
        return scoping.member_get(request.auth, v["member"])
    if v.get("phone"):
        return scoping.member_by_phone(request.auth, v["phone"])
    return None


class CardIssue(PosView):
    @extend_schema(
        tags=TAG_CARDS,
        operation_id="pos_card_issue",
        summary="Issue a card at a point of sale, optionally bound to a member",
        request=s.CardIssueIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: s.CardOut, **problems(*WRITE_PROBLEMS)},
    )
    @idempotent
    def post(self, request):
        v = s.validated(s.CardIssueIn, request.data)
        pos = scoping.point_of_sale_get(request.auth, v["point_of_sale"])
        member = _card_member(request, v)
        number = v.get("number", "")
        if number and not card_services.card_number_valid(number):
            raise ValidationError(
                {"number": [_("Not a card number of this program (prefix, length, check digit).")]}
            )
        card = card_services.card_issue(number=number, kind=v["kind"], member=member, point_of_sale=pos)
        return Response(s.CardOut(card).data, status=status.HTTP_201_CREATED)


class CardActivate(PosView):
    @extend_schema(
        tags=TAG_CARDS,
        operation_id="pos_card_activate",
        summary="Activate a card bound to a member",
        request=s.CardActivateIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={200: s.CardOut, **problems(*WRITE_PROBLEMS)},
    )
    @idempotent
    def post(self, request, number: str):
        v = s.validated(s.CardActivateIn, request.data)
        pos = scoping.point_of_sale_get(request.auth, v["point_of_sale"]) if v.get("point_of_sale") else None
        card = scoping.card_get(request.auth, number)
        channel = (
            REGISTRATION_CHANNELS.get(pos.kind, RegistrationChannel.POINT_OF_SALE)
            if pos
            else (RegistrationChannel.POINT_OF_SALE)
        )
        card = card_services.card_activate(card=card, channel=channel)
        return Response(s.CardOut(card).data)


class CardBind(PosView):
    @extend_schema(
        tags=TAG_CARDS,
        operation_id="pos_card_bind",
        summary="Bind an issued card to a registered member",
        description=(
            "For a card sold without a member, or a member who registered elsewhere and "
            "takes a card at the till; activate it afterwards. Binding a card to the member "
            "it is bound to already answers the card as it is; a card of another member, a "
            "blocked or replaced card and a blocked member are refused (409)."
        ),
        request=s.CardBindIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={200: s.CardOut, **problems(*WRITE_PROBLEMS)},
    )
    @idempotent
    def post(self, request, number: str):
        v = s.validated(s.CardBindIn, request.data)
        card = scoping.card_get(request.auth, number)
        member = _card_member(request, v)
        _usable(card, member)
        card = card_services.card_bind(card=card, member=member)
        return Response(s.CardOut(card).data)


# --- events -----------------------------------------------------------------------------
class EventReport(PosView):
    @extend_schema(
        tags=TAG_EVENTS,
        operation_id="pos_event_report",
        summary="Report a member event that is not a purchase (app installed, questionnaire filled, ...)",
        description=(
            "Offers of the event's type run for the member once it is recorded. `app_installed` "
            "counts once per member: a repeat answers 200 with the first event, and its offers do "
            "not run again."
        ),
        request=s.EventIn,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: s.EventOut, 200: s.EventOut, **problems(*WRITE_PROBLEMS)},
    )
    @idempotent
    def post(self, request):
        v = s.validated(s.EventIn, request.data)
        member = _member_required(request, v)
        pos = scoping.point_of_sale_get(request.auth, v["point_of_sale"]) if v.get("point_of_sale") else None
        event, recorded = event_report(
            event_type=v["event_type"],
            member=member,
            point_of_sale=pos,
            payload=v["payload"],
            occurred_at=v.get("occurred_at"),
        )
        return Response(
            s.EventOut(event).data, status=status.HTTP_201_CREATED if recorded else status.HTTP_200_OK
        )
