"""Devino Telecom e-mail, HTTP API v2 (integrationapi.net/email/v2).

Protocol (devinotelecom/docs emailhttp.rst): HTTP Basic auth with the cabinet login, the
header ``Accept: */*`` is required, JSON bodies. Every answer is
``{"Result": ..., "Code": ..., "Description": ...}`` where ``Code`` is ``ok`` (200/201),
``validation_error`` (400-404, not retryable) or ``internal_error`` (500, retry later).

* ``POST /email/v2/messages`` sends one message to its ``Recipients``; each message here
  goes in its own request (every message has its own content, and one refused address
  cannot fail its neighbours), with ``RecipientId`` = our ref without dashes (32 chars).
  201 answers ``Result: [{Index, Address, MessageId, Code}]``.
* ``GET /email/v2/messages/{id},{id},...`` (at most 150 ids) answers each message's
  ``State``: NotSent, Sent, Delivered, Read, Clicked, Bounced, Rejected.
* Events come by POST to a callback URL registered through Devino's support:
  ``{"messageEventDtos": [{messageId, event, url, dateTime, isHardbounce, reason, ...}]}``
  (a bare event object or a list of them is read too). Events: SENT, DELIVERED, OPENED,
  CLICKED, BOUNCED, UNSUBSCRIBED, SUBSCRIBED, COMPLAINED.

Devino refuses mail without an unsubscribe link: a marketing message whose text lacks the
member's unsubscribe link gets a short unsubscribe line appended (Devino's own
``[Unsubscribe]`` macro when we have no link of our own). The API documents no
idempotency key, so a retry after a lost answer may duplicate.
"""

from __future__ import annotations

import html as html_lib
import json
from collections.abc import Sequence
from email.utils import parseaddr

import httpx
from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from gateways.providers._http import http_client, status_failure, transport_failure
from gateways.providers.base import (
    EMAIL,
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
from gateways.providers.devino import _iso

SEND_PATH = "/email/v2/messages"
POLL_CHUNK = 150
REASON_LIMIT = 300
UNSUBSCRIBE_MACRO = "[Unsubscribe]"

EVENT_MAP = {
    "SENT": Lifecycle.SENT,
    "DELIVERED": Lifecycle.DELIVERED,
    "OPENED": Lifecycle.OPENED,
    "CLICKED": Lifecycle.CLICKED,
    "UNSUBSCRIBED": Lifecycle.UNSUBSCRIBED,
    "COMPLAINED": Lifecycle.COMPLAINED,
}
# Events about the address's subscriptions, not about a message.
IGNORED_EVENTS = {"SUBSCRIBED"}
# Bounce reasons that mean the address itself is dead (or has opted out at Devino).
SUPPRESS_REASONS = {"bad-mailbox", "inactive-mailbox", "bad-domain", "already_unsubscribed"}
# Bounce reasons that a later attempt may overcome.
SOFT_REASONS = {"bad-connection", "no-answer-from-host", "quota-issues", "message-expired"}

STATE_MAP = {
    "NOTSENT": Lifecycle.QUEUED,
    "SENT": Lifecycle.SENT,
    "DELIVERED": Lifecycle.DELIVERED,
    "READ": Lifecycle.OPENED,
    "CLICKED": Lifecycle.CLICKED,
    "BOUNCED": Lifecycle.FAILED,
    "REJECTED": Lifecycle.REJECTED,
}


class DevinoEmailForm(ProviderConfigForm):
    base_url = forms.URLField(
        label=_("API address"), initial="https://integrationapi.net", assume_scheme="https"
    )
    login = forms.CharField(label=_("login"), max_length=255)
    password = forms.CharField(label=_("password"), widget=forms.PasswordInput(render_value=False))
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.5, initial=10, required=False)


