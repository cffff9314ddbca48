"""Regular notifications: the birthday greeting, the bonus burnout notice and the bonus
activation notice. Each is set up once and run by Celery beat set-wise over all members
(``communications.services.regular``)."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class RegularKind(models.TextChoices):
    BIRTHDAY = "birthday", _("birthday greeting")
    BURNOUT = "burnout", _("bonus burnout notice")
    ACTIVATION = "activation", _("bonus activation notice")


def default_channels() -> list[str]:
    return ["push", "sms", "email"]


class RegularTask(models.Model):
    kind = models.CharField(_("notification"), max_length=16, choices=RegularKind.choices, unique=True)
    enabled = models.BooleanField(_("enabled"), default=False)
    days_before = models.PositiveSmallIntegerField(
        _("days before"),
        default=0,
        validators=[MaxValueValidator(365)],
        help_text=_("Birthday: 0 greets on the day. Burnout and activation: how far ahead to look."),
    )
    min_amount = models.DecimalField(
        _("at least, bonuses"),
        max_digits=12,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(0)],
        help_text=_("Burnout and activation: notify only when at least this many bonuses are concerned."),
    )
    currency = models.ForeignKey(
        "loyalty.Currency",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("bonus currency"),
        help_text=_("Burnout and activation: empty means every currency."),
    )
    send_time = models.TimeField(
        _("send at (member's local time)"), default="10:00", help_text=_("In each member's time zone.")
    )
    channels = models.JSONField(
        _("channels in order of preference"),
        default=default_channels,
        help_text=_("Each member gets the first channel they can be reached on that has a template."),
    )
    templates = models.ManyToManyField(
        "communications.MessageTemplate", blank=True, related_name="+", verbose_name=_("templates")
    )
    category = models.ForeignKey(
        "communications.MailingCategory",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("mailing category"),
    )
    # Birthday only: bonuses to accrue with the greeting.
    bonus_amount = models.DecimalField(
        _("birthday bonuses"), max_digits=12, decimal_places=2, default=0, validators=[MinValueValidator(0)]
    )
    bonus_currency = models.ForeignKey(
        "loyalty.Currency",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("birthday bonus currency"),
    )
    bonus_lifetime_days = models.PositiveIntegerField(
        _("birthday bonus lifetime, days"), null=True, blank=True
    )
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True, editable=False)
    last_run = models.JSONField(_("last run's figures"), default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["kind"]
        verbose_name = _("regular notification")
        verbose_name_plural = _("regular notifications")

    def __str__(self) -> str:
        return self.get_kind_display()
