"""Devino Telecom, current API (api.devino.online): SMS, Viber and VK / OK notifications.

Protocol (docs.devino.online): HTTPS JSON, header ``Authorization: Key <api key>``.
``POST /sms/messages``, ``POST /viber/messages`` and ``POST /vk/messages`` take
``{"messages": [...]}`` and answer ``{"result": [...]}`` item by item in the same order:
``{"code": "OK", "messageId": ..., "segmentsId": [...]}`` or
``{"code": "REJECTED", "description": ..., "reasons": [{"key": ..., "ref": ...}]}``.
Statuses come back by POST to the ``callbackUrl`` given with each message; the ``options``
map (we put our message ref in it) is echoed there. The API documents no idempotency key,
so a retry after a lost answer may duplicate (reported as possibly duplicate).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
from django import forms
from django.utils.translation import gettext_lazy as _

from gateways.providers._content import social_errors, text_errors, viber_errors
from gateways.providers._http import failed_batch, http_client, status_failure, transport_failure
from gateways.providers._sms import sms_length
from gateways.providers.base import (
    SMS,
    SOCIAL,
    VIBER,
    CallbackRejected,
    Lifecycle,
    Outcome,
    OutgoingMessage,
    Provider,
    ProviderConfigForm,
    SendResult,
    StatusUpdate,
    providers,
)

PRIORITIES = [("LOW", "LOW"), ("MEDIUM", "MEDIUM"), ("HIGH", "HIGH"), ("REALTIME", "REALTIME")]

# Rejection reasons: only a billing error may pass after a top-up.
TEMPORARY_REASONS = {"billing.error", "too.many.messages"}

STATUS_MAP = {
    "ENQUEUED": Lifecycle.QUEUED,
    "QUEUED": Lifecycle.QUEUED,
    "SCHEDULED": Lifecycle.QUEUED,
    "SENT": Lifecycle.SENT,
    "DELIVERED": Lifecycle.DELIVERED,
    "READ": Lifecycle.OPENED,
    "CLICKED": Lifecycle.CLICKED,
    "VISITED": Lifecycle.CLICKED,
    "UNDELIVERED": Lifecycle.UNDELIVERABLE,
    "REJECTED": Lifecycle.REJECTED,
    "EXPIRED": Lifecycle.EXPIRED,
    "VP_EXPIRED": Lifecycle.EXPIRED,
    "DELETED": Lifecycle.FAILED,
    "CANCELLED": Lifecycle.FAILED,
    "FAILED": Lifecycle.FAILED_TEMPORARY,
}
PERMANENT_ERRORS = {"USER_BLOCKED", "NOT_VIBER_USER", "BAD_DATA", "BAD_PARAMETERS"}


class DevinoForm(ProviderConfigForm):
    base_url = forms.URLField(
        label=_("API address"), initial="https://api.devino.online", assume_scheme="https"
    )
    api_key = forms.CharField(label=_("API key"), widget=forms.PasswordInput(render_value=False))
    priority = forms.ChoiceField(label=_("priority"), choices=PRIORITIES, initial="MEDIUM")
    validity = forms.IntegerField(
        label=_("validity, seconds"), min_value=0, max_value=259200, required=False, initial=0
    )
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.1, initial=10, required=False)


def _iso(ts: str | int | float | None) -> datetime | None:
    if ts in (None, ""):
        return None
    try:
        if isinstance(ts, int | float) or str(ts).isdigit():
            value = float(ts)
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        text = str(ts).replace("Z", "+00:00").replace(" ", "T")
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        return None


class DevinoBase(Provider):
    config_form = DevinoForm
    sensitive = ("api_key",)
    max_batch = 500
    callbacks = True
    default_rate_per_second = 200.0
    path: str

    def __init__(self, settings):
        super().__init__(settings)
        self.client = http_client(
            base_url=settings.get("base_url", "https://api.devino.online"),
            timeout=settings.get("timeout"),
            headers={"Authorization": f"Key {settings.get('api_key', '')}"},
        )

    def close(self):
        self.client.close()

    def message_body(self, message: OutgoingMessage) -> dict:
        raise NotImplementedError

    def _common(self, message: OutgoingMessage) -> dict:
        body = {"priority": self.settings.get("priority", "MEDIUM"), "options": {"ref": message.ref}}
        validity = message.validity_seconds or self.settings.get("validity")
        if validity:
            body["validity"] = int(validity)
        if self.settings.callback_url:
            body["callbackUrl"] = self.settings.callback_url
        return body

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        payload = {"messages": [self.message_body(m) for m in batch]}
        try:
            response = self.client.post(self.path, json=payload)
        except httpx.HTTPError as exc:
            return failed_batch(batch, *transport_failure(exc))
        failure = status_failure(response)
        if failure:
            return failed_batch(batch, *failure)
        if response.status_code in (401, 403):
            return failed_batch(batch, Outcome.TEMPORARY, f"HTTP {response.status_code}: check the API key")
        if response.status_code != 200:
            return failed_batch(
                batch, Outcome.REJECTED, f"HTTP {response.status_code}: {response.text[:200]}"
            )
        items = response.json().get("result") or []
        results = []
        for message, item in zip(batch, items, strict=False):
            if item.get("code") == "OK":
                segments = item.get("segmentsId") or []
                results.append(
                    SendResult(
                        message.id,
                        Outcome.ACCEPTED,
                        Lifecycle.QUEUED,
                        provider_message_id=str(item.get("messageId")),
                        segments=max(1, len(segments)) if self.channel == SMS else 1,
                    )
                )
                continue
            keys = [r.get("key", "") for r in item.get("reasons") or []]
            reason = item.get("description") or ", ".join(
                f"{r.get('key')}:{r.get('ref')}" for r in item.get("reasons") or []
            )
            invalid_to = any(
                r.get("ref") == "to" and r.get("key") == "invalid" for r in item.get("reasons") or []
            )
            outcome = Outcome.TEMPORARY if set(keys) & TEMPORARY_REASONS else Outcome.REJECTED
            results.append(
                SendResult(
                    message.id, outcome, reason=f"{item.get('code')}: {reason}", suppress_address=invalid_to
                )
            )
        answered = {r.message_id for r in results}
        results += [
            SendResult(m.id, Outcome.UNKNOWN, reason="no result item for this message")
            for m in batch
            if m.id not in answered
        ]
        return results

    def parse_callback(self, request) -> list[StatusUpdate]:
        try:
            body = json.loads(request.body or b"null")
        except ValueError as exc:
            raise CallbackRejected("body is not JSON") from exc
        if isinstance(body, dict):
            body = body.get("result") or body.get("messages") or [body]
        if not isinstance(body, list):
            raise CallbackRejected("expected a JSON object or array")
        updates = []
        for item in body:
            if not isinstance(item, dict):
                continue
            provider_id = item.get("messageId") or item.get("id")
            status = str(item.get("status", "")).upper()
            if provider_id is None or not status:
                continue
            error = str(item.get("errorCode") or item.get("error") or "")
            updates.append(
                StatusUpdate(
                    provider_message_id=str(provider_id),
                    status=STATUS_MAP.get(status, Lifecycle.UNKNOWN),
                    at=_iso(item.get("receivedAt") or item.get("statusAt") or item.get("time")),
                    reason=error or (status if status not in STATUS_MAP else ""),
                    url=str(item.get("url") or ""),
                    suppress_address=error.upper() in PERMANENT_ERRORS and self.channel != VIBER,
                    ref=str((item.get("options") or {}).get("ref") or item.get("callbackData") or ""),
                )
            )
        return updates


@providers.register
class DevinoSms(DevinoBase):
    key = "devino_sms"
    label = _("Devino Telecom SMS")
    channel = SMS
    capabilities = frozenset({"text"})
    path = "/sms/messages"

    def message_body(self, message):
        return {
            "from": self.settings.sender,
            "to": message.to.lstrip("+"),
            "text": message.content.get("text", ""),
            **self._common(message),
        }

    def content_errors(self, content):
        return text_errors(content, limit=17085)

    def segments(self, content):
        return max(1, sms_length(content.get("text", "")).segments)


@providers.register
class DevinoViber(DevinoBase):
    key = "devino_viber"
    label = _("Devino Telecom Viber")
    channel = VIBER
    capabilities = frozenset({"text", "image", "button"})
    path = "/viber/messages"

    def message_body(self, message):
        content = message.content
        body = {"from": self.settings.sender, "to": message.to.lstrip("+"), **self._common(message)}
        if content.get("text"):
            body["text"] = content["text"]
        if content.get("image"):
            body["image"] = content["image"]
        if content.get("button_url"):
            body["action"] = content["button_url"]
            body["caption"] = content.get("button_text", "")
        return body

    def content_errors(self, content):
        return viber_errors(content, text_limit=1000, caption_limit=30)


@providers.register
class DevinoSocial(DevinoBase):
    """VK / Odnoklassniki notifications from a template moderated on the VK side."""

    key = "devino_social"
    label = _("Devino Telecom VK / OK")
    channel = SOCIAL
    capabilities = frozenset({"template_id"})
    path = "/vk/messages"
    max_batch = 1000
    default_rate_per_second = 50.0  # VK: 50 notifications a second per group

    def message_body(self, message):
        content = message.content
        body = {
            "to": message.to.lstrip("+"),
            "templateId": int(content["template_id"])
            if str(content.get("template_id", "")).isdigit()
            else content.get("template_id"),
            "templateData": {k: str(v) for k, v in (content.get("data") or {}).items()},
            "routes": ["VK", "OK"],
            "deliveryPolicy": "ANY",
            "callbackData": message.ref,
        }
        if self.settings.callback_url:
            body["callbackUrl"] = self.settings.callback_url
        if message.validity_seconds:
            body["validity"] = max(15, min(86400, int(message.validity_seconds)))
        return body

    def content_errors(self, content):
        return social_errors(content)
