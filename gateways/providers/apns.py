"""Apple Push Notification service (APNs), HTTP/2 provider API with token authentication.

Protocol (developer.apple.com/documentation/usernotifications: "Sending notification
requests to APNs", "Establishing a token-based connection to APNs", "Handling
notification responses from APNs", "Generating a remote notification"): HTTP/2 only, one
``POST /3/device/{device token}`` per notification on ``api.push.apple.com`` (production)
or ``api.sandbox.push.apple.com`` (development builds). ``authorization: bearer <JWT>``
where the JWT is ES256 with header ``kid`` = the key id and claims ``iss`` = the team id
and ``iat``, signed with the ``.p8`` P-256 key; Apple wants one JWT reused for 20 to 60
minutes (older: 403 ExpiredProviderToken; renewed too often: 429
TooManyProviderTokenUpdates), so it is renewed every 40 minutes and once on
ExpiredProviderToken. Headers: ``apns-topic`` (bundle id), ``apns-push-type: alert``,
``apns-id`` (a canonical UUID: our message ref, echoed back), ``apns-expiration`` (epoch
seconds, from the validity), ``apns-priority: 10``. Body ``{"aps": {"alert": {"title",
"body"}, "mutable-content": 1}, ...custom keys}``; the image URL and link travel as
custom keys for the app's notification service extension.

Answers: 200 with ``apns-id``; otherwise ``{"reason": "..."}``. 410 Unregistered /
ExpiredToken and 400 BadDeviceToken retire the token; 429, 500 and 503 are retried;
credential and topic errors (403, BadTopic, ...) describe the gateway's configuration and
are temporary so messages wait until it is fixed; any other reason rejects the message.
APNs does not deduplicate by ``apns-id``.

APNs tells the sender nothing after acceptance (no delivery receipt), so an accepted
notification stays ``sent``: there are no callbacks and no polling.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from gateways.providers._http import failed_batch, http_client, send_each, status_failure, transport_failure
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
from gateways.providers.fcm import payload_size_error, push_data, push_errors

PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
TOKEN_REUSE = 40 * 60  # seconds one provider JWT is used before a new one is signed
PAYLOAD_LIMIT = 4096

RETIRE = {"BadDeviceToken", "Unregistered", "ExpiredToken"}
CONFIG_REASONS = {
    "BadCertificate",
    "BadCertificateEnvironment",
    "BadEnvironmentKeyIdInToken",
    "BadPath",
    "BadTopic",
    "ExpiredProviderToken",
    "Forbidden",
    "InvalidProviderToken",
    "MissingProviderToken",
    "MissingTopic",
    "TooManyProviderTokenUpdates",
    "TopicDisallowed",
    "UnrelatedKeyIdInToken",
}


def apns_payload(content: dict[str, Any]) -> dict[str, Any]:
    """The APNs JSON of a push (also what Azure Notification Hubs forwards as ``apple``)."""
    aps: dict[str, Any] = {"alert": {k: str(content[k]) for k in ("title", "body") if content.get(k)}}
    custom = {k: v for k, v in push_data(content).items() if k != "aps"}
    if content.get("image"):
        aps["mutable-content"] = 1  # lets the app's service extension attach the image
        custom["image"] = str(content["image"])
    return {"aps": aps, **custom}


def ec_key_load(text: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key((text or "").strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(gettext("The key cannot be read: paste the whole .p8 file.")) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(gettext("The key is not an APNs (P-256) key."))
    return key


class ApnsForm(ProviderConfigForm):
    base_url = forms.URLField(
        label=_("APNs address"),
        initial=PRODUCTION_URL,
        assume_scheme="https",
        help_text=_("https://api.sandbox.push.apple.com for apps built for development."),
    )
    team_id = forms.RegexField(label=_("team id"), regex=r"^[A-Z0-9]{10}$", max_length=10)
    key_id = forms.RegexField(label=_("key id"), regex=r"^[A-Z0-9]{10}$", max_length=10)
    private_key = forms.CharField(
        label=_("authentication key (.p8)"),
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("The contents of the .p8 file downloaded with the key."),
    )
    bundle_id = forms.CharField(label=_("bundle id"), max_length=255)
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.5, initial=10, required=False)

    def clean_private_key(self):
        value = self.cleaned_data["private_key"]
        try:
            ec_key_load(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value


def canonical_uuid(value: str) -> str | None:
    try:
        canonical = str(uuid.UUID(value))
    except (ValueError, TypeError):
        return None
    return canonical if canonical == value.lower() else None


@providers.register
class Apns(Provider):
    """APNs over one HTTP/2 connection, one stream per notification."""

    key = "apns"
    label = _("Apple Push Notification service")
    channel = PUSH
    capabilities = frozenset({"text", "image", "link"})
    config_form = ApnsForm
    sensitive = ("private_key",)
    max_batch = 100
    deduplicates = False  # apns-id is only echoed, not used to drop repeats
    default_rate_per_second = 500.0

    def __init__(self, settings):
        super().__init__(settings)
        # HTTP/2 only: ALPN picks h2 on https; on a plain http:// address (a local peer)
        # httpx speaks HTTP/2 with prior knowledge because HTTP/1.1 is switched off.
        self.client = http_client(
            base_url=settings.get("base_url", PRODUCTION_URL),
            timeout=settings.get("timeout"),
            http2=True,
            http1=False,
        )
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._jwt = ""
        self._jwt_issued = 0.0

    def close(self):
        self.client.close()

    def _provider_token(self, *, renew: bool = False) -> str:
        now = time.time()
        if renew or not self._jwt or now - self._jwt_issued >= TOKEN_REUSE:
            if self._key is None:
                self._key = ec_key_load(self.settings.get("private_key", ""))
            self._jwt = jwt.encode(
                {"iss": self.settings.get("team_id", ""), "iat": int(now)},
                self._key,
                algorithm="ES256",
                headers={"kid": self.settings.get("key_id", ""), "typ": None},
            )
            self._jwt_issued = now
        return self._jwt

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        if not batch:
            return []
        try:
            self._provider_token()
        except ValueError as exc:
            return failed_batch(batch, Outcome.TEMPORARY, str(exc))
        return send_each(batch, self._send_one)

    def _headers(self, message: OutgoingMessage, token: str) -> dict[str, str]:
        headers = {
            "authorization": f"bearer {token}",
            "apns-topic": self.settings.get("bundle_id", ""),
            "apns-push-type": "alert",
            "apns-priority": "10",
        }
        apns_id = canonical_uuid(message.ref)
        if apns_id:
            headers["apns-id"] = apns_id
        if message.validity_seconds:
            headers["apns-expiration"] = str(int(time.time()) + int(message.validity_seconds))
        return headers

    def _send_one(self, message: OutgoingMessage) -> tuple[SendResult, bool]:
        payload = apns_payload(message.content)
        path = f"/3/device/{quote(message.to.strip(), safe='')}"
        for attempt in (1, 2):
            headers = self._headers(message, self._provider_token(renew=attempt == 2))
            try:
                response = self.client.post(path, json=payload, headers=headers)
            except httpx.HTTPError as exc:
                outcome, reason = transport_failure(exc)
                return SendResult(message.id, outcome, reason=reason), True
            if response.status_code == 403 and _reason(response) == "ExpiredProviderToken" and attempt == 1:
                continue  # sign a new JWT and send again, once
            break
        return self._result(message, response)

    def _result(self, message: OutgoingMessage, response: httpx.Response) -> tuple[SendResult, bool]:
        status = response.status_code
        if status == 200:
            provider_id = response.headers.get("apns-id") or canonical_uuid(message.ref) or ""
            return (
                SendResult(message.id, Outcome.ACCEPTED, Lifecycle.SENT, provider_message_id=provider_id),
                False,
            )
        code = _reason(response)
        reason = f"{status} {code}".strip() if code else f"HTTP {status}: {response.text[:200]}"
        if status == 410 or code in RETIRE:
            return SendResult(message.id, Outcome.PERMANENT, reason=reason, retire_address=True), False
        if code in CONFIG_REASONS or status == 403:
            why = gettext("%(reason)s: check the key, key id, team id, bundle id and APNs address") % {
                "reason": reason
            }
            failure = status_failure(response)
            return SendResult(
                message.id, Outcome.TEMPORARY, reason=why, retry_after=failure and failure[2]
            ), True
        failure = status_failure(response)
        if failure:
            outcome, _status_text, retry_after = failure
            # 500 / 503 concern the service: the rest of the batch waits; 429 is per device.
            return SendResult(message.id, outcome, reason=reason, retry_after=retry_after), status >= 500
        if code == "IdleTimeout":
            return SendResult(message.id, Outcome.TEMPORARY, reason=reason), False
        if code == "DeviceTokenNotForTopic":
            return SendResult(message.id, Outcome.PERMANENT, reason=reason), False
        return SendResult(message.id, Outcome.REJECTED, reason=reason), False

    def content_errors(self, content):
        errors = push_errors(content)
        if not errors:
            too_big = payload_size_error(apns_payload(content), PAYLOAD_LIMIT)
            if too_big:
                errors.append(too_big)
        return errors


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("reason") or "") if isinstance(body, dict) else ""
