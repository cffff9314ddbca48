"""Input and output of the point-of-sale API. Money and quantities travel as decimal
strings; point of sale, card and payment method are named by their codes."""

import datetime as dt
import re
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from loyalty import refcache
from loyalty.api.fields import MAX_ID, JsonObjectField
from loyalty.events import PURCHASE, event_types
from loyalty.models import CardKind, ContactChannel, Gender, MemberState, PaymentMethod, ReceiptState

MONEY = {"max_digits": 14, "decimal_places": 2}
# A line is at most 99 999.999 units at 9 999 999.99 each, so its amount fits the ledger.
QUANTITY = {"max_digits": 8, "decimal_places": 3, "min_value": Decimal("0.001")}
PRICE = {"max_digits": 9, "decimal_places": 2, "min_value": Decimal("0")}
MAX_RECEIPT_AMOUNT = Decimal("999999999999.99")
MAX_LINES = 500
MAX_PAYLOAD_BYTES = 16384
EARLIEST_EVENT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _inline_choices(name: str, choices) -> type[serializers.ChoiceField]:
    """A choice field with its own named enum in OpenAPI (``PosReceiptState``...), apart
    from the back-office API's enums of the same field names."""
    values = [value for value, _label in choices]

    def __init__(self, **kwargs):
        serializers.ChoiceField.__init__(self, choices=choices, **kwargs)

    field = type(name, (serializers.ChoiceField,), {"__init__": __init__})
    return extend_schema_field({"type": "string", "enum": values}, component_name=f"Pos{name[:-5]}")(field)


ReceiptStateField = _inline_choices("ReceiptStateField", ReceiptState.choices)
MemberStateField = _inline_choices("MemberStateField", MemberState.choices)
LanguageField = _inline_choices("LanguageField", settings.LANGUAGES)


def _point_of_sale(**kwargs) -> serializers.SlugField:
    return serializers.SlugField(
        max_length=64, help_text=gettext_lazy("Code of the point of sale."), **kwargs
    )


def _card(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=32, required=False, help_text=gettext_lazy("Card number of the member."), **kwargs
    )


def _phone(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=64,
        required=False,
        help_text=gettext_lazy("Phone of the member in any common format (instead of the card)."),
        **kwargs,
    )


# --- receipts -------------------------------------------------------------------------
def _text(raw, max_length: int, *, allow_blank: bool = False) -> str | None:
    """A ``CharField``'s value for plain valid input, else ``None``."""
    if not isinstance(raw, str) or "\x00" in raw:
        return None
    if not raw.isascii():
        try:
            raw.encode()
        except UnicodeEncodeError:  # a lone surrogate: the serializer names the field
            return None
    text = raw.strip()
    if (not text and not allow_blank) or len(text) > max_length:
        return None
    return text


def _decimal(raw, *, max_digits: int, decimal_places: int, min_value: Decimal) -> Decimal | None:
    """A ``DecimalField``'s value for plain valid input (the same digit rules), else ``None``."""
    if isinstance(raw, str):
        text = raw.strip()
    elif isinstance(raw, int) and not isinstance(raw, bool):
        text = str(raw)
    else:
        return None
    if not text or len(text) > 100:
        return None
    try:
        value = Decimal(text)
    except ArithmeticError:
        return None
    if not value.is_finite():
        return None
    _sign, digits, exponent = value.as_tuple()
    if exponent >= 0:
        total, places = len(digits) + exponent, 0
    elif len(digits) > -exponent:
        total, places = len(digits), -exponent
    else:
        total = places = -exponent
    if total > max_digits or places > decimal_places or total - places > max_digits - decimal_places:
        return None
    if value < min_value:
        return None
    return value.quantize(Decimal(1).scaleb(-decimal_places))


SLUG = re.compile(r"^[-a-zA-Z0-9_]+\Z")


def _slug(raw, max_length: int) -> str | None:
    """A ``SlugField``'s value for plain valid input, else ``None``."""
    text = _text(raw, max_length)
    return text if text is not None and SLUG.match(text) else None


