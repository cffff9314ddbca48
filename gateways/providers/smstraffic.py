"""SMS Traffic (smstraffic.ru): SMS over the HTTP API, Viber and VK through Smart Delivery.

Protocol (SMS Traffic HTTP API description, v1.85): ``POST {base}/multi.php``,
form-encoded, ``login`` and ``password`` on every request, replies in XML
``<reply><result>OK|ERROR</result><code/><description/><message_infos>...``. With
``want_sms_ids=1`` the reply carries one ``<message_info><phone/><sms_id/></message_info>``
per SMS *segment*; with ``individual_messages=1`` + ``with_push_id=1`` one request carries
a whole batch as ``ourId:phone text`` lines in ``phones`` and every ``message_info`` echoes
our id as ``push_id``. Error code 1000 is the only temporary one: retry later or on the
reserve host (``api2``), which serves the same functions. Statuses come by POST to a
callback URL configured by the provider's support (form fields ``sms_id``, ``status``,
``delivery_date`` in Moscow time) and by polling the same URL with ``operation=status``
(one flat ``<reply>`` for one id, one ``<sms>`` per id for several).

Smart Delivery (Viber, VK) uses the same contract at ``{base}/smartdelivery-in/multi.php``
(hosts ``sds`` / ``sds2``); its reply names the id ``<id>`` and its status reply has one
``<msg-info>`` per message. No provider document for Smart Delivery was found: the field
names ``route``, ``image_url``, ``btn_url``, ``btn_name``, ``template_id`` and ``param_*``,
the ``route`` values ``viber`` and ``vk``, and the status vocabulary come from public
client code and are unverified. No Smart Delivery callback format is known, so those
adapters poll. The API documents no idempotency key: a retry after a lost answer may
duplicate (reported as possibly duplicate).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from gateways.providers._content import social_errors, text_errors, viber_errors
from gateways.providers._http import http_client, status_failure, transport_failure
from gateways.providers._sms import is_gsm7, sms_length
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

log = logging.getLogger(__name__)

# Moscow has kept UTC+3 all year since 2014; the provider reports its dates in it.
MSK = timezone(timedelta(hours=3), "MSK")

# The operator can fix these in the provider's cabinet or in the gateway settings
# (credentials, IP allow-list, balance, routes, sender name): retry later.
ACCOUNT_CODES = {401, 402, 411, 412, 415, 419, 421, 431, 436, 439}
# The phone number is wrong or blocked: nothing was sent; suppress the address.
PHONE_CODES = {425, 426, 427, 428, 429, 430, 432, 440}
# Errors one message of a batch can cause for the whole request: resend one by one.
SPLIT_CODES = PHONE_CODES | {418, 420, 422, 423, 424, 437}
RESERVE_CODE = 1000
MAX_TEXT = 17085  # characters, rus=1/5 (39 015 for rus=0)
POLL_CHUNK = 15  # ids per status request, as public clients do

SMS_STATUS = {
    "": Lifecycle.QUEUED,
    "Buffered SMSC": Lifecycle.SENT,
    "Delivered": Lifecycle.DELIVERED,
    "Non Delivered": Lifecycle.UNDELIVERABLE,
    "Rejected": Lifecycle.REJECTED,
    "Expired": Lifecycle.EXPIRED,
    "Deleted": Lifecycle.FAILED,
    "Unknown status": Lifecycle.UNKNOWN,
}
SMART_STATUS = {
    "READ": Lifecycle.OPENED,
    "DELIVERED": Lifecycle.DELIVERED,
    "EXPIRED": Lifecycle.EXPIRED,
    "REJECTED": Lifecycle.REJECTED,
    "DELETED": Lifecycle.FAILED,
    "FAILED": Lifecycle.FAILED,
    "UNDELIVERED": Lifecycle.UNDELIVERABLE,
}


class SmsTrafficForm(ProviderConfigForm):
    base_url = forms.URLField(
        label=_("API address"), initial="https://api.smstraffic.ru", assume_scheme="https"
    )
    base_url_reserve = forms.URLField(
        label=_("reserve API address"),
        initial="https://api2.smstraffic.ru",
        required=False,
        assume_scheme="https",
        help_text=_("Used when the main address cannot be reached or answers with a temporary error."),
    )
    login = forms.CharField(label=_("login"))
    password = forms.CharField(label=_("password"), widget=forms.PasswordInput(render_value=False))
    max_parts = forms.IntegerField(
        label=_("segments per message at most"),
        min_value=1,
        max_value=255,
        initial=10,
        required=False,
        help_text=_("Longer texts are refused: the provider would drop the extra segments."),
    )
    gap = forms.FloatField(
        label=_("pause between segments, seconds"), min_value=0.05, initial=0.1, required=False
    )
    validity = forms.IntegerField(
        label=_("validity, seconds"), min_value=600, max_value=86400, required=False
    )
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.5, initial=10, required=False)


class SmartDeliveryForm(ProviderConfigForm):
    base_url = forms.URLField(
        label=_("API address"), initial="https://sds.smstraffic.ru", assume_scheme="https"
    )
    base_url_reserve = forms.URLField(
        label=_("reserve API address"),
        initial="https://sds2.smstraffic.ru",
        required=False,
        assume_scheme="https",
        help_text=_("Used when the main address cannot be reached or answers with a temporary error."),
    )
    login = forms.CharField(label=_("login"))
    password = forms.CharField(label=_("password"), widget=forms.PasswordInput(render_value=False))
    timeout = forms.FloatField(label=_("request timeout, seconds"), min_value=0.5, initial=10, required=False)


def msk_datetime(value: str | None) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` in Moscow time, as the provider writes its dates."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=MSK)


def digits(phone: str | None) -> str:
    return re.sub(r"\D", "", phone or "")


def plain_text(text: str) -> bool:
    """Sent with ``rus=0`` (GSM-7, 160/153 characters): ASCII within the GSM-7 table.
    Anything else goes as UTF-8 with ``rus=5`` (UCS-2, 70/67)."""
    return text.isascii() and is_gsm7(text)


def text_segments(text: str) -> int:
    if plain_text(text):
        return max(1, sms_length(text).segments)
    units = len(text.encode("utf-16-be")) // 2
    return 1 if units <= 70 else -(-units // 67)


class Failure(Exception):
    """A request that did not produce a usable reply. ``batch_wide`` failures (network,
    HTTP status, account problems) stop the batch: the rest is left for a later retry."""

    def __init__(
        self,
        outcome: Outcome,
        reason: str,
        retry_after: float | None = None,
        *,
        batch_wide: bool = True,
        suppress: bool = False,
        split: bool = False,
    ):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.retry_after = retry_after
        self.batch_wide = batch_wide
        self.suppress = suppress
        self.split = split

    def results(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        return [
            SendResult(
                m.id,
                self.outcome,
                reason=self.reason,
                retry_after=self.retry_after,
                suppress_address=self.suppress,
            )
            for m in messages
        ]


def error_failure(code: str, description: str) -> Failure:
    """Classify a ``<result>ERROR</result>`` reply by its code."""
    reason = f"{code}: {description}".strip().rstrip(":")
    number = int(code) if code.isdigit() else 0
    if number == RESERVE_CODE or number in ACCOUNT_CODES:
        return Failure(Outcome.TEMPORARY, reason)
    return Failure(
        Outcome.REJECTED,
        reason,
        batch_wide=False,
        suppress=number in PHONE_CODES,
        split=number in SPLIT_CODES,
    )


@dataclass
class Job:
    """One request to make: ``items`` are (message, phone, text) of the same encoding."""

    items: list[tuple[OutgoingMessage, str, str]]
    rus: int
    validity: int | None


class SmsTrafficBase(Provider):
    sensitive = ("password",)
    path = "/multi.php"
    default_base = "https://api.smstraffic.ru"

    def __init__(self, settings):
        super().__init__(settings)
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = http_client(
                base_url=self.settings.get("base_url", self.default_base),
                timeout=self.settings.get("timeout"),
            )
        return self._client

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def _credentials(self) -> dict[str, str]:
        return {"login": self.settings.get("login", ""), "password": self.settings.get("password", "")}

    def _call(self, form: dict) -> ET.Element:
        """POST ``form`` and return the parsed ``<reply>``; on a connection that never
        carried the request, or on code 1000, once more on the reserve host."""
        urls = [self.path]
        reserve = self.settings.get("base_url_reserve")
        if reserve:
            urls.append(reserve.rstrip("/") + self.path)
        data = {**self._credentials(), **form}
        for n, url in enumerate(urls):
            last = n == len(urls) - 1
            try:
                response = self.client.post(url, data=data)
            except httpx.HTTPError as exc:
                if not last and isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    log.warning("SMS Traffic: %s unreachable, trying the reserve host", url)
                    continue
                raise Failure(*transport_failure(exc)) from exc
            failure = status_failure(response)
            if failure:
                raise Failure(*failure)
            if response.status_code != 200:
                raise Failure(Outcome.TEMPORARY, f"HTTP {response.status_code}: check the API address")
            try:
                root = ET.fromstring(response.content)
            except ET.ParseError as exc:
                # The request was taken; whether anything was queued is not known.
                raise Failure(Outcome.UNKNOWN, f"reply is not XML: {response.text[:200]!r}") from exc
            reserve_code = root.findtext("code", "").strip() == str(RESERVE_CODE)
            if not last and reserve_code and root.findtext("result", "").strip() == "ERROR":
                log.warning("SMS Traffic: temporary error 1000, trying the reserve host")
                continue
            return root
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _error(root: ET.Element) -> Failure | None:
        if root.findtext("result", "").strip() == "OK":
            return None
        return error_failure(root.findtext("code", "").strip(), root.findtext("description", "").strip())

    def _run(self, jobs: deque, send_job) -> list[SendResult]:
        """Make the requests of ``jobs`` in order; ``send_job`` returns the results of
        one job or raises ``Failure``. A failure that splits a batch queues its messages
        one by one; a batch-wide failure leaves the remaining jobs for later."""
        results: list[SendResult] = []
        while jobs:
            job = jobs.popleft()
            messages = [item[0] for item in job.items]
            try:
                results += send_job(job)
            except Failure as failure:
                if failure.split and len(job.items) > 1:
                    jobs.extendleft(reversed([Job([item], job.rus, job.validity) for item in job.items]))
                    continue
                results += failure.results(messages)
                if failure.batch_wide:
                    rest = [item[0] for later in jobs for item in later.items]
                    results += [
                        SendResult(
                            m.id,
                            Outcome.TEMPORARY,
                            reason=f"not attempted: {failure.reason}",
                            retry_after=failure.retry_after,
                        )
                        for m in rest
                    ]
                    break
        return results

    def _status_request(self, ids: Sequence[str]) -> ET.Element | None:
        try:
            root = self._call({"operation": "status", "sms_id": ",".join(ids)})
        except Failure as failure:
            log.warning("SMS Traffic status request failed: %s", failure.reason)
            return None
        error = self._error(root) if root.find("result") is not None else None
        if error:
            log.warning("SMS Traffic status request refused: %s", error.reason)
            return None
        return root

    def poll(self, provider_ids: Sequence[str]) -> list[StatusUpdate]:
        """Ask for the statuses of ``provider_ids``, at most 15 a request. A request
        that fails is logged and skipped: the next poll asks again."""
        updates: list[StatusUpdate] = []
        ids = [str(i) for i in provider_ids if str(i).strip()]
        for start in range(0, len(ids), POLL_CHUNK):
            chunk = ids[start : start + POLL_CHUNK]
            root = self._status_request(chunk)
            if root is not None:
                updates += self._status_updates(root, chunk)
        return updates

    def _status_updates(self, root: ET.Element, asked: Sequence[str]) -> list[StatusUpdate]:
        raise NotImplementedError


@providers.register
class SmsTrafficSms(SmsTrafficBase):
    key = "smstraffic_sms"
    label = _("SMS Traffic SMS")
    channel = SMS
    capabilities = frozenset({"text"})
    config_form = SmsTrafficForm
    max_batch = 100
    callbacks = True
    polling = True
    default_rate_per_second = 50.0

    def _max_parts(self) -> int:
        return int(self.settings.get("max_parts", 10))

    def _common(self, rus: int, validity: int | None) -> dict:
        form = {
            "originator": self.settings.sender,
            "rus": str(rus),
            "want_sms_ids": "1",
            "max_parts": str(self._max_parts()),
            "gap": str(self.settings.get("gap", 0.1)),
        }
        if validity:
            form["timeout"] = str(validity)
        return form

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        grouped: dict[tuple[int, int | None], list] = defaultdict(list)
        singles: list[Job] = []
        for message in batch:
            text = message.content.get("text") or ""
            phone = digits(message.to)
            if not phone:
                results.append(SendResult(message.id, Outcome.REJECTED, reason="no phone number"))
                continue
            if not text.strip():
                results.append(SendResult(message.id, Outcome.REJECTED, reason="empty text"))
                continue
            segments = text_segments(text)
            if segments > self._max_parts():
                results.append(
                    SendResult(
                        message.id,
                        Outcome.REJECTED,
                        reason=f"the text needs {segments} segments, more than {self._max_parts()} allowed",
                    )
                )
                continue
            rus = 0 if plain_text(text) else 5
            validity = message.validity_seconds or self.settings.get("validity")
            validity = max(600, min(86400, int(validity))) if validity else None
            if "\n" in text or "\r" in text:
                # A line break would end the line of an individual-messages request.
                singles.append(Job([(message, phone, text)], rus, validity))
            else:
                grouped[(rus, validity)].append((message, phone, text))
        jobs = deque([Job(items, rus, validity) for (rus, validity), items in grouped.items()] + singles)
        return results + self._run(jobs, self._send_job)

    def _send_job(self, job: Job) -> list[SendResult]:
        form = self._common(job.rus, job.validity)
        if len(job.items) == 1:
            ((_message, phone, text),) = job.items
            form.update({"phones": phone, "message": text})
        else:
            form.update(
                {
                    "individual_messages": "1",
                    "with_push_id": "1",
                    "phones": "\n".join(f"{m.id}:{phone} {text}" for m, phone, text in job.items),
                }
            )
        root = self._call(form)
        failure = self._error(root)
        if failure:
            raise failure
        by_push: dict[str, list[str]] = defaultdict(list)
        by_phone: dict[str, list[str]] = defaultdict(list)
        for info in root.iter("message_info"):
            sms_id = (info.findtext("sms_id") or info.findtext("id") or "").strip()
            if not sms_id:
                continue
            push_id = (info.findtext("push_id") or "").strip()
            if push_id:
                by_push[push_id].append(sms_id)
            by_phone[digits(info.findtext("phone"))].append(sms_id)
        phones = defaultdict(int)
        for _m, phone, _t in job.items:
            phones[phone] += 1
        results = []
        for message, phone, text in job.items:
            ids = by_push.get(str(message.id)) or (by_phone.get(phone, []) if phones[phone] == 1 else [])
            results.append(
                SendResult(
                    message.id,
                    Outcome.ACCEPTED,
                    Lifecycle.QUEUED,
                    provider_message_id=ids[0] if ids else "",
                    part_ids=ids[1:],
                    segments=len(ids) or text_segments(text),
                    reason="" if ids else "accepted, but the reply carried no sms id",
                )
            )
        return results

    def _status_updates(self, root, asked):
        flat = root.find("status") is not None or root.find("sms_id") is not None
        items = root.findall("sms") or ([root] if flat else [])
        updates = []
        for item in items:
            sms_id = (item.findtext("sms_id") or "").strip() or (asked[0] if len(asked) == 1 else "")
            if not sms_id:
                continue
            status = (item.findtext("status") or "").strip()
            error = (item.findtext("error") or "").strip()
            if error and not status:
                updates.append(StatusUpdate(sms_id, Lifecycle.UNKNOWN, reason=error))
                continue
            updates.append(
                StatusUpdate(
                    sms_id,
                    SMS_STATUS.get(status, Lifecycle.UNKNOWN),
                    at=msk_datetime(item.findtext("last_status_change_date")),
                    reason=error or (status if status not in SMS_STATUS else ""),
                )
            )
        return updates

    def parse_callback(self, request) -> list[StatusUpdate]:
        data = request.POST if request.method == "POST" else request.GET
        sms_id = (data.get("sms_id") or "").strip()
        if not sms_id or "status" not in data:
            raise CallbackRejected("expected the form fields sms_id and status")
        status = data.get("status", "").strip()
        return [
            StatusUpdate(
                provider_message_id=sms_id,
                status=SMS_STATUS.get(status, Lifecycle.UNKNOWN),
                at=msk_datetime(data.get("delivery_date")),
                reason=status if status not in SMS_STATUS else "",
            )
        ]

    def content_errors(self, content):
        errors = text_errors(content, limit=MAX_TEXT)
        text = content.get("text") or ""
        if text and text_segments(text) > self._max_parts():
            errors.append(
                gettext("The text takes %(n)s SMS segments; this gateway sends at most %(max)s.")
                % {"n": text_segments(text), "max": self._max_parts()}
            )
        return errors

    def segments(self, content):
        return text_segments(content.get("text") or "")


class SmartDeliveryBase(SmsTrafficBase):
    """Smart Delivery: one request per message (the content differs per message and the
    reply maps ids by phone only). ``route`` names one channel, never a chain ending in
    SMS: our own cascades fall back to SMS."""

    config_form = SmartDeliveryForm
    path = "/smartdelivery-in/multi.php"
    default_base = "https://sds.smstraffic.ru"
    max_batch = 50
    polling = True
    default_rate_per_second = 20.0
    route: str

    def fields(self, message: OutgoingMessage) -> dict:
        raise NotImplementedError

    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        jobs: deque[Job] = deque()
        for message in batch:
            phone = digits(message.to)
            if not phone:
                results.append(SendResult(message.id, Outcome.REJECTED, reason="no phone number"))
            else:
                jobs.append(Job([(message, phone, "")], 5, message.validity_seconds))
        return results + self._run(jobs, self._send_job)

    def _send_job(self, job: Job) -> list[SendResult]:
        ((message, phone, _text),) = job.items
        form = {
            "phones": phone,
            "originator": self.settings.sender,
            "rus": "5",
            "want_sms_ids": "1",
            "route": self.route,
            **self.fields(message),
        }
        root = self._call(form)
        failure = self._error(root)
        if failure:
            raise failure
        ids = [
            (info.findtext("id") or info.findtext("sms_id") or "").strip()
            for info in root.iter("message_info")
        ]
        ids = [i for i in ids if i]
        return [
            SendResult(
                message.id,
                Outcome.ACCEPTED,
                Lifecycle.QUEUED,
                provider_message_id=ids[0] if ids else "",
                reason="" if ids else "accepted, but the reply carried no id",
            )
        ]

    def _status_updates(self, root, asked):
        updates = []
        for info in root.iter("msg-info"):
            msg_id = (info.findtext("id") or "").strip()
            if not msg_id:
                continue
            status = (info.findtext("status") or "").strip().upper()
            channel = info.find("channel-info")
            when = info.findtext("last_update_status")
            if channel is not None:
                if status == "READ":
                    when = channel.findtext("read_date") or when
                elif status == "DELIVERED":
                    when = channel.findtext("delivery_date") or when
            error = (info.findtext("error") or "").strip()
            updates.append(
                StatusUpdate(
                    msg_id,
                    SMART_STATUS.get(status, Lifecycle.UNKNOWN),
                    at=msk_datetime(when),
                    reason=error or (status if status not in SMART_STATUS else ""),
                )
            )
        return updates


@providers.register
class SmsTrafficViber(SmartDeliveryBase):
    """Viber through Smart Delivery with ``route=viber``: ``message`` is the text,
    ``image_url`` the picture, ``btn_url`` / ``btn_name`` the button (unverified field
    names, taken from public client code)."""

    key = "smstraffic_viber"
    label = _("SMS Traffic Viber")
    channel = VIBER
    capabilities = frozenset({"text", "image", "button"})
    route = "viber"

    def fields(self, message):
        content = message.content
        fields = {"message": content.get("text") or ""}
        if content.get("image"):
            fields["image_url"] = content["image"]
        if content.get("button_url"):
            fields["btn_url"] = content["button_url"]
            fields["btn_name"] = content.get("button_text", "")
        return fields

    def content_errors(self, content):
        return viber_errors(content)


@providers.register
class SmsTrafficSocial(SmartDeliveryBase):
    """VK notifications through Smart Delivery with ``route=vk`` from a template
    moderated on the VK side: ``template_id`` and one ``param_<name>`` per template
    variable (unverified: the route value and field names come from public client code,
    not from a provider document)."""

    key = "smstraffic_social"
    label = _("SMS Traffic VK")
    channel = SOCIAL
    capabilities = frozenset({"template_id"})
    route = "vk"

    def fields(self, message):
        content = message.content
        fields = {"template_id": str(content.get("template_id") or ""), "message": content.get("text") or ""}
        for name, value in (content.get("data") or {}).items():
            fields[f"param_{name}"] = str(value)
        return fields

    def content_errors(self, content):
        return social_errors(content)
