"""Firebase Cloud Messaging, HTTP v1 API: push notifications to Android, iOS and web apps.

Protocol (firebase.google.com/docs/cloud-messaging/send/v1-api,
firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode,
firebase.google.com/docs/cloud-messaging/error-codes; the service-account flow of
developers.google.com/identity/protocols/oauth2/service-account): the service-account
JSON gives ``client_email``, an RSA ``private_key`` and ``token_uri``; an RS256 JWT
(``iss`` = client_email, ``scope`` = .../auth/firebase.messaging, ``aud`` = token_uri,
``iat``, ``exp`` <= iat + 1 h) is exchanged at ``token_uri`` by the JWT-bearer grant for
an OAuth2 access token, kept until shortly before it expires and fetched again once
when FCM answers 401. Each message is one
``POST /v1/projects/{project_id}/messages:send`` with ``{"message": {"token", "notification",
"data", "android": {"ttl"}}}``; the legacy server-key and multicast endpoints are retired.
The answer is ``{"name": "projects/.../messages/ID"}`` or an error whose
``details[].errorCode`` (FcmError), else ``status``, says what to do: UNREGISTERED,
SENDER_ID_MISMATCH and an INVALID_ARGUMENT about the token mean the token is dead;
QUOTA_EXCEEDED, UNAVAILABLE and INTERNAL are retried (honouring ``Retry-After``);
THIRD_PARTY_AUTH_ERROR is the APNs / web-push credential of the Firebase project.

FCM gives the sender no delivery receipt (delivery data exists only in its analytics
export), so an accepted message stays ``sent``: there are no callbacks and no polling.
The API documents no idempotency key: a retry after a lost answer may deliver twice.

The push helpers here (``push_errors``, ``push_data``, ``fcm_message``) are shared by the
other push adapters that carry the same content.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
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

FCM_URL = "https://fcm.googleapis.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600
# An access token is fetched again this long before the expiry the token server gave.
EXPIRY_MARGIN = 60.0
MAX_TTL = 28 * 86400
PAYLOAD_LIMIT = 4096
QUOTA_BACKOFF = 60.0  # FCM asks for at least a minute after QUOTA_EXCEEDED

RETIRE_CODES = {"UNREGISTERED", "SENDER_ID_MISMATCH"}
RESERVED_DATA_KEYS = {"from", "message_type"}
RESERVED_DATA_PREFIXES = ("google", "gcm")


# --- content shared by the push adapters ------------------------------------------------
def push_data(content: dict[str, Any]) -> dict[str, str]:
    """The custom data of a push as the string map every push service takes; the link
    travels in it as ``link`` so the app can open it whichever service delivered it."""
    data = {}
    for key, value in (content.get("data") or {}).items():
        if value is None:
            continue
        data[str(key)] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if content.get("link"):
        data["link"] = str(content["link"])
    return data


def push_errors(content: dict[str, Any]) -> list[str]:
    """What every push service refuses: no title and no body, data that is no flat map."""
    errors = []
    if not (str(content.get("title") or "").strip() or str(content.get("body") or "").strip()):
        errors.append(gettext("A push notification needs a title or a body."))
    data = content.get("data")
    if data not in (None, "", {}) and (
        not isinstance(data, dict)
        or any(isinstance(v, dict | list) or not str(k).strip() for k, v in data.items())
    ):
        errors.append(gettext("Push data must map names to plain values."))
    return errors


def payload_size_error(payload: dict, limit: int) -> str | None:
    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limit:
        return gettext("The notification takes %(size)s bytes; this provider allows %(limit)s.") % {
            "size": size,
            "limit": limit,
        }
    return None


def fcm_message(message: OutgoingMessage, *, with_token: bool = True) -> dict[str, Any]:
    """The ``message`` object of an FCM v1 request (also the body Azure Notification Hubs
    forwards in its ``fcmV1`` format, where the hub fills in the token)."""
    content = message.content
    body: dict[str, Any] = {"token": message.to} if with_token else {}
    notification = {k: str(content[k]) for k in ("title", "body", "image") if content.get(k)}
    if notification:
        body["notification"] = notification
    data = push_data(content)
    if data:
        body["data"] = data
    if message.validity_seconds:
        body["android"] = {"ttl": f"{max(0, min(MAX_TTL, int(message.validity_seconds)))}s"}
    if message.platform == "ios" and content.get("image"):
        # iOS shows the image only through a notification service extension.
        body["apns"] = {
            "payload": {"aps": {"mutable-content": 1}},
            "fcm_options": {"image": str(content["image"])},
        }
    link = str(content.get("link") or "")
    if message.platform == "web" and link.startswith("https://"):
        body["webpush"] = {"fcm_options": {"link": link}}
    return body


# --- the service account ------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str
    token_uri: str


def service_account_load(text: str) -> ServiceAccount:
    """Parse a service-account key file; ``ValueError`` with a readable message if it is not one."""
    try:
        info = json.loads(text or "")
    except ValueError as exc:
        raise ValueError(gettext("The service account key is not JSON.")) from exc
    if not isinstance(info, dict):
        raise ValueError(gettext("The service account key is not a JSON object."))
    missing = [k for k in ("project_id", "client_email", "private_key") if not info.get(k)]
    if missing:
        raise ValueError(
            gettext("The service account key lacks %(fields)s.") % {"fields": ", ".join(missing)}
        )
    try:
        key = serialization.load_pem_private_key(str(info["private_key"]).encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(gettext("The service account private key cannot be read.")) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(gettext("The service account private key is not an RSA key."))
    return ServiceAccount(
        project_id=str(info["project_id"]),
        client_email=str(info["client_email"]),
        private_key=key,
        private_key_id=str(info.get("private_key_id") or ""),
        token_uri=str(info.get("token_uri") or TOKEN_URI),
    )


class FcmForm(ProviderConfigForm):
    base_url = forms.URLField(label=_("API address"), initial=FCM_URL, assume_scheme="https")
    service_account = forms.CharField(
        label=_("service account key (JSON)"),
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_(
            "The key file of a service account of the Firebase project allowed to send "
            "messages (Project settings, Service accounts)."
        ),
    )
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.5, initial=10, required=False)

    def clean_service_account(self):
        value = self.cleaned_data["service_account"]
        try:
            service_account_load(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value


class AuthFailed(Exception):
    """No access token: the whole batch waits (a configuration or token-server problem)."""


def fcm_error(response: httpx.Response) -> tuple[str, str, bool]:
    """(error code, message, whether the error is about the registration token)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return "", response.text[:200], False
    code, about_token = "", False
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if str(detail.get("@type", "")).endswith("FcmError") and detail.get("errorCode"):
            code = str(detail["errorCode"])
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and str(violation.get("field", "")).endswith("token"):
                about_token = True
    text = str(error.get("message") or "")
    if "registration token" in text.lower():
        about_token = True
    return code or str(error.get("status") or ""), text, about_token