def validated(serializer_class, data) -> dict:
    """``serializer_class(data=data)``'s validated data, raising its ``ValidationError``.
    The till's hot inputs (``CalculateIn``, ``ConfirmIn``) read plainly valid bodies
    directly by the fields' own rules (``fast``): DRF builds and binds a copy of every
    declared field for each request, which cost a tenth of pricing a receipt. Anything
    else goes through the serializer, which names each bad field (a test holds the two
    equal)."""
    fast = getattr(serializer_class, "fast", None)
    if fast is not None:
        value = fast(data)
        if value is not None:
            return value
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _methods_known(codes: list[str]) -> bool:
    known = refcache.cached(
        ("payment_methods",), lambda: frozenset(PaymentMethod.objects.values_list("code", flat=True))
    )
    return set(codes) <= known


def _fast_lines(data, max_length: int | None) -> list[dict] | None:
    """``LineIn(many=True)``'s value for plainly valid lines, else ``None``."""
    if not isinstance(data, list) or not data or (max_length and len(data) > max_length):
        return None
    lines = []
    for item in data:
        if not isinstance(item, dict):
            return None
        sku = _text(item.get("sku"), 64)
        quantity = _decimal(item.get("quantity"), **QUANTITY)
        price = _decimal(item.get("price"), **PRICE)
        name = _text(item["name"], 255, allow_blank=True) if "name" in item else ""
        if sku is None or quantity is None or price is None or name is None:
            return None
        lines.append({"sku": sku, "quantity": quantity, "price": price, "name": name})
    return lines


class LinesIn(serializers.ListSerializer):
    """``LineIn(many=True)``. A till sends dozens of lines on every request, and the
    generic field-by-field validation cost more than pricing them: plainly valid lines
    are read here directly, with the fields' own rules; anything else goes through the
    serializer, which names each bad field (a test holds the two equal)."""

    def to_internal_value(self, data):
        fast = self._fast(data)
        return fast if fast is not None else super().to_internal_value(data)

    def _fast(self, data) -> list[dict] | None:
        return _fast_lines(data, self.max_length)


class LineIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.DecimalField(**QUANTITY)
    price = serializers.DecimalField(**PRICE, help_text=gettext_lazy("Price per unit before discounts."))
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "PosLineIn"
        list_serializer_class = LinesIn


class PaymentIn(serializers.Serializer):
    method = serializers.SlugField(max_length=32, help_text=gettext_lazy("Payment method code."))
    amount = serializers.DecimalField(**MONEY, min_value=Decimal("0"))

    class Meta:
        ref_name = "PosPaymentIn"


def _methods_check(codes: list[str], field: str) -> None:
    """``field`` names each payment, e.g. ``payments[{i}]``."""
    known = refcache.cached(
        ("payment_methods",), lambda: frozenset(PaymentMethod.objects.values_list("code", flat=True))
    )
    if not set(codes) <= known:  # a method added since: ask the database
        known = set(PaymentMethod.objects.filter(code__in=codes).values_list("code", flat=True))
    errors = {
        field.format(i=i): [_("Unknown payment method %(code)s.") % {"code": code}]
        for i, code in enumerate(codes)
        if code not in known
    }
    if errors:
        raise serializers.ValidationError(errors)


class ReceiptIn(serializers.Serializer):
    point_of_sale = _point_of_sale()
    card = _card()
    phone = _phone()
    lines = LineIn(many=True, allow_empty=False, max_length=MAX_LINES)

    def validate_lines(self, lines):
        amount = sum((ln["quantity"] * ln["price"] for ln in lines), Decimal(0))
        if amount > MAX_RECEIPT_AMOUNT:
            raise serializers.ValidationError(_("The receipt amount is too large."))
        return lines

    @classmethod
    def _fast_receipt(cls, data) -> dict | None:
        """The fields every receipt has, for plainly valid input (see ``validated``)."""
        if not isinstance(data, dict):
            return None
        point_of_sale = _slug(data.get("point_of_sale"), 64)
        lines = _fast_lines(data.get("lines"), MAX_LINES)
        if point_of_sale is None or lines is None:
            return None
        if sum((ln["quantity"] * ln["price"] for ln in lines), Decimal(0)) > MAX_RECEIPT_AMOUNT:
            return None
        out = {"point_of_sale": point_of_sale}
        for name, max_length in (("card", 32), ("phone", 64)):
            if name in data:
                value = _text(data[name], max_length)
                if value is None:
                    return None
                out[name] = value
        out["lines"] = lines
        return out


