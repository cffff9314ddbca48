"""Gateway writes and the per-process adapter cache."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from gateways.crypto import secrets_decrypt, secrets_encrypt
from gateways.models import Gateway
from gateways.providers import GatewaySettings, Provider, providers

_cache: dict[int, tuple[Any, Provider]] = {}
_cache_lock = threading.Lock()


def callback_url(gateway: Gateway) -> str:
    path = reverse("gateways:callback", args=[gateway.pk, gateway.webhook_token])
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def gateway_settings(gateway: Gateway) -> GatewaySettings:
    config = dict(gateway.config)
    config.update(secrets_decrypt(gateway.secrets_encrypted))
    return GatewaySettings(
        gateway_id=gateway.pk,
        config=config,
        sender=gateway.sender,
        callback_url=callback_url(gateway) if gateway.pk else "",
    )


def gateway_provider(gateway: Gateway) -> Provider:
    """The adapter for ``gateway``, reused while the gateway's settings are unchanged, so
    its connections live across batches in this process."""
    version = (gateway.updated_at, gateway.provider)
    with _cache_lock:
        cached = _cache.get(gateway.pk)
        if cached and cached[0] == version:
            return cached[1]
        if cached:
            cached[1].close()
        adapter = providers.get(gateway.provider)(gateway_settings(gateway))
        _cache[gateway.pk] = (version, adapter)
        return adapter


def providers_close() -> None:
    with _cache_lock:
        for _version, adapter in _cache.values():
            adapter.close()
        _cache.clear()


@transaction.atomic
def gateway_save(
    *, gateway: Gateway, config: dict[str, Any], secrets: dict[str, str] | None = None
) -> Gateway:
    """Validate ``config`` + ``secrets`` with the provider's form and store them: plain
    values in ``config``, sensitive ones encrypted. A sensitive value left empty keeps
    the stored one."""
    if gateway.provider not in providers:
        raise ValidationError({"provider": _("Unknown provider %(key)s.") % {"key": gateway.provider}})
    provider = providers.get(gateway.provider)
    stored = secrets_decrypt(gateway.secrets_encrypted) if gateway.secrets_encrypted else {}
    data = {**gateway.config, **config}
    for key in provider.sensitive:
        value = (secrets or {}).get(key) or config.get(key) or stored.get(key) or ""
        data[key] = value
    for name, form_field in provider.config_form.base_fields.items():
        if data.get(name) is None and form_field.initial is not None:
            data[name] = form_field.initial
    form = provider.config_form(data=data)
    if not form.is_valid():
        raise ValidationError({field: errors for field, errors in form.errors.items()})
    cleaned = {k: v for k, v in form.cleaned_data.items() if k not in provider.sensitive}
    gateway.config = _jsonable(cleaned)
    gateway.secrets_encrypted = secrets_encrypt(
        {k: form.cleaned_data[k] for k in provider.sensitive if form.cleaned_data.get(k)}
    )
    gateway.full_clean(exclude=["webhook_token"])
    gateway.save()
    return gateway


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif value is not None and not isinstance(value, str | int | float | bool | list | dict):
            value = str(value)
        out[key] = value
    return out


def gateway_for_channel(channel: str) -> Gateway | None:
    return Gateway.objects.filter(channel=channel, enabled=True).order_by("priority", "pk").first()


def content_errors(*, channel: str, content: dict[str, Any], gateway: Gateway | None = None) -> list[str]:
    """What ``content`` may not contain on ``gateway`` (or on every enabled gateway of the
    channel): the capability check run when a template or mailing is saved."""
    gateways = [gateway] if gateway else list(Gateway.objects.filter(channel=channel, enabled=True))
    errors: list[str] = []
    for gw in gateways:
        adapter = providers.get(gw.provider)(GatewaySettings(gw.pk, dict(gw.config), gw.sender))
        try:
            for error in adapter.content_errors(content):
                text = f"{gw.name}: {error}"
                if text not in errors:
                    errors.append(text)
        finally:
            adapter.close()
    return errors
