"""Stream Telecom (stream-telecom.ru, host gateway.api.sc): SMS and Viber over the REST API.

Protocol (Stream Telecom REST API as used by public client libraries; the provider's own
documents could not be retrieved, so every field below is unverified): form-encoded
``POST`` under ``{base}/rest/``. ``Session/session.php`` with ``login`` and ``password``
answers a session id (a JSON string) that every other call carries as ``sessionId``.
``Send/SendSms/`` takes ``sourceAddress``, ``destinationAddress``, ``data``, ``validity``
and answers a JSON array of ids, one per SMS segment; ``State/state.php`` takes one
``messageId`` and answers ``{"State": n, "StateDescription": ..., ...}`` with the state
numbers of Devino's legacy REST API, which this API clones. ``Send/SendIM/ViberOne/``
(``sourceAddressIM``, ``textIM``, ``phone``, ``validityPeriod``) answers an id and
``State/Viber/`` answers ``{"<id>": {"viber": {"state", "state_error", "state_time"}}}``.
Errors are a non-200 status with ``{"Code": n, "Desc": ...}``, codes 1-9 as at Devino
(3 and 4: the session is invalid or expired: log in again once). No batch send, no
idempotency key and no documented callback body: one request per message on a
keep-alive connection, statuses by polling. Also unverified: ``validity`` is taken to be
in minutes (as at Devino's legacy API) and ``validityPeriod`` in seconds, and a Viber
``state_time`` without a zone is read as Moscow time.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from django import forms
from django.utils.translation import gettext_lazy as _

from gateways.providers._content import text_errors
from gateways.providers._http import http_client, retry_after_seconds, status_failure, transport_failure
from gateways.providers._sms import sms_length
from gateways.providers.base import (
    SMS,
    VIBER,
    Lifecycle,
    Outcome,
    OutgoingMessage,
    Provider,
    ProviderConfigForm,
    SendResult,
    StatusUpdate,
    providers,
)

log = logging.getLogger(__name__)

MSK = timezone(timedelta(hours=3), "MSK")
SESSION_CODES = {3, 4}
REJECTED_CODES = {1, 2, 6, 7}
# A Desc of code 2 that speaks of the recipient: the number itself is bad.
BAD_NUMBER = re.compile(r"destination|recipient|phone|number|получател|номер", re.IGNORECASE)

# State of an SMS segment: lifecycle, and whether the number itself is bad.
SMS_STATE: dict[int, tuple[Lifecycle, bool]] = {
    -2: (Lifecycle.QUEUED, False),
    -1: (Lifecycle.SENT, False),
    0: (Lifecycle.DELIVERED, False),
    -98: (Lifecycle.FAILED, False),  # stopped
    10: (Lifecycle.REJECTED, False),  # bad sender address
    11: (Lifecycle.UNDELIVERABLE, True),  # bad recipient address
    41: (Lifecycle.REJECTED, False),  # recipient address not allowed
    42: (Lifecycle.REJECTED, False),  # rejected by the SMSC
    46: (Lifecycle.EXPIRED, False),
    47: (Lifecycle.FAILED, False),  # deleted
    48: (Lifecycle.REJECTED, False),  # rejected by the platform
    69: (Lifecycle.REJECTED, False),
    99: (Lifecycle.UNKNOWN, False),
    255: (Lifecycle.UNKNOWN, False),  # not yet known, or older than 48 h
}
VIBER_STATE = {
    "sent": Lifecycle.SENT,
    "delivered": Lifecycle.DELIVERED,
    "read": Lifecycle.OPENED,
    "undelivered": Lifecycle.UNDELIVERABLE,
}


class StreamTelecomForm(ProviderConfigForm):
    base_url = forms.URLField(label=_("API address"), initial="https://gateway.api.sc", assume_scheme="https")
    login = forms.CharField(label=_("login"))
    password = forms.CharField(label=_("password"), widget=forms.PasswordInput(render_value=False))
    validity = forms.IntegerField(
        label=_("validity, seconds"), min_value=60, max_value=259200, required=False
    )
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.5, initial=10, required=False)


class Stop(Exception):
    """A failure that ends the batch (or the poll): network, HTTP status, account."""

    def __init__(self, outcome: Outcome, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.retry_after = retry_after


def digits(phone: str | None) -> str:
    return re.sub(r"\D", "", phone or "")


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def error_code(body: Any) -> int | None:
    if isinstance(body, dict) and "Code" in body:
        try:
            return int(body["Code"])
        except (TypeError, ValueError):
            return -1
    return None


def error_reason(body: dict) -> str:
    return f"Code {body.get('Code')}: {body.get('Desc') or ''}".strip().rstrip(":")


def when(value: Any, naive: timezone = UTC) -> datetime | None:
    """A provider timestamp: ``/Date(ms)/``, epoch seconds or milliseconds, or ISO text
    (``naive`` is the zone of a time written without one)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    match = re.fullmatch(r"/Date\((-?\d+)([+-]\d{4})?\)/", text)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        number = float(text)
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=naive)