class CalculateIn(ReceiptIn):
    payments = serializers.ListField(
        child=serializers.SlugField(max_length=32),
        required=False,
        default=list,
        max_length=20,
        help_text=gettext_lazy("Codes of the payment methods the buyer chose."),
    )

    class Meta:
        ref_name = "PosCalculateIn"

    def validate(self, attrs):
        _methods_check(attrs.get("payments", []), "payments[{i}]")
        return attrs

    @classmethod
    def fast(cls, data) -> dict | None:
        out = cls._fast_receipt(data)
        if out is None:
            return None
        payments = data.get("payments", [])
        if not isinstance(payments, list) or len(payments) > 20:
            return None
        codes = [_slug(code, 32) for code in payments]
        if None in codes or not _methods_known(codes):
            return None
        out["payments"] = codes
        return out


class ConfirmIn(ReceiptIn):
    external_id = serializers.CharField(
        max_length=64, help_text=gettext_lazy("The receipt's id at the point of sale (unique there).")
    )
    payments = PaymentIn(many=True, required=False, default=list, max_length=20)
    bonus_payment = serializers.DecimalField(
        **MONEY,
        min_value=Decimal("0"),
        default=Decimal("0"),
        help_text=gettext_lazy("How much of the total the member pays with bonuses."),
    )

    class Meta:
        ref_name = "PosConfirmIn"

    def validate(self, attrs):
        _methods_check([p["method"] for p in attrs.get("payments", [])], "payments[{i}].method")
        return attrs

    @classmethod
    def fast(cls, data) -> dict | None:
        out = cls._fast_receipt(data)
        if out is None:
            return None
        external_id = _text(data.get("external_id"), 64)
        payments = data.get("payments", [])
        if external_id is None or not isinstance(payments, list) or len(payments) > 20:
            return None
        read = []
        for item in payments:
            if not isinstance(item, dict):
                return None
            method = _slug(item.get("method"), 32)
            amount = _decimal(item.get("amount"), **MONEY, min_value=Decimal("0"))
            if method is None or amount is None:
                return None
            read.append({"method": method, "amount": amount})
        if not _methods_known([p["method"] for p in read]):
            return None
        bonus_payment = Decimal("0")
        if "bonus_payment" in data:
            bonus_payment = _decimal(data["bonus_payment"], **MONEY, min_value=Decimal("0"))
            if bonus_payment is None:
                return None
        out.update(external_id=external_id, payments=read, bonus_payment=bonus_payment)
        return out


class PointOfSaleIn(serializers.Serializer):
    point_of_sale = _point_of_sale()

    class Meta:
        ref_name = "PosPointOfSaleIn"


class RefundLineIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.DecimalField(**QUANTITY)

    class Meta:
        ref_name = "PosRefundLineIn"


class RefundIn(serializers.Serializer):
    point_of_sale = _point_of_sale()
    refund_id = serializers.CharField(
        max_length=64, help_text=gettext_lazy("The refund's own id at the point of sale.")
    )
    lines = RefundLineIn(
        many=True,
        required=False,
        allow_empty=False,
        max_length=MAX_LINES,
        help_text=gettext_lazy("What is returned; leave out to refund the whole receipt."),
    )

    class Meta:
        ref_name = "PosRefundIn"


class LineOut(serializers.Serializer):
    position = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3)
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    amount = serializers.DecimalField(**MONEY)
    discount = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)

    class Meta:
        ref_name = "PosLineOut"


