"""Input and output of the member API. Inputs validate shape only; the portal and loyalty
services decide the rules. Outputs are plain serializers over what the services return,
so the schema describes exactly what the app receives."""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from communications.models.delivery import DevicePlatform
from loyalty.api.fields import MAX_ID, JsonObjectField, UnknownKeysRefused
from loyalty.models import CardKind, ContactChannel, Gender
from portal.models import CodePurpose
from portal.services.auth import address_parse

PROBLEM_TYPE = "application/problem+json"
APP_EVENTS = (
    "app_installed",
    "social_profile_linked",
    "social_activity",
    "social_group_joined",
    "social_group_left",
    "social_activity_deleted",
)


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=14, decimal_places=2, **kwargs)


# --- problems -------------------------------------------------------------------------
class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details with the project's stable ``code``."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    code = serializers.CharField(help_text=_("Stable machine-readable kind of problem."))
    detail = serializers.CharField(required=False)
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text=_("Field errors by field name, e.g. login, code, products."),
    )
    retry_after = serializers.IntegerField(
        required=False, help_text=_("With code `code_throttled`: seconds until a new code may be asked for.")
    )

    class Meta:
        ref_name = "MemberProblem"


_PROBLEMS = {
    400: _("Invalid input: `errors` names each field (code `invalid`, or `code_invalid` for a wrong code)."),
    401: _("No member token, or an expired or revoked one."),
    404: _("Not found, or not the member's own."),
    409: _("Conflicts with the state of the card."),
    429: _("Too many codes asked for; the Retry-After header says when to ask again."),
}


def problems(*statuses: int) -> dict:
    """Responses for ``extend_schema``: each status as problem details."""
    return {
        (status, PROBLEM_TYPE): OpenApiResponse(ProblemSerializer, description=str(_PROBLEMS[status]))
        for status in statuses
    }


