from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class CardState(models.TextChoices):
    ISSUED = "issued", pgettext_lazy("card state", "Issued")
    ACTIVATED = "activated", pgettext_lazy("card state", "Activated")
    BLOCKED = "blocked", pgettext_lazy("card state", "Blocked")
    REPLACED = "replaced", pgettext_lazy("card state", "Replaced")


class CardKind(models.TextChoices):
    PHYSICAL = "physical", _("Physical")
    VIRTUAL = "virtual", _("Virtual")


class Card(models.Model):
    """A loyalty card: belongs to at most one member. Bonuses live on the member's
    accounts, so replacing a card moves nothing but the number the member is known by.
    State changes go through ``loyalty.services.cards``."""

    number = models.CharField(_("number"), max_length=32, unique=True)
    kind = models.CharField(_("kind"), max_length=8, choices=CardKind.choices, default=CardKind.PHYSICAL)
    state = models.CharField(_("state"), max_length=16, choices=CardState.choices, default=CardState.ISSUED)
    member = models.ForeignKey(
        "loyalty.Member",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="cards",
        verbose_name=_("member"),
    )
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    issued_at_point = models.ForeignKey(
        "loyalty.PointOfSale",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("issued at point of sale"),
        db_index=False,
    )
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    blocked_at = models.DateTimeField(_("blocked at"), null=True, blank=True)
    block_reason = models.CharField(_("blocking reason"), max_length=255, blank=True)
    replaced_by = models.OneToOneField(
        "self",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="replaces",
        verbose_name=_("replaced by"),
    )

    class Meta:
        ordering = ["-issued_at"]
        verbose_name = _("card")
        verbose_name_plural = _("cards")

    def __str__(self) -> str:
        return self.number