def _truthy(value) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def with_unsubscribe(message: OutgoingMessage) -> tuple[str, str]:
    """The HTML and text bodies, with an unsubscribe line appended to a marketing message
    that carries none."""
    content = message.content
    html = content.get("html") or ""
    text = content.get("text") or ""
    if not message.marketing:
        return html, text
    link = message.unsubscribe_url or UNSUBSCRIBE_MACRO
    if html and link not in html and UNSUBSCRIBE_MACRO not in html:
        line = '<p style="font-size:12px;color:#888888"><a href="{}">{}</a></p>'.format(
            html_lib.escape(link, quote=True), html_lib.escape(gettext("Unsubscribe"))
        )
        html = html.replace("</body>", line + "</body>", 1) if "</body>" in html else html + line
    if (text or not html) and link not in text and UNSUBSCRIBE_MACRO not in text:
        line = gettext("Unsubscribe: %(url)s") % {"url": link}
        text = f"{text.rstrip()}\n\n{line}\n" if text else line
    return html, text


@providers.register
class DevinoEmail(Provider):
    key = "devino_email"
    label = _("Devino Telecom e-mail")
    channel = EMAIL
    capabilities = frozenset({"text", "html"})
    config_form = DevinoEmailForm
    sensitive = ("password",)
    max_batch = 100
    deduplicates = False
    callbacks = True
    polling = True
    default_rate_per_second = 20.0

    def __init__(self, settings):
        super().__init__(settings)
        self.client = http_client(
            base_url=settings.get("base_url", "https://integrationapi.net"),
            timeout=settings.get("timeout"),
            auth=httpx.BasicAuth(settings.get("login", ""), settings.get("password", "")),
            headers={"Accept": "*/*"},
        )

    def close(self):
        self.client.close()

    # --- sending ---------------------------------------------------------------------
    def message_body(self, message: OutgoingMessage) -> dict:
        name, address = parseaddr(self.settings.sender)
        html, text = with_unsubscribe(message)
        recipient_name, recipient_address = parseaddr(message.to)
        recipient = {
            "Address": recipient_address or message.to,
            "RecipientId": message.ref.replace("-", "")[:32],
        }
        if recipient_name:
            recipient["Name"] = recipient_name
        sender = {"Address": address or self.settings.sender}
        if name:
            sender["Name"] = name
        return {
            "Sender": sender,
            "Recipients": [recipient],
            "Subject": message.content.get("subject", ""),
            "Body": {"Html": html, "PlainText": text},
        }

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        for index, message in enumerate(batch):
            try:
                response = self.client.post(SEND_PATH, json=self.message_body(message))
            except httpx.HTTPError as exc:
                outcome, reason = transport_failure(exc)
                result = SendResult(message.id, outcome, reason=reason)
                stop = True
            else:
                result, stop = self._result(message, response)
            results.append(result)
            if stop:
                # The provider is unreachable, busy or refuses our credentials: the rest of
                # the batch was not sent and waits for the next attempt.
                results += [
                    SendResult(m.id, Outcome.TEMPORARY, reason=result.reason, retry_after=result.retry_after)
                    for m in batch[index + 1 :]
                ]
                break
        return results

    def _result(self, message: OutgoingMessage, response: httpx.Response) -> tuple[SendResult, bool]:
        """The result of one answer, and whether the rest of the batch should wait."""
        failure = status_failure(response)
        if failure:
            outcome, reason, retry_after = failure
            reason = _described(reason, response)
            return SendResult(message.id, outcome, reason=reason, retry_after=retry_after), True
        if response.status_code in (401, 403):
            reason = gettext("HTTP %(status)s: check the login and password") % {
                "status": response.status_code
            }
            return SendResult(message.id, Outcome.TEMPORARY, reason=reason), True
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if response.is_success:
                reason = f"HTTP {response.status_code}: unreadable answer"
                return SendResult(message.id, Outcome.UNKNOWN, reason=reason), False
            reason = f"HTTP {response.status_code}: {response.text[:200]}"
            return SendResult(message.id, Outcome.REJECTED, reason=reason), False
        code = str(answer.get("Code") or "").lower()
        description = str(answer.get("Description") or "")
        if code == "internal_error":
            reason = f"internal_error: {description}"[:REASON_LIMIT]
            return SendResult(message.id, Outcome.TEMPORARY, reason=reason), True
        if not response.is_success or code != "ok":
            reason = f"{code or response.status_code}: {description}"[:REASON_LIMIT]
            return SendResult(message.id, Outcome.REJECTED, reason=reason), False
        items = answer.get("Result")
        item = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
        item_code = str(item.get("Code") or "").lower()
        if item.get("MessageId") and item_code in ("ok", ""):
            result = SendResult(
                message.id, Outcome.ACCEPTED, Lifecycle.QUEUED, provider_message_id=str(item["MessageId"])
            )
            return result, False
        if item_code:
            reason = f"{item_code}: {description}"[:REASON_LIMIT]
            return SendResult(message.id, Outcome.REJECTED, reason=reason), False
        return SendResult(message.id, Outcome.UNKNOWN, reason="no message id in the answer"), False

    def content_errors(self, content):
        errors = []
        if not str(content.get("subject") or "").strip():
            errors.append(gettext("The email subject is empty."))
        if not (str(content.get("text") or "").strip() or str(content.get("html") or "").strip()):
            errors.append(gettext("The email has neither a text nor an HTML part."))
        if content.get("images"):
            errors.append(gettext("Devino e-mail carries no embedded images: link images by their URL."))
        return errors

    # --- statuses --------------------------------------------------------------------
    def parse_callback(self, request) -> list[StatusUpdate]:
        try:
            body = json.loads(request.body or b"null")
        except ValueError as exc:
            raise CallbackRejected("body is not JSON") from exc
        if isinstance(body, dict):
            body = body.get("messageEventDtos", [body]) if "messageEventDtos" in body else [body]
        if not isinstance(body, list):
            raise CallbackRejected("expected a JSON object or array")
        updates = []
        for event in body:
            if not isinstance(event, dict):
                continue
            update = self._event(event)
            if update is not None:
                updates.append(update)
        return updates

    @staticmethod
    def _event(event: dict) -> StatusUpdate | None:
        provider_id = event.get("messageId")
        name = str(event.get("event") or "").upper()
        if not provider_id or not name or name in IGNORED_EVENTS:
            return None
        at = _iso(event.get("dateTime"))
        if name == "BOUNCED":
            reason = str(event.get("reason") or "").strip().lower()
            flag = _truthy(event.get("isHardbounce"))
            dead = reason in SUPPRESS_REASONS
            hard = dead or (flag if flag is not None else reason not in SOFT_REASONS)
            return StatusUpdate(
                provider_message_id=str(provider_id),
                status=Lifecycle.FAILED if hard else Lifecycle.FAILED_TEMPORARY,
                at=at,
                reason=reason or "bounced",
                suppress_address=dead,
            )
        return StatusUpdate(
            provider_message_id=str(provider_id),
            status=EVENT_MAP.get(name, Lifecycle.UNKNOWN),
            at=at,
            reason="" if name in EVENT_MAP else name,
            url=str(event.get("url") or ""),
        )

    def poll(self, provider_ids: Sequence[str]) -> list[StatusUpdate]:
        updates = []
        ids = [str(pid) for pid in provider_ids if pid]
        for start in range(0, len(ids), POLL_CHUNK):
            chunk = ids[start : start + POLL_CHUNK]
            try:
                response = self.client.get(f"{SEND_PATH}/{','.join(chunk)}")
            except httpx.HTTPError:
                break  # asked again on the next poll
            if response.status_code != 200:
                break
            try:
                items = response.json().get("Result")
            except (ValueError, AttributeError):
                break
            if isinstance(items, dict):
                items = [items]
            for item in items or []:
                if not isinstance(item, dict) or not item.get("MessageId"):
                    continue
                state = str(item.get("State") or "")
                status = STATE_MAP.get(state.upper())
                if status is None or status == Lifecycle.QUEUED:
                    continue
                negative = status in (Lifecycle.FAILED, Lifecycle.REJECTED)
                updates.append(
                    StatusUpdate(
                        provider_message_id=str(item["MessageId"]),
                        status=status,
                        reason=state if negative else "",
                    )
                )
        return updates


def _described(reason: str, response: httpx.Response) -> str:
    try:
        description = response.json().get("Description")
    except (ValueError, AttributeError):
        description = None
    return f"{reason}: {description}"[:REASON_LIMIT] if description else reason