class BonusAmountOut(serializers.Serializer):
    currency = serializers.CharField(help_text=gettext_lazy("Bonus currency code."))
    amount = serializers.DecimalField(**MONEY)

    class Meta:
        ref_name = "PosBonusAmount"


class EffectOut(serializers.Serializer):
    action = serializers.CharField(help_text=gettext_lazy("discount, bonus, cheque_message, ..."))
    amount = serializers.DecimalField(**MONEY)
    currency = serializers.CharField()
    lines = serializers.ListField(
        child=serializers.IntegerField(), help_text=gettext_lazy("Positions of the lines it applied to.")
    )
    text = serializers.CharField()

    class Meta:
        ref_name = "PosOfferEffect"


class AppliedOfferOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    effects = EffectOut(many=True)

    class Meta:
        ref_name = "PosAppliedOffer"


class CalculationOut(serializers.Serializer):
    point_of_sale = serializers.CharField()
    card = serializers.CharField(allow_null=True)
    member = serializers.IntegerField(allow_null=True)
    lines = LineOut(many=True)
    amount = serializers.DecimalField(**MONEY, help_text=gettext_lazy("Before discounts."))
    discount = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY, help_text=gettext_lazy("To pay, after discounts."))
    bonuses = BonusAmountOut(many=True, help_text=gettext_lazy("Bonuses the purchase will earn."))
    max_bonus_payment = serializers.DecimalField(
        **MONEY, help_text=gettext_lazy("The most the member may pay with bonuses on this receipt.")
    )
    balance = serializers.DecimalField(
        **MONEY, help_text=gettext_lazy("The member's available bonuses (default currency).")
    )
    cheque_messages = serializers.ListField(child=serializers.CharField())
    cashier_messages = serializers.ListField(child=serializers.CharField())
    offers = AppliedOfferOut(many=True)

    class Meta:
        ref_name = "PosCalculation"


class ReceiptOut(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    point_of_sale = serializers.CharField()
    state = ReceiptStateField()
    purchased_at = serializers.DateTimeField()
    confirmed_at = serializers.DateTimeField(allow_null=True)
    card = serializers.CharField(allow_null=True)
    member = serializers.IntegerField(allow_null=True)
    amount = serializers.DecimalField(**MONEY)
    discount = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)
    bonus_paid = serializers.DecimalField(**MONEY)
    bonus_accrued = serializers.DecimalField(**MONEY)
    lines = LineOut(many=True)

    class Meta:
        ref_name = "PosReceipt"


class ConfirmOut(ReceiptOut):
    bonuses = BonusAmountOut(many=True, help_text=gettext_lazy("Bonuses accrued, by currency."))
    balance = serializers.DecimalField(
        **MONEY, help_text=gettext_lazy("The member's available bonuses after the purchase.")
    )
    cheque_messages = serializers.ListField(child=serializers.CharField())
    cashier_messages = serializers.ListField(child=serializers.CharField())
    offers = AppliedOfferOut(many=True)

    class Meta:
        ref_name = "PosConfirmation"


class ReserveOut(ConfirmOut):
    bonus_paid = serializers.DecimalField(
        **MONEY,
        help_text=gettext_lazy(
            "Bonuses held for the receipt: they become the payment when it is confirmed and go back "
            "when it is cancelled."
        ),
    )
    reserved_until = serializers.DateTimeField(
        help_text=gettext_lazy(
            "When the hold lapses if the receipt is neither confirmed nor cancelled: the receipt is "
            "then cancelled and the bonuses go back."
        )
    )

    class Meta:
        ref_name = "PosReservation"


class RefundOut(serializers.Serializer):
    id = serializers.IntegerField()
    refund_id = serializers.CharField()
    receipt = serializers.CharField(help_text=gettext_lazy("External id of the refunded receipt."))
    receipt_state = ReceiptStateField()
    point_of_sale = serializers.CharField()
    amount = serializers.DecimalField(**MONEY)
    bonus_restored = serializers.DecimalField(
        **MONEY, help_text=gettext_lazy("Bonuses paid on the receipt, given back.")
    )
    bonus_clawed_back = serializers.DecimalField(
        **MONEY, help_text=gettext_lazy("Bonuses the receipt earned, taken back.")
    )
    lines = LineOut(many=True)

    class Meta:
        ref_name = "PosRefund"


