import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty.timezones import validate_time_zone

EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)


def validate_birth_date(value: dt.date | None) -> None:
    """A person's birth date: not in the future and not before 1900."""
    if value is None:
        return
    if value > timezone.localdate():
        raise ValidationError(_("A birth date cannot be in the future."), code="future")
    if value < EARLIEST_BIRTH_DATE:
        raise ValidationError(_("A birth date cannot be before 1900."), code="too_early")


class Gender(models.TextChoices):
    UNKNOWN = "", _("Not specified")
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")


class MemberState(models.TextChoices):
    """Lifecycle: a card holder (client) registers, then activates; blocking stops all
    operations until an operator unblocks."""

    CLIENT = "client", _("Client")
    REGISTERED = "registered", _("Registered")
    ACTIVATED = "activated", _("Activated")
    BLOCKED = "blocked", _("Blocked")


class RegistrationChannel(models.TextChoices):
    POINT_OF_SALE = "pos", _("Point of sale")
    PERSONAL_ACCOUNT = "personal_account", _("Personal account")
    MOBILE_APP = "mobile_app", _("Mobile app")
    ONLINE_STORE = "online_store", _("Online store")
    CALL_CENTER = "call_center", _("Call center")
    SMS = "sms", _("SMS")
    WALLET = "wallet", _("Wallet app")
    IMPORT = "import", _("Import")


class ContactChannel(models.TextChoices):
    """Channels a member consents to be contacted on."""

    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")
    PUSH = "push", _("Push")
    VIBER = "viber", _("Viber")
    SOCIAL = "social", _("Social networks")


class ContactStatus(models.TextChoices):
    MISSING = "missing", _("Missing")
    VALID = "valid", _("Valid")
    INVALID = "invalid", _("Invalid")