# --- signing in -----------------------------------------------------------------------
class LoginField(serializers.CharField):
    """A phone number in any common format or an email; validates to an ``Address``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 254)
        kwargs.setdefault("help_text", _("Phone number (any common format) or email."))
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        text = super().run_validation(data)
        try:
            return address_parse(text)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class CodeRequestIn(serializers.Serializer):
    login = LoginField()
    purpose = serializers.ChoiceField(
        choices=[(CodePurpose.SIGN_IN, "sign_in"), (CodePurpose.REGISTER, "register")],
        default=CodePurpose.SIGN_IN,
    )

    class Meta:
        ref_name = "MemberCodeRequestIn"


class ContactCodeIn(serializers.Serializer):
    login = LoginField(help_text=_("The new phone number or email."))

    class Meta:
        ref_name = "MemberContactCodeIn"


class CodeSentOut(serializers.Serializer):
    # Strings, not enums, where the back-office API has an enum of the same name: the
    # schema's enum components are named by field name across all the APIs.
    channel = serializers.CharField(help_text=_("Where the code went: sms or email."))
    retry_after = serializers.IntegerField(help_text=_("Seconds before another code may be asked for."))
    expires_in = serializers.IntegerField(help_text=_("Seconds the code stays valid."))

    class Meta:
        ref_name = "MemberCodeSent"


class TokenIn(serializers.Serializer):
    login = LoginField()
    code = serializers.CharField(max_length=16)
    device_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "MemberTokenIn"


class ConsentsIn(UnknownKeysRefused, serializers.Serializer):
    sms = serializers.BooleanField(required=False)
    email = serializers.BooleanField(required=False)
    push = serializers.BooleanField(required=False)
    viber = serializers.BooleanField(required=False)
    social = serializers.BooleanField(required=False)

    class Meta:
        ref_name = "MemberConsentsIn"


class RegisterIn(serializers.Serializer):
    login = LoginField()
    code = serializers.CharField(max_length=16)
    first_name = serializers.CharField(max_length=100)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    middle_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    gender = serializers.ChoiceField(choices=Gender.choices, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    consents = ConsentsIn(required=False, help_text=_("Consent to be contacted on each channel."))
    card_number = serializers.CharField(
        max_length=32,
        required=False,
        allow_blank=True,
        help_text=_("A card the member holds, not yet bound."),
    )
    device_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "MemberRegisterIn"


class TokenOut(serializers.Serializer):
    token = serializers.CharField(help_text=_("Shown once: send it as `Authorization: Bearer <token>`."))
    expires_at = serializers.DateTimeField()
    member_id = serializers.IntegerField()

    class Meta:
        ref_name = "MemberAppToken"


# --- profile ---------------------------------------------------------------------------
class StatusRefOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()

    class Meta:
        ref_name = "MemberStatusRef"


class StatusOut(serializers.Serializer):
    current = StatusRefOut(allow_null=True)
    next = StatusRefOut(allow_null=True)
    qualifying = _money(help_text=_("Purchases over the last year."))
    needed = _money(allow_null=True, help_text=_("Purchases still needed for the next status."))
    percent = serializers.IntegerField(help_text=_("Progress to the next status, 0–100."))

    class Meta:
        ref_name = "MemberStatus"


class CardOut(serializers.Serializer):
    number = serializers.CharField()
    kind = serializers.ChoiceField(choices=CardKind.choices)
    state = serializers.CharField(help_text=_("issued, activated, blocked or replaced."))
    issued_at = serializers.DateTimeField()
    activated_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "MemberCard"


class MeOut(serializers.Serializer):
    id = serializers.IntegerField()
    first_name = serializers.CharField()
    middle_name = serializers.CharField()
    last_name = serializers.CharField()
    gender = serializers.ChoiceField(choices=Gender.choices)
    birth_date = serializers.DateField(allow_null=True)
    phone = serializers.CharField(help_text=_("E.164, or empty."))
    email = serializers.CharField()
    city = serializers.CharField()
    language = serializers.CharField()
    time_zone = serializers.CharField()
    custom_fields = serializers.DictField()
    referral_code = serializers.CharField()
    registered_at = serializers.DateTimeField()
    state = serializers.CharField()
    status = StatusOut()
    card = CardOut(allow_null=True, help_text=_("The card to show: the newest working one."))

    class Meta:
        ref_name = "MemberProfile"


class ProfileIn(serializers.Serializer):
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    middle_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    gender = serializers.ChoiceField(choices=Gender.choices, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    city = serializers.CharField(max_length=128, required=False, allow_blank=True)
    language = serializers.CharField(
        max_length=8, required=False, allow_blank=True, help_text=_("A language code: en or ru, or empty.")
    )
    time_zone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    custom_fields = JsonObjectField(
        required=False,
        help_text=_("Values of active custom fields by code; null or empty clears one. Others are kept."),
    )

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {
                    name: _("Confirm a new one with contacts/code and contacts/confirm.")
                    if name in ("phone", "email")
                    else _("This field cannot be changed here.")
                    for name in unknown
                }
            )
        return attrs

    def validate_language(self, value: str) -> str:
        if value and value not in dict(settings.LANGUAGES):
            raise serializers.ValidationError(
                _("One of: %(codes)s.") % {"codes": ", ".join(dict(settings.LANGUAGES))}
            )
        return value

    class Meta:
        ref_name = "MemberProfileIn"


class ContactConfirmIn(serializers.Serializer):
    login = LoginField(help_text=_("The new phone number or email the code was sent to."))
    code = serializers.CharField(max_length=16)

    class Meta:
        ref_name = "MemberContactConfirmIn"


class CustomFieldOut(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())
    required = serializers.BooleanField()

    class Meta:
        ref_name = "MemberCustomField"


class QuestionnaireOut(serializers.Serializer):
    fields = CustomFieldOut(many=True)
    values = serializers.DictField()

    class Meta:
        ref_name = "MemberQuestionnaire"


class QuestionnaireIn(serializers.Serializer):
    custom_fields = JsonObjectField(help_text=_("Answers by custom field code; all required ones."))

    class Meta:
        ref_name = "MemberQuestionnaireIn"


class QuestionnaireSavedOut(serializers.Serializer):
    values = serializers.DictField()
    event_recorded = serializers.BooleanField(
        help_text=_("Whether this submission completed the questionnaire for the first time.")
    )

    class Meta:
        ref_name = "MemberQuestionnaireSaved"


# --- balance and cards ------------------------------------------------------------------
class BalanceOut(serializers.Serializer):
    currency = serializers.CharField(source="currency_code")
    currency_name = serializers.CharField()
    available = _money()
    pending = _money()
    expiring = _money()
    next_expiry = serializers.DateTimeField(allow_null=True)
    next_activation = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "MemberBalance"


class LotOut(serializers.Serializer):
    currency = serializers.CharField(source="currency_code")
    amount = _money()
    at = serializers.DateTimeField(help_text=_("When the bonuses become available, or expire."))

    class Meta:
        ref_name = "MemberLot"


class BalanceSectionOut(serializers.Serializer):
    balances = BalanceOut(many=True)
    pending = LotOut(many=True, help_text=_("Bonuses not yet available, soonest first."))
    expiring = LotOut(many=True, help_text=_("Bonuses expiring within `expiring_days`, soonest first."))
    expiring_days = serializers.IntegerField()
    status = StatusOut()

    class Meta:
        ref_name = "MemberBalanceSection"


class CardBindIn(serializers.Serializer):
    number = serializers.CharField(max_length=32, help_text=_("The number printed on the card."))

    class Meta:
        ref_name = "MemberCardBindIn"


# --- history ----------------------------------------------------------------------------
class ReceiptLineOut(serializers.Serializer):
    position = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3)
    price = _money()
    amount = _money()
    discount = _money()

    class Meta:
        ref_name = "MemberReceiptLine"


class ReceiptOut(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField(help_text=_("The receipt's number at the store."))
    kind = serializers.CharField()
    state = serializers.CharField()
    point_of_sale = serializers.CharField(help_text=_("The store's name."))
    purchased_at = serializers.DateTimeField()
    amount = _money()
    discount = _money()
    total = _money()
    bonus_paid = _money()
    bonuses_earned = _money()
    bonuses_spent = _money()
    lines = ReceiptLineOut(many=True)

    class Meta:
        ref_name = "MemberReceipt"


class ReceiptPageOut(serializers.Serializer):
    results = ReceiptOut(many=True)
    next_before = serializers.IntegerField(
        allow_null=True, help_text=_("Pass as `before` for the next page; null on the last page.")
    )

    class Meta:
        ref_name = "MemberReceiptPage"


class MovementOut(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.CharField()
    currency = serializers.CharField()
    available_delta = _money()
    pending_delta = _money()
    reason = serializers.CharField(help_text=_("Why the bonuses moved."))
    receipt_id = serializers.IntegerField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "MemberMovement"


class MovementPageOut(serializers.Serializer):
    results = MovementOut(many=True)
    next_offset = serializers.IntegerField(allow_null=True)

    class Meta:
        ref_name = "MemberMovementPage"


# --- offers -----------------------------------------------------------------------------
class ContentOut(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    text = serializers.CharField()
    image = serializers.SerializerMethodField()
    link = serializers.CharField()
    link_label = serializers.CharField()
    personal = serializers.SerializerMethodField(help_text=_("Shown to this member's audience only."))
    shown_until = serializers.DateTimeField(allow_null=True)

    def get_image(self, obj) -> str | None:
        if not obj.image:
            return None
        url = reverse("portal:content_image", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def get_personal(self, obj) -> bool:
        return obj.audience_id is not None

    class Meta:
        ref_name = "MemberContent"


class ProductOut(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()

    class Meta:
        ref_name = "MemberProduct"


class PersonalListOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    max_picks = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    products = ProductOut(many=True)
    picked = serializers.ListField(child=serializers.IntegerField(), help_text=_("Product ids picked."))

    class Meta:
        ref_name = "MemberPersonalList"


class PicksIn(serializers.Serializer):
    products = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), allow_empty=True, max_length=100
    )

    class Meta:
        ref_name = "MemberPicksIn"


# --- subscriptions ----------------------------------------------------------------------
def _channel_fields(**kwargs) -> dict:
    return {channel: serializers.BooleanField(**kwargs) for channel in ContactChannel.values}


def _meta(ref_name: str) -> type:
    return type("Meta", (), {"ref_name": ref_name})


ChannelsOut = type(
    "ChannelsOut", (serializers.Serializer,), {**_channel_fields(), "Meta": _meta("MemberChannels")}
)
ChannelsIn = type(
    "ChannelsIn",
    (UnknownKeysRefused, serializers.Serializer),
    {**_channel_fields(required=False), "Meta": _meta("MemberChannelsIn")},
)


class CategoryOut(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    subscribed = serializers.BooleanField()

    class Meta:
        ref_name = "MemberCategory"


class SubscriptionsOut(serializers.Serializer):
    channels = ChannelsOut()
    categories = CategoryOut(many=True)

    class Meta:
        ref_name = "MemberSubscriptions"


class SubscriptionsIn(serializers.Serializer):
    channels = ChannelsIn(required=False)
    categories = serializers.DictField(
        child=serializers.BooleanField(), required=False, help_text=_("Mailing category id → subscribed.")
    )
    reason_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text=_("Why the member unsubscribes (GET subscriptions/reasons)."),
    )
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    def validate_categories(self, value: dict) -> dict[int, bool]:
        try:
            ids = {int(key): subscribed for key, subscribed in value.items()}
        except ValueError:
            raise serializers.ValidationError(_("Keys are mailing category ids.")) from None
        if any(not 1 <= pk <= MAX_ID for pk in ids):
            raise serializers.ValidationError(_("Keys are mailing category ids."))
        return ids

    class Meta:
        ref_name = "MemberSubscriptionsIn"


class ReasonOut(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField(source="__str__")  # a seeded reason in the member's language

    class Meta:
        ref_name = "MemberReason"


# --- feedback ---------------------------------------------------------------------------
class TopicOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="__str__")  # a seeded topic in the member's language

    class Meta:
        ref_name = "MemberTopic"


class AttachmentOut(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField(help_text=_("Download with the member's token."))

    class Meta:
        ref_name = "MemberAttachment"


class FeedbackMessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    author = serializers.ChoiceField(choices=["member", "operator"])
    text = serializers.CharField()
    created_at = serializers.DateTimeField()
    attachment = serializers.SerializerMethodField()

    @staticmethod
    def attachment_data(message, request=None) -> dict | None:
        if not message.attachment:
            return None
        url = reverse(
            "member-api:feedback-attachment",
            kwargs={"feedback_id": message.feedback_id, "message_id": message.pk},
        )
        return {
            "name": message.attachment_name or "file",
            "url": request.build_absolute_uri(url) if request else url,
        }

    @extend_schema_field(AttachmentOut(allow_null=True))
    def get_attachment(self, obj) -> dict | None:
        return self.attachment_data(obj, self.context.get("request"))

    class Meta:
        ref_name = "MemberFeedbackMessage"


class FeedbackOut(serializers.Serializer):
    id = serializers.IntegerField()
    topic = TopicOut(allow_null=True)
    subject = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "MemberFeedback"


class FeedbackThreadOut(FeedbackOut):
    messages = FeedbackMessageOut(many=True, source="messages.all")

    class Meta:
        ref_name = "MemberFeedbackThread"


class FeedbackIn(serializers.Serializer):
    topic = serializers.IntegerField(required=False, allow_null=True, help_text=_("Id from feedback/topics."))
    subject = serializers.CharField(max_length=200)
    text = serializers.CharField(max_length=5000)
    attachment = serializers.FileField(required=False, allow_null=True)

    class Meta:
        ref_name = "MemberFeedbackIn"


class FeedbackMessageIn(serializers.Serializer):
    text = serializers.CharField(max_length=5000)
    attachment = serializers.FileField(required=False, allow_null=True)

    class Meta:
        ref_name = "MemberFeedbackMessageIn"


# --- devices and events -----------------------------------------------------------------
class DeviceTokenIn(serializers.Serializer):
    token = serializers.CharField(max_length=512)

    class Meta:
        ref_name = "MemberDeviceTokenIn"


class DeviceIn(serializers.Serializer):
    platform = serializers.ChoiceField(choices=DevicePlatform.choices)
    token = serializers.CharField(max_length=512)
    app = serializers.CharField(
        max_length=128,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Package name or bundle id."),
    )

    class Meta:
        ref_name = "MemberDeviceIn"


class DeviceOut(serializers.Serializer):
    platform = serializers.CharField()
    app = serializers.CharField()
    active = serializers.BooleanField()
    registered_at = serializers.DateTimeField()

    class Meta:
        ref_name = "MemberDevice"


class EventIn(serializers.Serializer):
    type = serializers.ChoiceField(choices=APP_EVENTS)
    payload = JsonObjectField(required=False, default=dict)

    class Meta:
        ref_name = "MemberEventIn"


class EventOut(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField(source="event_type")
    occurred_at = serializers.DateTimeField()

    class Meta:
        ref_name = "MemberEvent"