class ReceiptQuery(serializers.Serializer):
    point_of_sale = _point_of_sale()
    external_id = serializers.CharField(
        max_length=64, help_text=gettext_lazy("The receipt's id at the point of sale.")
    )

    class Meta:
        ref_name = "PosReceiptQuery"


class RefundSummaryOut(serializers.Serializer):
    refund_id = serializers.CharField()
    refunded_at = serializers.DateTimeField()
    amount = serializers.DecimalField(**MONEY)
    bonus_restored = serializers.DecimalField(**MONEY)
    bonus_clawed_back = serializers.DecimalField(**MONEY)

    class Meta:
        ref_name = "PosRefundSummary"


class ReceiptReadOut(ReceiptOut):
    refunds = RefundSummaryOut(many=True, help_text=gettext_lazy("The receipt's refunds, oldest first."))
    reserved_until = serializers.DateTimeField(
        allow_null=True,
        help_text=gettext_lazy(
            "A reserved receipt (state calculated): when its hold lapses unless it is confirmed or "
            "cancelled; otherwise null."
        ),
    )

    class Meta:
        ref_name = "PosReceiptRead"


# --- balance, cards, members, events -----------------------------------------------------
class IdentityQuery(serializers.Serializer):
    card = _card()
    phone = _phone()

    class Meta:
        ref_name = "PosIdentityQuery"

    def validate(self, attrs):
        if not attrs.get("card") and not attrs.get("phone"):
            raise serializers.ValidationError({"card": [_("Give a card number or a phone.")]})
        return attrs


class BalanceQuery(IdentityQuery):
    expiring_days = serializers.IntegerField(
        required=False,
        default=30,
        min_value=1,
        max_value=3650,
        help_text=gettext_lazy("How far ahead to count expiring bonuses, in days."),
    )

    class Meta:
        ref_name = "PosBalanceQuery"


class BalanceOut(serializers.Serializer):
    currency = serializers.CharField()
    currency_name = serializers.CharField()
    available = serializers.DecimalField(**MONEY)
    pending = serializers.DecimalField(**MONEY)
    expiring = serializers.DecimalField(**MONEY)
    expiring_days = serializers.IntegerField()
    next_expiry = serializers.DateTimeField(allow_null=True)
    next_activation = serializers.DateTimeField(allow_null=True)
    reserved = serializers.DecimalField(
        **MONEY,
        help_text=gettext_lazy(
            "Held for reserved purchases not yet confirmed or cancelled (not in `available`)."
        ),
    )

    class Meta:
        ref_name = "PosBalance"


class BalancesOut(serializers.Serializer):
    member = serializers.IntegerField()
    balances = BalanceOut(many=True)

    class Meta:
        ref_name = "PosBalances"


class CardMemberIn(serializers.Serializer):
    """The member a card is bound to, by id or by phone (not both)."""

    member = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text=gettext_lazy("Bind the card to this member."),
    )
    phone = _phone()

    def validate(self, attrs):
        if attrs.get("member") and attrs.get("phone"):
            raise serializers.ValidationError({"phone": [_("Name the member by id or by phone, not both.")]})
        return attrs


class CardIssueIn(CardMemberIn):
    point_of_sale = _point_of_sale()
    number = serializers.CharField(
        max_length=32, required=False, help_text=gettext_lazy("Leave out to take a new number.")
    )
    kind = serializers.ChoiceField(choices=CardKind.choices, default=CardKind.PHYSICAL)

    class Meta:
        ref_name = "PosCardIssueIn"


class CardBindIn(CardMemberIn):
    class Meta:
        ref_name = "PosCardBindIn"

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("member") and not attrs.get("phone"):
            raise serializers.ValidationError({"member": [_("Name the member by id or by phone.")]})
        return attrs