def provider_ids(body: Any) -> list[str]:
    if isinstance(body, list):
        return [str(i) for i in body if str(i).strip()]
    if isinstance(body, dict):
        body = body.get("id") or body.get("messageId") or ""
    return [str(body)] if str(body).strip() else []


class StreamTelecomBase(Provider):
    config_form = StreamTelecomForm
    sensitive = ("password",)
    polling = True
    max_batch = 100
    default_rate_per_second = 10.0
    send_path: str

    def __init__(self, settings):
        super().__init__(settings)
        self._client: httpx.Client | None = None
        self._session_id: str = ""

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = http_client(
                base_url=self.settings.get("base_url", "https://gateway.api.sc"),
                timeout=self.settings.get("timeout"),
            )
        return self._client

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None
        self._session_id = ""

    # --- session ---------------------------------------------------------------------
    def _login(self) -> str:
        self._session_id = ""
        response = self.client.post(
            "/rest/Session/session.php",
            data={"login": self.settings.get("login", ""), "password": self.settings.get("password", "")},
        )
        body = body_of(response)
        if error_code(body) is not None:
            raise Stop(
                Outcome.TEMPORARY, f"login refused: {error_reason(body)}", retry_after_seconds(response)
            )
        failure = status_failure(response)
        if failure:
            raise Stop(failure[0], f"login: {failure[1]}", failure[2])
        session = str(body).strip() if isinstance(body, str | int) else ""
        if response.status_code != 200 or not session:
            raise Stop(Outcome.TEMPORARY, f"login: HTTP {response.status_code}, no session id in the reply")
        self._session_id = session
        return session

    def _call(self, path: str, fields: dict) -> tuple[httpx.Response, Any]:
        """POST ``fields`` with the session id; a session refused (code 3 or 4) is
        renewed once, unless it was opened for this very call."""
        fresh = False
        if not self._session_id:
            self._login()
            fresh = True
        while True:
            response = self.client.post(path, data={"sessionId": self._session_id, **fields})
            body = body_of(response)
            if error_code(body) in SESSION_CODES and not fresh:
                log.info("Stream Telecom: session refused (%s), logging in again", error_reason(body))
                self._login()
                fresh = True
                continue
            return response, body

    # --- sending ---------------------------------------------------------------------
    def fields(self, message: OutgoingMessage, phone: str) -> dict:
        raise NotImplementedError

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        for n, message in enumerate(batch):
            try:
                results.append(self._send_one(message))
                continue
            except httpx.HTTPError as exc:
                stop = Stop(*transport_failure(exc))
            except Stop as exc:
                stop = exc
            results.append(
                SendResult(message.id, stop.outcome, reason=stop.reason, retry_after=stop.retry_after)
            )
            results += [
                SendResult(
                    m.id,
                    Outcome.TEMPORARY,
                    reason=f"not attempted: {stop.reason}",
                    retry_after=stop.retry_after,
                )
                for m in batch[n + 1 :]
            ]
            break
        return results

    def _send_one(self, message: OutgoingMessage) -> SendResult:
        phone = digits(message.to)
        if not phone:
            return SendResult(message.id, Outcome.REJECTED, reason="no phone number")
        response, body = self._call(self.send_path, self.fields(message, phone))
        code = error_code(body)
        if code is not None:
            return self._code_result(message, code, body, response)
        failure = status_failure(response)
        if failure:
            raise Stop(*failure)
        if response.status_code != 200:
            raise Stop(Outcome.TEMPORARY, f"HTTP {response.status_code}: check the API address")
        ids = provider_ids(body)
        if not ids:
            return SendResult(
                message.id, Outcome.ACCEPTED, Lifecycle.QUEUED, reason="accepted, but the reply carried no id"
            )
        return SendResult(
            message.id,
            Outcome.ACCEPTED,
            Lifecycle.QUEUED,
            provider_message_id=ids[0],
            part_ids=ids[1:] if self.channel == SMS else [],
            segments=len(ids) if self.channel == SMS else 1,
        )

    def _code_result(self, message, code: int, body: dict, response: httpx.Response) -> SendResult:
        reason = error_reason(body)
        if code in REJECTED_CODES:
            bad_number = code == 2 and bool(BAD_NUMBER.search(str(body.get("Desc") or "")))
            return SendResult(message.id, Outcome.REJECTED, reason=reason, suppress_address=bad_number)
        if code in SESSION_CODES:
            raise Stop(Outcome.TEMPORARY, f"session refused after a new login: {reason}")
        if code == 5:
            raise Stop(Outcome.TEMPORARY, f"not enough credits: {reason}")
        if code in (8, 9):
            raise Stop(Outcome.TEMPORARY, reason, retry_after_seconds(response))
        return SendResult(message.id, Outcome.TEMPORARY, reason=reason)

    # --- statuses --------------------------------------------------------------------
    def poll(self, provider_ids: Sequence[str]) -> list[StatusUpdate]:
        """One status request per id. A failure of the connection or the account ends
        this poll (logged); the next poll asks again."""
        updates: list[StatusUpdate] = []
        for provider_id in provider_ids:
            try:
                response, body = self._call(self.state_path, {"messageId": str(provider_id)})
            except (httpx.HTTPError, Stop) as exc:
                log.warning("Stream Telecom status request failed: %s", exc)
                break
            if error_code(body) is not None or response.status_code != 200:
                log.info("Stream Telecom: no status for %s: %s", provider_id, str(body)[:200])
                continue
            updates += self._updates(str(provider_id), body)
        return updates

    state_path: str

    def _updates(self, provider_id: str, body: Any) -> list[StatusUpdate]:
        raise NotImplementedError


