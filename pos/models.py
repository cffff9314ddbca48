"""API keys of points of sale, stores and apps, and the idempotency journal of their
mutating requests."""

import hashlib
import hmac

from django.db import models
from django.utils.translation import gettext_lazy as _


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(models.Model):
    """A partner's credential for the point-of-sale API. The client sends
    ``Authorization: Api-Key <prefix>.<secret>``; only the prefix and the SHA-256 of the
    secret are stored, so the secret is shown once, when the key is created. A key acts
    for its partner's points of sale, or for one of them when ``point_of_sale`` is set."""

    name = models.CharField(_("name"), max_length=100)
    partner = models.ForeignKey(
        "loyalty.Partner", models.PROTECT, related_name="api_keys", verbose_name=_("partner")
    )
    point_of_sale = models.ForeignKey(
        "loyalty.PointOfSale",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="api_keys",
        verbose_name=_("point of sale"),
        help_text=_("Empty: every point of sale of the partner."),
    )
    prefix = models.CharField(_("key prefix"), max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(_("secret hash"), max_length=64, editable=False)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["partner", "name"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, secret_hash(secret))


class IdempotencyState(models.TextChoices):
    IN_PROGRESS = "in_progress", _("In progress")
    DONE = "done", _("Done")


class IdempotencyRecord(models.Model):
    """The first response to a mutating request, kept under the client's
    ``Idempotency-Key`` so a repeat gets it back byte for byte. The fingerprint (method,
    path and SHA-256 of the canonical JSON body) tells a repeat from a different request
    that reuses the key."""

    api_key = models.ForeignKey(
        ApiKey,
        models.CASCADE,
        related_name="idempotency_records",
        verbose_name=_("API key"),
        db_index=False,  # idempotency_key_unique leads with the key
    )
    key = models.CharField(_("idempotency key"), max_length=128)
    method = models.CharField(_("method"), max_length=8)
    path = models.CharField(_("path"), max_length=255)
    body_hash = models.CharField(_("body SHA-256"), max_length=64)
    state = models.CharField(
        _("state"), max_length=16, choices=IdempotencyState.choices, default=IdempotencyState.IN_PROGRESS
    )
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_body = models.BinaryField(_("response body"), null=True, blank=True)
    response_content_type = models.CharField(_("response content type"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"), db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id}:{self.key}"
