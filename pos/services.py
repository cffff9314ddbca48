"""API keys: create (the secret is returned once), revoke; purge of old idempotency
records."""

import datetime as dt
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty import refcache
from loyalty.models import Partner, PointOfSale
from pos.models import ApiKey, IdempotencyRecord, secret_hash


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    token: str  # "<prefix>.<secret>": what the client sends after "Api-Key "


@transaction.atomic
def api_key_create(*, name: str, partner: Partner, point_of_sale: PointOfSale | None = None) -> IssuedKey:
    """Create a key; the returned ``token`` is the only time the secret is seen."""
    if point_of_sale is not None and point_of_sale.partner_id != partner.pk:
        raise ValidationError({"point_of_sale": _("The point of sale belongs to another partner.")})
    secret = secrets.token_urlsafe(32)
    for _attempt in range(5):
        prefix = secrets.token_hex(4)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    name=name,
                    partner=partner,
                    point_of_sale=point_of_sale,
                    prefix=prefix,
                    secret_hash=secret_hash(secret),
                )
            return IssuedKey(api_key=key, token=f"{prefix}.{secret}")
        except IntegrityError:  # pragma: no cover - a prefix collision; draw again
            continue
    raise RuntimeError("could not draw a free key prefix")  # pragma: no cover


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Stop a key from authenticating; its idempotency records stay until purged."""
    if api_key.active:
        api_key.active = False
        api_key.save(update_fields=["active"])
    refcache.forget(("api_key", api_key.prefix))
    return api_key


def idempotency_records_purge(*, older_than: dt.timedelta = dt.timedelta(days=7)) -> int:
    """Forget responses older than ``older_than``; a repeat after that runs again
    (receipts keep their own external ids, so a repeated confirm still has one effect)."""
    deleted, _by_model = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
