"""Gateway settings and cascades.

A gateway is one configured connection to one provider: the provider's key, its
configuration (plain settings in ``config``, credentials encrypted in
``secrets_encrypted``), the sender, the price, the rate limit and the priority among
gateways of the same channel. A cascade is an ordered list of (channel, gateway) steps.
"""

import secrets as _secrets
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from gateways.providers import CHANNELS, providers
from gateways.providers.base import CHANNEL_LABELS

CHANNEL_CHOICES = [(c, CHANNEL_LABELS[c]) for c in CHANNELS]


def _webhook_token() -> str:
    return _secrets.token_urlsafe(24)


class PriceUnit(models.TextChoices):
    MESSAGE = "message", _("per message")
    SEGMENT = "segment", _("per SMS segment")


class Gateway(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    provider = models.CharField(_("provider"), max_length=48)
    channel = models.CharField(_("channel"), max_length=8, choices=CHANNEL_CHOICES, editable=False)
    config = models.JSONField(_("settings"), default=dict, blank=True)
    secrets_encrypted = models.TextField(_("credentials (encrypted)"), blank=True, default="", editable=False)
    sender = models.CharField(
        _("sender"), max_length=128, blank=True, help_text=_("Sender name, number or address.")
    )
    price = models.DecimalField(
        _("price"), max_digits=10, decimal_places=4, default=Decimal("0"), validators=[MinValueValidator(0)]
    )
    price_unit = models.CharField(
        _("price unit"), max_length=8, choices=PriceUnit.choices, default=PriceUnit.MESSAGE
    )
    rate_limit = models.FloatField(
        _("rate limit, messages per second"),
        validators=[MinValueValidator(0.1)],
        default=50,
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), default=100, help_text=_("Lower numbers are chosen first among gateways of a channel.")
    )
    max_attempts = models.PositiveSmallIntegerField(
        _("attempts before giving up"), default=6, validators=[MinValueValidator(1)]
    )
    enabled = models.BooleanField(pgettext_lazy("gateway", "enabled"), default=True)
    webhook_token = models.CharField(
        _("callback secret"), max_length=64, default=_webhook_token, editable=False, unique=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("gateway")
        verbose_name_plural = _("gateways")
        ordering = ["channel", "priority", "name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self.provider in providers:
            self.channel = providers.get(self.provider).channel
        super().save(*args, **kwargs)

    def clean(self):
        if self.provider not in providers:
            raise ValidationError({"provider": _("Unknown provider %(key)s.") % {"key": self.provider}})
        self.channel = providers.get(self.provider).channel

    @property
    def provider_class(self):
        return providers.get(self.provider)

    def provider_label(self):
        return self.provider_class.label if self.provider in providers else self.provider

    provider_label.short_description = _("provider")

    def unit_price(self, segments: int = 1) -> Decimal:
        return self.price * (segments if self.price_unit == PriceUnit.SEGMENT else 1)


class Cascade(models.Model):
    """Channels tried in order for one logical communication (e.g. Viber → SMS).

    The next step runs when the member cannot be reached on a step (no consent, no
    contact, suppressed, failed) or the step is not delivered within its wait."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("cascade")
        verbose_name_plural = _("cascades")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def channels(self) -> list[str]:
        return [step.channel for step in self.steps.all()]


class CascadeStep(models.Model):
    cascade = models.ForeignKey(Cascade, models.CASCADE, related_name="steps", verbose_name=_("cascade"))
    order = models.PositiveSmallIntegerField(_("order"))
    channel = models.CharField(_("channel"), max_length=8, choices=CHANNEL_CHOICES)
    gateway = models.ForeignKey(
        Gateway,
        models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("gateway"),
        help_text=_("Empty: the enabled gateway of the channel with the best priority."),
    )
    wait_minutes = models.PositiveIntegerField(
        _("wait for delivery, minutes"),
        default=0,
        help_text=_(
            "Fall back to the next step when not delivered within this time; 0 waits for a final status."
        ),
    )

    class Meta:
        verbose_name = _("cascade step")
        verbose_name_plural = _("cascade steps")
        ordering = ["cascade", "order"]
        constraints = [models.UniqueConstraint(fields=["cascade", "order"], name="cascade_step_order_unique")]

    def __str__(self) -> str:
        return f"{self.order}. {CHANNEL_LABELS.get(self.channel, self.channel)}"

    def clean(self):
        if self.gateway_id and self.gateway.channel != self.channel:
            raise ValidationError({"gateway": _("This gateway sends another channel.")})