@providers.register
class Fcm(Provider):
    """Firebase Cloud Messaging, one request per message over one keep-alive client."""

    key = "fcm"
    label = _("Firebase Cloud Messaging")
    channel = PUSH
    capabilities = frozenset({"text", "image", "link"})
    config_form = FcmForm
    sensitive = ("service_account",)
    max_batch = 100
    default_rate_per_second = 500.0

    def __init__(self, settings):
        super().__init__(settings)
        # HTTP/2 where the server offers it (ALPN on https), HTTP/1.1 keep-alive otherwise.
        self.client = http_client(
            base_url=settings.get("base_url", FCM_URL), timeout=settings.get("timeout"), http2=True
        )
        self._account: ServiceAccount | None = None
        self._token = ""
        self._token_expires = 0.0

    def close(self):
        self.client.close()

    # --- OAuth2 ---------------------------------------------------------------------------
    def _service_account(self) -> ServiceAccount:
        if self._account is None:
            try:
                self._account = service_account_load(self.settings.get("service_account", ""))
            except ValueError as exc:
                raise AuthFailed(str(exc)) from exc
        return self._account

    def _access_token(self) -> str:
        now = time.time()
        if self._token and now < self._token_expires - EXPIRY_MARGIN:
            return self._token
        account = self._service_account()
        claims = {
            "iss": account.client_email,
            "scope": SCOPE,
            "aud": account.token_uri,
            "iat": int(now),
            "exp": int(now) + ASSERTION_LIFETIME,
        }
        headers = {"kid": account.private_key_id} if account.private_key_id else None
        assertion = jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)
        try:
            response = self.client.post(
                account.token_uri, data={"grant_type": JWT_BEARER, "assertion": assertion}
            )
        except httpx.HTTPError as exc:
            raise AuthFailed(
                gettext("The OAuth token request failed: %(error)s") % {"error": transport_failure(exc)[1]}
            ) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if response.status_code != 200 or not token:
            detail = (
                f"{answer.get('error', '')} {answer.get('error_description', '')}".strip()
                if isinstance(answer, dict)
                else ""
            )
            raise AuthFailed(
                gettext("The OAuth server refused the service account: HTTP %(status)s %(detail)s")
                % {"status": response.status_code, "detail": detail or response.text[:200]}
            )
        self._token = str(token)
        self._token_expires = now + float(answer.get("expires_in") or ASSERTION_LIFETIME)
        return self._token

    # --- sending --------------------------------------------------------------------------
    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        if not batch:
            return []
        try:
            self._access_token()
        except AuthFailed as exc:
            return failed_batch(batch, Outcome.TEMPORARY, str(exc))
        return send_each(batch, self._send_one)

    def _send_one(self, message: OutgoingMessage) -> tuple[SendResult, bool]:
        """The result of one message and whether the rest of the batch should wait."""
        body = {"message": fcm_message(message)}
        for attempt in (1, 2):
            try:
                token = self._access_token()
                path = f"/v1/projects/{self._service_account().project_id}/messages:send"
            except AuthFailed as exc:
                return SendResult(message.id, Outcome.TEMPORARY, reason=str(exc)), True
            try:
                response = self.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                outcome, reason = transport_failure(exc)
                return SendResult(message.id, outcome, reason=reason), True
            if response.status_code == 401 and attempt == 1:
                code = fcm_error(response)[0]
                if code in ("", "UNAUTHENTICATED"):
                    self._token = ""  # our access token expired or was revoked: fetch a new one once
                    continue
            break
        return self._result(message, response)

    def _result(self, message: OutgoingMessage, response: httpx.Response) -> tuple[SendResult, bool]:
        status = response.status_code
        if status == 200:
            try:
                name = str(response.json().get("name") or "")
            except (ValueError, AttributeError):
                name = ""
            return SendResult(message.id, Outcome.ACCEPTED, Lifecycle.SENT, provider_message_id=name), False
        code, text, about_token = fcm_error(response)
        reason = f"{code or f'HTTP {status}'}: {text}".strip(": ")[:300]
        retry_after = retry_after_seconds(response)

        def result(outcome, why=reason, **kwargs):
            return SendResult(message.id, outcome, reason=why, **kwargs)

        if code in RETIRE_CODES or (code == "INVALID_ARGUMENT" and about_token):
            return result(Outcome.PERMANENT, retire_address=True), False
        if code == "THIRD_PARTY_AUTH_ERROR":
            why = gettext(
                "%(reason)s: FCM could not authenticate with APNs or web push; check the APNs key "
                "or web push certificate of the Firebase project"
            ) % {"reason": reason}
            return result(Outcome.TEMPORARY, why), False
        if code == "QUOTA_EXCEEDED":
            return result(Outcome.TEMPORARY, retry_after=retry_after or QUOTA_BACKOFF), False
        if code in ("UNAVAILABLE", "INTERNAL") or status >= 500:
            return result(Outcome.TEMPORARY, retry_after=retry_after), True
        if status == 429:
            return result(Outcome.TEMPORARY, retry_after=retry_after), False
        if status in (401, 403, 404):
            # Our credentials, the project id or the API's activation: a configuration problem.
            why = gettext("%(reason)s: check the service account and that the FCM API is enabled") % {
                "reason": reason
            }
            return result(Outcome.TEMPORARY, why), True
        if code == "UNSPECIFIED_ERROR":
            return result(Outcome.TEMPORARY, retry_after=retry_after), False
        return result(Outcome.REJECTED), False

    def content_errors(self, content):
        errors = push_errors(content)
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        reserved = sorted(
            str(k)
            for k in data
            if str(k).lower() in RESERVED_DATA_KEYS or str(k).lower().startswith(RESERVED_DATA_PREFIXES)
        )
        if reserved:
            errors.append(
                gettext("FCM reserves these data names: %(names)s.") % {"names": ", ".join(reserved)}
            )
        if not errors:
            sample = OutgoingMessage(id=0, ref="", channel=PUSH, to="", content=content)
            message = fcm_message(sample, with_token=False)
            too_big = payload_size_error(
                {k: message[k] for k in ("notification", "data") if k in message}, PAYLOAD_LIMIT
            )
            if too_big:
                errors.append(too_big)
        return errors