@providers.register
class StreamTelecomSms(StreamTelecomBase):
    key = "streamtelecom_sms"
    label = _("Stream Telecom SMS")
    channel = SMS
    capabilities = frozenset({"text"})
    send_path = "/rest/Send/SendSms/"
    state_path = "/rest/State/state.php"

    def fields(self, message, phone):
        fields = {
            "sourceAddress": self.settings.sender,
            "destinationAddress": phone,
            "data": message.content.get("text", ""),
        }
        validity = message.validity_seconds or self.settings.get("validity")
        if validity:
            fields["validity"] = str(max(1, -(-int(validity) // 60)))  # minutes, as Devino's legacy API
        return fields

    def _updates(self, provider_id, body):
        if not isinstance(body, dict) or "State" not in body:
            return []
        try:
            state = int(body["State"])
        except (TypeError, ValueError):
            state = 99
        status, bad_number = SMS_STATE.get(state, (Lifecycle.UNKNOWN, False))
        description = str(body.get("StateDescription") or "")
        return [
            StatusUpdate(
                provider_id,
                status,
                at=when(body.get("ReportedDateUtc") or body.get("TimeStampUtc")),
                reason="" if state in (-2, -1, 0) else f"{state}: {description}".rstrip(": "),
                suppress_address=bad_number,
            )
        ]

    def content_errors(self, content):
        return text_errors(content, limit=2000)

    def segments(self, content):
        return max(1, sms_length(content.get("text", "")).segments)


@providers.register
class StreamTelecomViber(StreamTelecomBase):
    """Viber text messages (``ViberOne``); this API carries no image or button."""

    key = "streamtelecom_viber"
    label = _("Stream Telecom Viber")
    channel = VIBER
    capabilities = frozenset({"text"})
    send_path = "/rest/Send/SendIM/ViberOne/"
    state_path = "/rest/State/Viber/"

    def fields(self, message, phone):
        fields = {
            "sourceAddressIM": self.settings.sender,
            "textIM": message.content.get("text", ""),
            "phone": phone,
        }
        validity = message.validity_seconds or self.settings.get("validity")
        if validity:
            fields["validityPeriod"] = str(int(validity))
        return fields

    def _updates(self, provider_id, body):
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                return []
        if not isinstance(body, dict):
            return []
        updates = []
        for key, item in body.items():
            viber = item.get("viber") if isinstance(item, dict) else None
            if not isinstance(viber, dict):
                continue
            state = str(viber.get("state") or "").lower()
            error = str(viber.get("state_error") or "")
            status = VIBER_STATE.get(state, Lifecycle.UNKNOWN)
            if error == "filtered":
                status = Lifecycle.REJECTED
            updates.append(
                StatusUpdate(
                    str(key),
                    status,
                    at=when(viber.get("state_time"), naive=MSK),
                    reason=error or (state if state not in VIBER_STATE else ""),
                )
            )
        return updates

    def content_errors(self, content):
        return text_errors(content, limit=1000)
