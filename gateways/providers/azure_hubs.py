"""Azure Notification Hubs, REST direct send: push to iOS (APNs) and Android (FCM v1)
devices through a hub that holds the push credentials.

Protocol (learn.microsoft.com/rest/api/notificationhubs: "Common concepts" for the
connection string and the SAS token, "Direct send", "Send an APNS native notification",
"Send an FCM native notification"; the FCM v1 migration guide for the ``fcmV1`` format):
the connection string ``Endpoint=sb://{namespace}.servicebus.windows.net/;
SharedAccessKeyName={rule};SharedAccessKey={key}`` gives the hub at
``https://{namespace}.servicebus.windows.net/{hub}``. Every request carries
``Authorization: SharedAccessSignature sr={enc(uri)}&sig={enc(base64(HMAC-SHA256(key,
enc(uri) + "\\n" + expiry)))}&se={expiry}&skn={rule}``, ``uri`` being the lower-cased hub
address, ``enc`` percent-encoding (then lower-cased) and the HMAC key the UTF-8 bytes of
the key string. One notification is ``POST {hub}/messages/?direct&api-version=2015-04``
with ``ServiceBusNotification-DeviceHandle`` (the device token),
``ServiceBusNotification-Format`` ``apple`` (the native APNs JSON) or ``fcmV1``
(``{"message": {"notification", "data", "android"}}``, the hub adds the token) and
``x-ms-version: 2015-04``. 201 (200 on older versions) accepts it, with ``TrackingId`` and,
on the Standard tier, ``Location`` naming the notification; 400 / 413 refuse the content,
401 the key, 403 a quota (or the size), 404 the hub; 5xx are temporary. 401 and 404
describe the gateway's configuration and are temporary so messages wait until it is fixed.

The hub answers before it talks to APNs / FCM and handles their feedback (expired device
handles) itself: the sender learns neither delivery nor dead tokens, so an accepted message
stays ``sent``, no token is ever retired from here, and there are no callbacks and no
polling. The direct-send API documents no idempotency key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import httpx
from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from gateways.providers._http import (
    failed_batch,
    http_client,
    retry_after_seconds,
    send_each,
    transport_failure,
)
from gateways.providers.apns import PAYLOAD_LIMIT as APNS_LIMIT
from gateways.providers.apns import apns_payload
from gateways.providers.base import (
    PUSH,
    Lifecycle,
    Outcome,
    OutgoingMessage,
    Provider,
    ProviderConfigForm,
    SendResult,
    providers,
)
from gateways.providers.fcm import PAYLOAD_LIMIT as FCM_LIMIT
from gateways.providers.fcm import fcm_message, payload_size_error, push_errors

API_VERSION = "2015-04"
SAS_LIFETIME = 3600
QUOTA_BACKOFF = 60.0
# Device platform (as stored with the device token) -> the hub's notification format.
FORMATS = {"ios": "apple", "android": "fcmV1"}


@dataclass(frozen=True)
class Connection:
    host: str  # {namespace}.servicebus.windows.net
    key_name: str
    key: str


def connection_parse(text: str) -> Connection:
    """Read a hub connection string; ``ValueError`` with a readable message if it is not one."""
    parts = {}
    for part in (text or "").strip().split(";"):
        name, sep, value = part.partition("=")
        if sep:
            parts[name.strip().lower()] = value.strip()
    host = urlsplit(parts.get("endpoint", "")).netloc
    if not (host and parts.get("sharedaccesskeyname") and parts.get("sharedaccesskey")):
        raise ValueError(
            gettext(
                "Expected Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=… "
                "(the hub's Access Policies page)."
            )
        )
    return Connection(host=host, key_name=parts["sharedaccesskeyname"], key=parts["sharedaccesskey"])


def sas_token(resource_uri: str, key_name: str, key: str, expiry: int) -> str:
    """A Service Bus shared access signature for ``resource_uri`` valid until ``expiry``."""
    target = quote(resource_uri.lower(), safe="").lower()
    digest = hmac.new(key.encode(), f"{target}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={target}&sig={signature}&se={expiry}&skn={key_name}"


class AzureHubsForm(ProviderConfigForm):
    connection_string = forms.CharField(
        label=_("connection string"),
        widget=forms.PasswordInput(render_value=False),
        help_text=_("A policy with the Send right (for example DefaultFullSharedAccessSignature)."),
    )
    hub_name = forms.CharField(label=_("hub name"), max_length=260)
    base_url = forms.URLField(
        label=_("API address"),
        required=False,
        assume_scheme="https",
        help_text=_("Leave empty for the namespace of the connection string."),
    )
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.5, initial=10, required=False)

    def clean_connection_string(self):
        value = self.cleaned_data["connection_string"]
        try:
            connection_parse(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value


@providers.register
class AzureNotificationHubs(Provider):
    key = "azure_notification_hubs"
    label = _("Azure Notification Hubs")
    channel = PUSH
    capabilities = frozenset({"text", "image", "link"})
    config_form = AzureHubsForm
    sensitive = ("connection_string",)
    max_batch = 100
    default_rate_per_second = 200.0

    def __init__(self, settings):
        super().__init__(settings)
        self.hub = str(settings.get("hub_name", ""))
        try:
            self.connection: Connection | None = connection_parse(settings.get("connection_string", ""))
        except ValueError:
            self.connection = None  # content checks build adapters without secrets
        base = settings.get("base_url") or (f"https://{self.connection.host}" if self.connection else "")
        self.client = http_client(base_url=base or "https://invalid", timeout=settings.get("timeout"))

    def close(self):
        self.client.close()

    def _authorization(self) -> str:
        connection = self.connection
        resource = f"https://{connection.host}/{self.hub}"
        expiry = int(time.time()) + SAS_LIFETIME
        return sas_token(resource, connection.key_name, connection.key, expiry)

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        if self.connection is None:
            return failed_batch(
                batch, Outcome.TEMPORARY, gettext("The connection string is missing or invalid.")
            )
        return send_each(batch, self._send_one)

    def _request(self, message: OutgoingMessage) -> tuple[dict[str, str], dict]:
        fmt = FORMATS[message.platform]
        headers = {
            "Authorization": self._authorization(),
            "Content-Type": "application/json;charset=utf-8",
            "ServiceBusNotification-Format": fmt,
            "ServiceBusNotification-DeviceHandle": message.to,
            "x-ms-version": API_VERSION,
        }
        if fmt == "apple":
            headers["apns-push-type"] = "alert"
            headers["apns-priority"] = "10"
            if message.validity_seconds:
                expiry = datetime.now(UTC) + timedelta(seconds=int(message.validity_seconds))
                headers["ServiceBusNotification-Apns-Expiry"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
            return headers, apns_payload(message.content)
        return headers, {"message": fcm_message(message, with_token=False)}

    def _send_one(self, message: OutgoingMessage) -> tuple[SendResult, bool]:
        if message.platform not in FORMATS:
            reason = gettext("Azure Notification Hubs cannot send to the %(platform)s platform here.") % {
                "platform": message.platform or "?"
            }
            return SendResult(message.id, Outcome.REJECTED, reason=reason), False
        headers, body = self._request(message)
        path = f"/{quote(self.hub)}/messages/?direct&api-version={API_VERSION}"
        try:
            response = self.client.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            outcome, reason = transport_failure(exc)
            return SendResult(message.id, outcome, reason=reason), True
        return self._result(message, response)

    def _result(self, message: OutgoingMessage, response: httpx.Response) -> tuple[SendResult, bool]:
        status = response.status_code
        if status in (200, 201):
            _path, found, rest = urlsplit(response.headers.get("Location", "")).path.partition("/messages/")
            notification_id = rest.strip("/") if found else ""
            provider_id = notification_id or response.headers.get("TrackingId", "")
            return (
                SendResult(message.id, Outcome.ACCEPTED, Lifecycle.SENT, provider_message_id=provider_id),
                False,
            )
        detail = re.search(r"<Detail>(.*?)</Detail>", response.text, re.DOTALL)
        reason = f"HTTP {status}: {(detail.group(1) if detail else response.text)[:200]}".strip(": ")
        retry_after = retry_after_seconds(response)
        if status >= 500:
            return SendResult(message.id, Outcome.TEMPORARY, reason=reason, retry_after=retry_after), True
        if status == 403:
            if "size" in reason.lower() or "large" in reason.lower():
                return SendResult(message.id, Outcome.REJECTED, reason=reason), False
            # Quota exceeded: the whole hub waits.
            return (
                SendResult(
                    message.id, Outcome.TEMPORARY, reason=reason, retry_after=retry_after or QUOTA_BACKOFF
                ),
                True,
            )
        if status == 429:
            return SendResult(message.id, Outcome.TEMPORARY, reason=reason, retry_after=retry_after), True
        if status in (401, 404):
            why = gettext("%(reason)s: check the connection string, its policy and the hub name") % {
                "reason": reason
            }
            return SendResult(message.id, Outcome.TEMPORARY, reason=why), True
        return SendResult(message.id, Outcome.REJECTED, reason=reason), False

    def content_errors(self, content):
        errors = push_errors(content)
        if not errors:
            sample = OutgoingMessage(id=0, ref="", channel=PUSH, to="", content=content, platform="android")
            for payload, limit in (
                (apns_payload(content), APNS_LIMIT),
                ({"message": fcm_message(sample, with_token=False)}, FCM_LIMIT),
            ):
                too_big = payload_size_error(payload, limit)
                if too_big:
                    errors.append(too_big)
                    break
        return errors
