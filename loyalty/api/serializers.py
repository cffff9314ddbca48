from django.conf import settings
from rest_framework import serializers

from loyalty.api.fields import JsonObjectField, id_field
from loyalty.events import PURCHASE, event_types
from loyalty.models import Card, ContactChannel, Gender, LedgerEntry, Member, RegistrationChannel


class MemberOut(serializers.ModelSerializer):
    status = serializers.SlugRelatedField(slug_field="code", read_only=True)
    cards = serializers.SlugRelatedField(slug_field="number", many=True, read_only=True)
    consents = serializers.SerializerMethodField()

    class Meta:
        model = Member
        fields = [
            "id",
            "external_id",
            "last_name",
            "first_name",
            "middle_name",
            "gender",
            "birth_date",
            "phone",
            "phone_status",
            "phone_operator",
            "email",
            "email_status",
            "postal_address",
            "city",
            "time_zone",
            "language",
            "children",
            "pets",
            "custom_fields",
            "registered_at",
            "registration_channel",
            "state",
            "status",
            "referral_code",
            "cards",
            "consents",
        ]

    def get_consents(self, obj: Member) -> dict[str, bool]:
        return {c.channel: c.granted for c in obj.consents.all()}


class MemberIn(serializers.Serializer):
    external_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    middle_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    gender = serializers.ChoiceField(choices=Gender.choices, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    phone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    postal_address = serializers.CharField(required=False, allow_blank=True)
    city = serializers.CharField(max_length=128, required=False, allow_blank=True)
    time_zone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    language = serializers.ChoiceField(choices=[("", ""), *settings.LANGUAGES], required=False)
    children = serializers.ListField(child=serializers.DictField(), required=False)
    pets = serializers.ListField(child=serializers.CharField(max_length=32), required=False)
    custom_fields = serializers.DictField(required=False)
    registration_channel = serializers.ChoiceField(choices=RegistrationChannel.choices, required=False)
    referral_code = serializers.CharField(
        max_length=16, required=False, help_text="Referral code of the member who invited this one."
    )
    consents = serializers.DictField(child=serializers.BooleanField(), required=False)
    card_number = serializers.CharField(
        max_length=32, required=False, help_text="A card the member already holds."
    )

    def validate_consents(self, value):
        unknown = set(value) - set(ContactChannel.values)
        if unknown:
            raise serializers.ValidationError(f"Unknown channels: {', '.join(sorted(unknown))}")
        return value


class ConsentIn(serializers.Serializer):
    channel = serializers.ChoiceField(choices=ContactChannel.choices)
    granted = serializers.BooleanField()
    source = serializers.CharField(max_length=64, default="api")


class BalanceOut(serializers.Serializer):
    currency = serializers.CharField(source="currency_code")
    currency_name = serializers.CharField()
    available = serializers.DecimalField(max_digits=14, decimal_places=2)
    pending = serializers.DecimalField(max_digits=14, decimal_places=2)
    expiring = serializers.DecimalField(max_digits=14, decimal_places=2)
    expiring_days = serializers.IntegerField()
    next_expiry = serializers.DateTimeField(allow_null=True)
    next_activation = serializers.DateTimeField(allow_null=True)
    reserved = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        help_text="Held for purchases a till reserved and has not confirmed or cancelled (not in available).",
    )


class LedgerEntryOut(serializers.ModelSerializer):
    currency = serializers.CharField(source="account.currency.code")
    source = serializers.CharField(source="operation.source_type")
    source_label = serializers.CharField(source="operation.source_label")
    receipt = serializers.CharField(source="operation.receipt.external_id", default=None)
    reason = serializers.CharField(source="operation.reason")
    lot_expires_at = serializers.DateTimeField(source="lot.expires_at")

    class Meta:
        model = LedgerEntry
        fields = [
            "created_at",
            "kind",
            "currency",
            "available_delta",
            "pending_delta",
            "source",
            "source_label",
            "receipt",
            "reason",
            "lot_expires_at",
        ]


class CardOut(serializers.ModelSerializer):
    member = serializers.PrimaryKeyRelatedField(read_only=True)
    replaced_by = serializers.SlugRelatedField(slug_field="number", read_only=True)

    class Meta:
        model = Card
        fields = [
            "number",
            "kind",
            "state",
            "member",
            "issued_at",
            "activated_at",
            "blocked_at",
            "replaced_by",
        ]


class CardIssueIn(serializers.Serializer):
    number = serializers.CharField(max_length=32, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Card._meta.get_field("kind").choices, default="physical")
    member = id_field(required=False)
    point_of_sale = serializers.SlugField(required=False, help_text="Code of the point of sale issuing it.")


class CardBindIn(serializers.Serializer):
    member = id_field()


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class CardReplaceIn(serializers.Serializer):
    new_number = serializers.CharField(max_length=32, required=False, allow_blank=True)
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True)


class EventIn(serializers.Serializer):
    event_type = serializers.ChoiceField(choices=[])
    member = id_field()
    occurred_at = serializers.DateTimeField(required=False)
    point_of_sale = serializers.SlugField(required=False)
    channel = serializers.CharField(max_length=32, required=False, allow_blank=True)
    payload = JsonObjectField(required=False, max_bytes=65536)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Purchase events are recorded by the receipts that make them (POS API).
        self.fields["event_type"].choices = [(t.key, t.label) for t in event_types if t.group != PURCHASE]


class EventOut(serializers.Serializer):
    id = serializers.IntegerField()
    event_type = serializers.CharField()
    member = serializers.IntegerField(source="member_id")
    occurred_at = serializers.DateTimeField()