class Status(models.Model):
    """A tier of the program (e.g. Silver, Gold); higher ``rank`` is better."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    rank = models.PositiveSmallIntegerField(_("rank"), unique=True)
    description = models.TextField(_("description"), blank=True)
    qualifying_total = models.DecimalField(
        _("purchases to qualify"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Purchases over the last year that earn this status; members see their progress to it."),
    )

    class Meta:
        ordering = ["rank"]
        verbose_name = _("status")
        verbose_name_plural = _("statuses")

    def __str__(self) -> str:
        return self.name


class CustomFieldKind(models.TextChoices):
    TEXT = "text", _("Text")
    NUMBER = "number", _("Number")
    DATE = "date", _("Date")
    BOOLEAN = "boolean", _("Yes / no")
    CHOICE = "choice", _("Choice from a list")


class CustomField(models.Model):
    """One field of the questionnaire's managed field set; values live in
    ``Member.custom_fields`` under ``code`` and are validated by
    ``loyalty.services.members.custom_fields_clean``."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    label = models.CharField(_("label"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16, choices=CustomFieldKind.choices)
    choices = models.JSONField(
        _("choices"), default=list, blank=True, help_text=_("Allowed values for a choice field.")
    )
    required = models.BooleanField(_("required in the questionnaire"), default=False)
    active = models.BooleanField(_("active"), default=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["order", "code"]
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")

    def __str__(self) -> str:
        return self.label

    def clean(self) -> None:
        if self.kind == CustomFieldKind.CHOICE and not self.choices:
            raise ValidationError({"choices": _("A choice field needs at least one value.")})
        if not isinstance(self.choices, list) or not all(isinstance(c, str) for c in self.choices):
            raise ValidationError({"choices": _("Choices must be a list of strings.")})


class Member(models.Model):
    """A person in the loyalty program.

    Contact data is normalised on every write by ``loyalty.services.contacts``: ``phone``
    holds E.164 (or is empty), ``phone_raw`` what was entered; operator, region and time
    zone are derived from the number, the time zone from the city where the number does
    not decide it.
    """

    external_id = models.CharField(_("external id"), max_length=64, unique=True, null=True, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    middle_name = models.CharField(_("middle name"), max_length=100, blank=True)
    gender = models.CharField(_("gender"), max_length=8, choices=Gender.choices, blank=True, default="")
    birth_date = models.DateField(_("birth date"), null=True, blank=True, validators=[validate_birth_date])

    phone = models.CharField(_("phone"), max_length=16, blank=True, default="")
    phone_raw = models.CharField(_("phone as entered"), max_length=64, blank=True, default="")
    phone_status = models.CharField(
        _("phone quality"), max_length=8, choices=ContactStatus.choices, default=ContactStatus.MISSING
    )
    phone_operator = models.CharField(_("operator"), max_length=64, blank=True, default="")
    phone_region = models.CharField(_("phone region"), max_length=64, blank=True, default="")
    email = models.CharField(_("email"), max_length=254, blank=True, default="")
    email_raw = models.CharField(_("email as entered"), max_length=254, blank=True, default="")
    email_status = models.CharField(
        _("email quality"), max_length=8, choices=ContactStatus.choices, default=ContactStatus.MISSING
    )
    postal_address = models.TextField(_("postal address"), blank=True, default="")
    city = models.CharField(_("city"), max_length=128, blank=True, default="")
    time_zone = models.CharField(
        _("time zone"), max_length=64, blank=True, default="", validators=[validate_time_zone]
    )
    time_zone_source = models.CharField(
        _("time zone source"),
        max_length=8,
        blank=True,
        default="",
        choices=[("phone", _("Phone number")), ("city", _("City")), ("manual", _("Set by hand"))],
    )

    preferred_categories = models.ManyToManyField(
        "loyalty.ProductGroup", blank=True, related_name="+", verbose_name=_("preferred categories")
    )
    children = models.JSONField(
        _("children"), default=list, blank=True, help_text=_("List of {name, birth_date, gender}.")
    )
    pets = models.JSONField(_("pets"), default=list, blank=True, help_text=_("List of pet kinds."))
    custom_fields = models.JSONField(_("custom fields"), default=dict, blank=True)

    registered_at = models.DateTimeField(_("registered at"), default=timezone.now, db_index=True)
    registration_channel = models.CharField(
        _("registration channel"),
        max_length=24,
        choices=RegistrationChannel.choices,
        default=RegistrationChannel.POINT_OF_SALE,
    )
    state = models.CharField(
        _("state"), max_length=16, choices=MemberState.choices, default=MemberState.CLIENT
    )
    blocked_reason = models.CharField(_("blocking reason"), max_length=255, blank=True, default="")
    # No index: a handful of statuses over millions of members; segments scan anyway.
    status = models.ForeignKey(
        Status,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="members",
        verbose_name=_("status"),
        db_index=False,
    )
    referral_code = models.CharField(_("referral code"), max_length=16, unique=True)
    referrer = models.ForeignKey(
        "self",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="referrals",
        verbose_name=_("referrer"),
    )
    language = models.CharField(
        _("language"), max_length=8, blank=True, default="", choices=settings.LANGUAGES
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        constraints = [
            models.UniqueConstraint(fields=["phone"], condition=~Q(phone=""), name="member_phone_unique"),
        ]
        indexes = [
            models.Index(fields=["email"], name="member_email_idx"),
            models.Index(fields=["last_name", "first_name"], name="member_name_idx"),
            # A narrow copy of the demographics segments filter on most (gender, age):
            # read from the index alone instead of the wide member rows.
            models.Index(fields=["gender", "birth_date", "id"], name="member_demographics_idx"),
        ]
        permissions = [("adjust_bonuses", _("Can adjust bonus balances by hand"))]

    def __str__(self) -> str:
        return self.full_name or self.phone or self.email or f"#{self.pk}"

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.last_name, self.first_name, self.middle_name) if p)


class StatusChange(models.Model):
    """Append-only history of a member's status (tier)."""

    member = models.ForeignKey(
        Member, models.CASCADE, related_name="status_changes", verbose_name=_("member")
    )
    status_from = models.ForeignKey(
        Status, models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("from")
    )
    status_to = models.ForeignKey(
        Status, models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("to")
    )
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("changed by"),
    )

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")

    def __str__(self) -> str:
        return f"{self.status_from} → {self.status_to}"


class Consent(models.Model):
    """The member's current consent on one channel; ``ConsentChange`` keeps the history."""

    # (member, channel) is unique: that index serves lookups by member.
    member = models.ForeignKey(
        Member, models.CASCADE, related_name="consents", db_index=False, verbose_name=_("member")
    )
    channel = models.CharField(_("channel"), max_length=8, choices=ContactChannel.choices)
    granted = models.BooleanField(_("granted"))
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    source = models.CharField(
        _("how"), max_length=64, help_text=_("Where it was given or withdrawn, e.g. personal account.")
    )

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [models.UniqueConstraint(fields=["member", "channel"], name="consent_member_channel")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {'+' if self.granted else '-'}"


class ConsentChange(models.Model):
    member = models.ForeignKey(
        Member, models.CASCADE, related_name="consent_changes", verbose_name=_("member")
    )
    channel = models.CharField(_("channel"), max_length=8, choices=ContactChannel.choices)
    granted = models.BooleanField(_("granted"))
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    source = models.CharField(_("how"), max_length=64)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("changed by"),
    )

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = _("consent change")
        verbose_name_plural = _("consent changes")

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {'+' if self.granted else '-'}"
