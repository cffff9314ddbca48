"""Mass mailings, their campaigns and categories, and members' subscriptions to the
categories (with the reasons they give when they leave)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from gateways.models import CHANNEL_CHOICES


class Campaign(models.Model):
    """A marketing campaign: mailings and chains grouped for reporting."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("marketing campaign")
        verbose_name_plural = _("marketing campaigns")

    def __str__(self) -> str:
        return self.name


class MailingCategory(models.Model):
    """A kind of mailing members can unsubscribe from on its own (news, offers, surveys)."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.CharField(_("description"), max_length=255, blank=True, default="")
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["order", "name"]
        verbose_name = _("mailing category")
        verbose_name_plural = _("mailing categories")

    def __str__(self) -> str:
        return self.name


class UnsubscribeReason(models.Model):
    """An entry of the editable dictionary of reasons offered on the unsubscribe page."""

    text = models.CharField(_("reason"), max_length=255)
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("unsubscribe reason")
        verbose_name_plural = _("unsubscribe reasons")

    def __str__(self) -> str:
        return gettext(self.text)  # a seeded entry in the viewer's language (communications.defaults)


class CategoryOptOut(models.Model):
    """The member does not want mailings of this category (on any channel)."""

    # No index of its own: category_opt_out_unique leads with the member.
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="category_opt_outs",
        db_index=False,
        verbose_name=_("member"),
    )
    category = models.ForeignKey(
        MailingCategory, models.CASCADE, related_name="opt_outs", verbose_name=_("category")
    )
    created_at = models.DateTimeField(_("since"), default=timezone.now)

    class Meta:
        verbose_name = _("category opt-out")
        verbose_name_plural = _("category opt-outs")
        constraints = [models.UniqueConstraint(fields=["member", "category"], name="category_opt_out_unique")]

    def __str__(self) -> str:
        return f"{self.member_id} ✕ {self.category}"


class SubscriptionChange(models.Model):
    """Every subscription change a member makes (a channel or a category, on or off), with
    the reason they chose and where they did it."""

    member = models.ForeignKey(
        "loyalty.Member", models.CASCADE, related_name="subscription_changes", verbose_name=_("member")
    )
    channel = models.CharField(_("channel"), max_length=8, choices=CHANNEL_CHOICES, blank=True, default="")
    category = models.ForeignKey(
        MailingCategory, models.SET_NULL, null=True, blank=True, verbose_name=_("mailing category")
    )
    subscribed = models.BooleanField(_("subscribed"))
    reason = models.ForeignKey(
        UnsubscribeReason, models.SET_NULL, null=True, blank=True, verbose_name=_("reason")
    )
    comment = models.CharField(_("comment"), max_length=500, blank=True, default="")
    source = models.CharField(_("where"), max_length=64)
    message = models.ForeignKey(
        "communications.Message",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("message"),
    )
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("subscription change")
        verbose_name_plural = _("subscription changes")

    def __str__(self) -> str:
        return f"{self.member_id}: {self.channel or self.category} {'+' if self.subscribed else '-'}"


class MailingStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    SCHEDULED = "scheduled", _("scheduled")
    PREPARING = "preparing", _("preparing")
    SENDING = "sending", _("sending")
    # "mailing" context: the Russian words agree with the feminine "рассылка"
    PAUSED = "paused", pgettext_lazy("mailing", "paused")
    DONE = "done", _("done")
    CANCELLED = "cancelled", pgettext_lazy("mailing", "cancelled")


class Schedule(models.TextChoices):
    NOW = "now", _("now")
    AT = "at", _("at a set time")
    LOCAL = "local", _("at a local time in each member's time zone")


class Mailing(models.Model):
    """A non-event send to a target audience or a segment. Launching prepares one message
    row per reachable member set-wise (``communications.services.mailings``); the
    messages are rendered from the template when they are sent."""

    name = models.CharField(_("name"), max_length=200)
    campaign = models.ForeignKey(
        Campaign, models.SET_NULL, null=True, blank=True, related_name="mailings", verbose_name=_("campaign")
    )
    category = models.ForeignKey(
        MailingCategory,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="mailings",
        verbose_name=_("mailing category"),
    )
    channel = models.CharField(_("channel"), max_length=8, choices=CHANNEL_CHOICES)
    cascade = models.ForeignKey(
        "gateways.Cascade",
        models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("cascade"),
        help_text=_("Instead of one channel: try the cascade's steps in order."),
    )
    gateway = models.ForeignKey(
        "gateways.Gateway",
        models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("gateway"),
        help_text=_("Empty: the channel's default gateway."),
    )
    template = models.ForeignKey(
        "communications.MessageTemplate", models.PROTECT, related_name="mailings", verbose_name=_("template")
    )
    audience = models.ForeignKey(
        "segments.TargetAudience",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="mailings",
        verbose_name=_("target audience"),
    )
    segment = models.ForeignKey(
        "segments.Segment",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="mailings",
        verbose_name=_("segment"),
        help_text=_("Its last snapshot (refreshed when the mailing starts if it has none)."),
    )
    control_share = models.DecimalField(
        _("control group, %"),
        max_digits=5,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(50)],
        help_text=_("A random share of the audience held out to measure the mailing's effect."),
    )
    schedule = models.CharField(_("send"), max_length=8, choices=Schedule.choices, default=Schedule.NOW)
    send_at = models.DateTimeField(_("send at"), null=True, blank=True)
    local_date = models.DateField(_("local date"), null=True, blank=True)
    local_time = models.TimeField(_("local time"), null=True, blank=True)
    expires_hours = models.PositiveSmallIntegerField(
        _("give up after, hours"),
        default=48,
        help_text=_("Messages not sent by then (quiet hours, outages) expire."),
    )

    status = models.CharField(
        _("status"), max_length=16, choices=MailingStatus.choices, default=MailingStatus.DRAFT
    )
    error = models.CharField(_("error"), max_length=500, blank=True, default="")
    # Figures of the preparation: the audience, held out by the control group, dropped
    # (no consent, no contact, suppressed, opted out of the category), and queued.
    audience_count = models.PositiveIntegerField(_("audience"), default=0)
    control_count = models.PositiveIntegerField(_("control group"), default=0)
    excluded_count = models.PositiveIntegerField(_("unreachable"), default=0)
    prepared_count = models.PositiveIntegerField(_("messages"), default=0)
    estimate = models.JSONField(_("preliminary cost"), default=dict, blank=True)
    # When its messages expire (set when prepared) and whether recipients still wait for
    # their message to be written (see MailingRecipient).
    expires_at = models.DateTimeField(pgettext_lazy("mailing", "messages expire at"), null=True, blank=True)
    recipients_waiting = models.BooleanField(
        default=False, editable=False, verbose_name=_("recipients waiting")
    )

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    launched_at = models.DateTimeField(_("launched at"), null=True, blank=True)
    prepared_at = models.DateTimeField(_("prepared at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("mailing")
        verbose_name_plural = _("mailings")
        indexes = [models.Index(fields=["status", "send_at"], name="mailing_due")]

    def __str__(self) -> str:
        return self.name

    @property
    def editable(self) -> bool:
        return self.status == MailingStatus.DRAFT


class MailingRecipient(models.Model):
    """A member a launched mailing will write a message to. Preparing a mailing writes
    these narrow rows for its whole audience at once (the members who can be reached,
    outside the control groups, with the moment each is due); the dispatcher turns them
    into messages a chunk at a time as it sends (``communications.services.mailings.
    mailing_release``), deleting each row in the transaction that writes its message, so
    a member gets at most one message per mailing however often preparation or release
    runs. Pausing stops the release; cancelling deletes what is left."""

    pk = models.CompositePrimaryKey("mailing_id", "member_id")
    mailing = models.ForeignKey(
        Mailing,
        models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
        verbose_name=_("mailing"),
    )
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
        verbose_name=_("member"),
    )
    due_at = models.DateTimeField(verbose_name=_("due at"))

    class Meta:
        verbose_name = _("mailing recipient")
        verbose_name_plural = _("mailing recipients")

    def __str__(self) -> str:
        return f"{self.mailing_id}/{self.member_id}"