class CardActivateIn(serializers.Serializer):
    point_of_sale = _point_of_sale(required=False)

    class Meta:
        ref_name = "PosCardActivateIn"


class CardOut(serializers.Serializer):
    number = serializers.CharField()
    kind = serializers.ChoiceField(choices=CardKind.choices)
    state = serializers.CharField()
    member = serializers.IntegerField(source="member_id", allow_null=True)
    issued_at = serializers.DateTimeField()
    activated_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "PosCard"


class MemberOut(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField(allow_null=True)
    last_name = serializers.CharField()
    first_name = serializers.CharField()
    middle_name = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.CharField()
    state = MemberStateField()
    status = serializers.CharField(allow_null=True, help_text=gettext_lazy("Code of the member's tier."))
    registered_at = serializers.DateTimeField()
    cards = serializers.ListField(child=serializers.CharField())
    consents = serializers.DictField(child=serializers.BooleanField())

    class Meta:
        ref_name = "PosMember"


class MemberIn(serializers.Serializer):
    point_of_sale = _point_of_sale(required=False)
    external_id = serializers.CharField(max_length=64, required=False)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    middle_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    gender = serializers.ChoiceField(choices=Gender.choices, required=False)
    birth_date = serializers.DateField(required=False)
    phone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    city = serializers.CharField(max_length=128, required=False, allow_blank=True)
    language = LanguageField(required=False)
    consents = serializers.DictField(
        child=serializers.BooleanField(),
        required=False,
        help_text=gettext_lazy("Consent per channel: sms, email, push, viber, social."),
    )
    card = serializers.CharField(
        max_length=32,
        required=False,
        help_text=gettext_lazy("A card the member holds: bound to the member and activated."),
    )

    class Meta:
        ref_name = "PosMemberIn"

    def validate_consents(self, value):
        unknown = sorted(set(value) - set(ContactChannel.values))
        if unknown:
            raise serializers.ValidationError(_("Unknown channels: %(list)s.") % {"list": ", ".join(unknown)})
        return value


# Events the program records itself when it does the thing (a till reporting them would
# record a status change or a registration that did not happen).
SYSTEM_EVENTS = frozenset(
    {
        "registration_completed",
        "card_activated",
        "card_blocked",
        "card_replaced",
        "consent_changed",
        "status_changed",
        "status_calculated",
        "member_blocked",
        "bonus_adjusted",
        "rfm_segment_changed",
    }
)


def reportable_event_types() -> list[tuple[str, str]]:
    """Non-purchase events a till, store or app may report."""
    return [(t.key, t.label) for t in event_types if t.group != PURCHASE and t.key not in SYSTEM_EVENTS]


class EventIn(serializers.Serializer):
    event_type = serializers.ChoiceField(choices=[])
    card = _card()
    phone = _phone()
    point_of_sale = _point_of_sale(required=False)
    occurred_at = serializers.DateTimeField(
        required=False,
        help_text=gettext_lazy("When it happened (since 2000, at most a day ahead); now if left out."),
    )
    payload = JsonObjectField(required=False, default=dict, max_bytes=MAX_PAYLOAD_BYTES)

    class Meta:
        ref_name = "PosEventIn"

    def validate_occurred_at(self, value):
        if value < EARLIEST_EVENT or value > timezone.now() + dt.timedelta(days=1):
            raise serializers.ValidationError(_("Give a time since 2000 and at most a day ahead."))
        return value

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event_type"].choices = reportable_event_types()

    def validate(self, attrs):
        if not attrs.get("card") and not attrs.get("phone"):
            raise serializers.ValidationError({"card": [_("Name the member by card or by phone.")]})
        return attrs


class EventOut(serializers.Serializer):
    id = serializers.IntegerField()
    event_type = serializers.CharField()
    member = serializers.IntegerField(source="member_id")
    occurred_at = serializers.DateTimeField()

    class Meta:
        ref_name = "PosEvent"
