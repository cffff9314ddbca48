"""Messages, their status history, and the contact budget's data.

A ``Message`` is one communication to one member over one channel through one gateway.
Its ``status`` only moves forward (``communications.status`` holds the rules); every move
is a ``MessageStatus`` row with its time and reason. ``(origin, origin_id, occurrence,
member, cascade_step)`` is unique, so a member gets at most one message per mailing or
trigger occurrence (and per cascade step).

A mailing writes a million messages at once, so the table is kept cheap to insert into:
no database foreign keys (PostgreSQL checks each with a trigger call per row; Django's
``on_delete`` still applies), no index that only repeats another's leading column, and
time-ordered references (``ref_new``: a new message's reference lands at the end of its
index instead of on a random page of it).
"""

import os
import time
import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from gateways.models import CHANNEL_CHOICES


def ref_new() -> uuid.UUID:
    """A version 7 UUID: 48 bits of Unix time in milliseconds, then 74 random bits, so
    references sort by creation and stay unguessable (they sign unsubscribe links)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


# The same in SQL, for messages written set-wise on PostgreSQL.
REF_NEW_SQL = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
    "52, 1), 53, 1), 'hex')::uuid"
)


class Status(models.TextChoices):
    CREATED = "created", _("created")
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("sending")
    FAILED_TEMPORARY = "failed_temporary", _("failed, will retry")
    SENT = "sent", _("sent")
    DELIVERED = "delivered", _("delivered")
    OPENED = "opened", _("opened")
    CLICKED = "clicked", _("clicked")
    FAILED = "failed", _("failed")
    UNDELIVERABLE = "undeliverable", _("undeliverable")
    REJECTED = "rejected", _("rejected by the provider")
    SUPPRESSED = "suppressed", _("suppressed")
    EXPIRED = "expired", _("expired")
    CANCELLED = "cancelled", _("cancelled")


class Purpose(models.TextChoices):
    MARKETING = "marketing", _("marketing")
    SERVICE = "service", _("service")
    TRANSACTIONAL = "transactional", _("transactional (login codes; exempt from quiet hours)")


class Origin(models.TextChoices):
    MAILING = "mailing", _("mailing")
    OFFER = "offer", _("offer action")
    CHAIN = "chain", _("chain step")
    REGULAR = "regular", _("regular notification")
    TRANSACTIONAL = "transactional", _("transactional")
    TEST = "test", _("test message")


class Message(models.Model):
    ref = models.UUIDField(_("reference"), default=ref_new, unique=True, editable=False)
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        null=True,
        blank=True,
        related_name="messages",
        verbose_name=_("member"),
        db_constraint=False,
        db_index=False,  # message_member_sent leads with the member
    )
    channel = models.CharField(_("channel"), max_length=8, choices=CHANNEL_CHOICES)
    gateway = models.ForeignKey(
        "gateways.Gateway",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="messages",
        verbose_name=_("gateway"),
        db_constraint=False,
        db_index=False,  # message_provider_id leads with the gateway
    )
    address = models.CharField(_("address"), max_length=512, blank=True, default="")
    platform = models.CharField(_("device platform"), max_length=16, blank=True, default="")
    content = models.JSONField(_("content"), default=dict, blank=True)
    render = models.JSONField(
        _("rendered at send time from"), null=True, blank=True, help_text=_("Template and context reference.")
    )
    purpose = models.CharField(
        _("purpose"), max_length=16, choices=Purpose.choices, default=Purpose.MARKETING
    )
    category = models.CharField(_("mailing category"), max_length=64, blank=True, default="")
    origin = models.CharField(_("origin"), max_length=16, choices=Origin.choices)
    origin_id = models.BigIntegerField(_("origin id"), default=0)
    occurrence = models.CharField(_("trigger occurrence"), max_length=64, blank=True, default="")

    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.CREATED)
    status_at = models.DateTimeField(_("status changed at"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=255, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False, verbose_name=_("leased until"))
    lease_token = models.UUIDField(null=True, blank=True, editable=False, verbose_name=_("lease token"))
    possible_duplicate = models.BooleanField(
        _("possibly sent twice"),
        default=False,
        help_text=_("An attempt's outcome was lost on a provider that does not deduplicate."),
    )
    expires_at = models.DateTimeField(pgettext_lazy("message", "expires at"), null=True, blank=True)

    provider_message_id = models.CharField(_("provider message id"), max_length=128, blank=True, default="")
    segments = models.PositiveSmallIntegerField(_("segments"), default=0)
    cost = models.DecimalField(_("cost"), max_digits=12, decimal_places=4, default=0)

    communication = models.UUIDField(
        _("communication"), null=True, blank=True, help_text=_("Shared by the attempts of one cascade.")
    )
    cascade = models.ForeignKey(
        "gateways.Cascade",
        models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("cascade"),
        db_constraint=False,
        db_index=False,  # message_cascade: only messages that have one
    )
    cascade_step = models.PositiveSmallIntegerField(_("cascade step"), default=0)
    step_deadline = models.DateTimeField(_("fall back after"), null=True, blank=True)
    cascaded = models.BooleanField(_("next step started"), default=False)
    fallback_content = models.JSONField(
        _("content of the later cascade steps"), default=dict, blank=True, help_text=_("By channel.")
    )

    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    clicked_at = models.DateTimeField(_("clicked at"), null=True, blank=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)
    complained_at = models.DateTimeField(_("complained at"), null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["origin", "origin_id", "occurrence", "member", "cascade_step"],
                name="message_once_per_member_and_occurrence",
            )
        ]
        indexes = [
            models.Index(
                fields=["gateway", "next_attempt_at"],
                name="message_due",
                condition=Q(status__in=["queued", "failed_temporary"]),
            ),
            models.Index(fields=["lease_until"], name="message_leased", condition=Q(status="sending")),
            models.Index(fields=["gateway", "provider_message_id"], name="message_provider_id"),
            models.Index(fields=["member", "channel", "sent_at"], name="message_member_sent"),
            models.Index(fields=["cascade"], name="message_cascade", condition=Q(cascade__isnull=False)),
            models.Index(
                fields=["step_deadline"],
                name="message_fallback_due",
                condition=Q(cascaded=False, step_deadline__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_channel_display()} → {self.address or '—'}"

    @property
    def marketing(self) -> bool:
        return self.purpose == Purpose.MARKETING


class MessagePart(models.Model):
    """Further provider ids of one message (each SMS segment has its own on some
    providers); a message is delivered when every part is."""

    message = models.ForeignKey(Message, models.CASCADE, related_name="parts", verbose_name=_("message"))
    gateway_id = models.BigIntegerField(verbose_name=_("gateway"))
    provider_id = models.CharField(max_length=128, verbose_name=_("provider id"))
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.SENT, verbose_name=_("status")
    )

    class Meta:
        indexes = [models.Index(fields=["gateway_id", "provider_id"], name="message_part_provider_id")]

    def __str__(self) -> str:
        return self.provider_id


class MessageStatus(models.Model):
    message = models.ForeignKey(
        Message, models.CASCADE, related_name="history", db_constraint=False, verbose_name=_("message")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    at = models.DateTimeField(_("at"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=255, blank=True, default="")
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=0)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status history")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_status_display()} {self.at:%Y-%m-%d %H:%M:%S}"


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", _("hard bounce")
    INVALID = "invalid", _("invalid address or number")
    COMPLAINT = "complaint", _("spam complaint")
    UNSUBSCRIBED = "unsubscribed", _("unsubscribed")
    MANUAL = "manual", _("added by hand")


# Reasons that stop marketing only; the rest stop every message to the address.
MARKETING_ONLY_REASONS = {SuppressionReason.COMPLAINT, SuppressionReason.UNSUBSCRIBED}


class Suppression(models.Model):
    channel = models.CharField(_("channel"), max_length=8, choices=CHANNEL_CHOICES)
    address = models.CharField(_("address"), max_length=512)
    reason = models.CharField(_("reason"), max_length=16, choices=SuppressionReason.choices)
    note = models.CharField(_("note"), max_length=255, blank=True, default="")
    created_at = models.DateTimeField(_("added at"), default=timezone.now)

    class Meta:
        verbose_name = _("suppressed address")
        verbose_name_plural = _("suppression list")
        constraints = [models.UniqueConstraint(fields=["channel", "address"], name="suppression_unique")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {self.address}"

    @property
    def marketing_only(self) -> bool:
        return self.reason in MARKETING_ONLY_REASONS


class DevicePlatform(models.TextChoices):
    ANDROID = "android", _("Android (Firebase)")
    IOS = "ios", _("iOS (APNs)")
    HUAWEI = "huawei", _("Huawei (Push Kit)")
    WEB = "web", _("Web push")


class DeviceToken(models.Model):
    # No index of its own: device_token_member leads with the member.
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="device_tokens",
        db_index=False,
        verbose_name=_("member"),
    )
    app = models.CharField(_("app"), max_length=128, help_text=_("Package name or bundle id."))
    platform = models.CharField(_("platform"), max_length=16, choices=DevicePlatform.choices)
    token = models.CharField(_("token"), max_length=512)
    active = models.BooleanField(_("active"), default=True)
    registered_at = models.DateTimeField(_("registered at"), default=timezone.now)
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True)
    retired_reason = models.CharField(_("why retired"), max_length=255, blank=True, default="")

    class Meta:
        verbose_name = _("device token")
        verbose_name_plural = _("device tokens")
        constraints = [models.UniqueConstraint(fields=["platform", "token"], name="device_token_unique")]
        indexes = [models.Index(fields=["member", "active"], name="device_token_member")]

    def __str__(self) -> str:
        return f"{self.get_platform_display()} {self.token[:12]}…"


class ChannelPolicy(models.Model):
    """The contact budget of one channel: quiet hours in the member's time zone and
    frequency caps on marketing messages."""

    channel = models.CharField(_("channel"), max_length=8, choices=CHANNEL_CHOICES, unique=True)
    quiet_start = models.TimeField(_("quiet hours from"), null=True, blank=True)
    quiet_end = models.TimeField(_("quiet hours until"), null=True, blank=True)
    daily_cap = models.PositiveSmallIntegerField(
        _("marketing messages a day"), null=True, blank=True, help_text=_("Empty: no cap.")
    )
    weekly_cap = models.PositiveSmallIntegerField(
        _("marketing messages in 7 days"), null=True, blank=True, help_text=_("Empty: no cap.")
    )

    class Meta:
        verbose_name = _("channel policy")
        verbose_name_plural = _("contact budget")
        ordering = ["channel"]

    def __str__(self) -> str:
        return self.get_channel_display()
