"""SMPP 3.4: SMS through any SMSC that speaks the Short Message Peer-to-Peer protocol v3.4.

Protocol (SMPP Developers Forum, "Short Message Peer to Peer Protocol Specification v3.4"):
one TCP connection (optionally inside TLS) bound as a transceiver (``bind_transceiver``), so
submissions and delivery receipts share it. Every PDU is a 16-octet big-endian header
(``command_length``, ``command_id``, ``command_status``, ``sequence_number``) and a body; a
response carries the request's sequence number and ``command_id | 0x80000000``.

* Each SMS part is one ``submit_sm``; its ``submit_sm_resp`` gives the part's ``message_id``
  or an error ``command_status``. Several requests may be unanswered at once (the window).
* Text that fits the GSM 03.38 default alphabet goes as ``data_coding`` 0 (one septet per
  octet, unpacked); anything else as ``data_coding`` 0x08 (UCS-2, UTF-16BE). A long text is
  cut into concatenated parts, each starting with a user data header (``esm_class`` 0x40):
  ``05 00 03 ref total seq`` (8-bit reference) or ``06 08 04 ref ref total seq`` (16-bit).
  A cut never falls inside a GSM-7 escape pair or a UTF-16 surrogate pair.
* ``registered_delivery`` 1 asks for a receipt: a ``deliver_sm`` with ``esm_class`` 0x04
  carrying the TLVs ``receipted_message_id`` (0x001E) and ``message_state`` (0x0427), and
  the informal text of Appendix B, ``id:... sub:... dlvrd:... stat:DELIVRD err:...``.
  Every ``deliver_sm`` is answered with ``deliver_sm_resp`` status 0. The id in a receipt
  may be written differently from the ``submit_sm_resp`` one (hexadecimal against decimal,
  leading zeros), so receipts are matched on a normalised form and reported under the id
  as it was first returned.
* ``enquire_link`` keeps an idle session alive; ``unbind`` closes it.

The adapter keeps its bind between batches. The SMSC pushes receipts whenever it likes:
those read while sending are kept in the adapter and handed out, with whatever arrives
meanwhile, by ``poll()``, which the pipeline calls periodically for polling providers.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import select
import socket
import ssl
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from smpplib import client as smpp_client
from smpplib import command_codes, consts, exceptions, smpp

from gateways.providers._content import text_errors
from gateways.providers._sms import GSM7_BASIC, GSM7_EXTENSION, is_gsm7
from gateways.providers.base import (
    SMS,
    Lifecycle,
    Outcome,
    OutgoingMessage,
    Provider,
    ProviderConfigForm,
    ProviderError,
    SendResult,
    StatusUpdate,
    providers,
)

log = logging.getLogger(__name__)

DATA_CODING_GSM7 = 0x00
DATA_CODING_UCS2 = 0x08
ESM_CLASS_UDHI = 0x40
DELIVER_SM = 0x00000005
MAX_PARTS = 255
MAX_PDU = 64 * 1024

# GSM 03.38: the default table in code order, and the extension table behind ESC (0x1B).
GSM7_CODES = {ch: bytes([code]) for code, ch in enumerate(GSM7_BASIC)}
GSM7_CODES.update(
    {
        ch: bytes([0x1B, code])
        for ch, code in {
            "\f": 0x0A,
            "^": 0x14,
            "{": 0x28,
            "}": 0x29,
            "\\": 0x2F,
            "[": 0x3C,
            "~": 0x3D,
            "]": 0x3E,
            "|": 0x40,
            "€": 0x65,
        }.items()
    }
)
assert set(GSM7_EXTENSION) <= set(GSM7_CODES)

# command_status of a submit_sm_resp -> what the message's attempt ended in.
ESME_NAMES = {
    value: name.removeprefix("SMPP_")
    for name, value in vars(consts).items()
    if name.startswith("SMPP_ESME_R") and isinstance(value, int)
}
THROTTLED, QUEUE_FULL, INVALID_BIND_STATUS = 0x58, 0x14, 0x04
TEMPORARY_STATUSES = {0x04, 0x08, 0x14, 0x45, 0x58, 0x64, 0xFF}
PERMANENT_STATUSES = {0x0B, 0x65}  # bad destination; permanent application error
SUPPRESS_STATUSES = {0x0B}
# Statuses after which further submits in the same batch are pointless for a while.
PAUSE_STATUSES = {THROTTLED, QUEUE_FULL}

# Delivery receipts: message_state TLV values and the Appendix B ``stat`` words.
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
STAT_MAP = {
    "DELIVRD": Lifecycle.DELIVERED,
    "DELIVERED": Lifecycle.DELIVERED,
    "ENROUTE": Lifecycle.SENT,
    "ACCEPTD": Lifecycle.SENT,
    "ACCEPTED": Lifecycle.SENT,
    "EXPIRED": Lifecycle.EXPIRED,
    "DELETED": Lifecycle.FAILED,
    "UNDELIV": Lifecycle.UNDELIVERABLE,
    "UNDELIVERABLE": Lifecycle.UNDELIVERABLE,
    "REJECTD": Lifecycle.REJECTED,
    "REJECTED": Lifecycle.REJECTED,
    "UNKNOWN": Lifecycle.UNKNOWN,
}
INTERIM_STATS = {"ENROUTE", "ACCEPTD", "ACCEPTED"}
RECEIPT_ESM_TYPES = {0x04, 0x20}  # SMSC delivery receipt, intermediate notification
RECEIPT_FIELD = re.compile(r"(?i)\b(id|stat|err):(\S*)")

# Bind failures: how long before the next attempt (aggregators ban hasty rebinds).
BIND_RETRY_SECONDS = 90.0
CONNECT_RETRY_SECONDS = 60.0
RECEIPT_BUFFER = 50_000
KNOWN_IDS = 200_000


def status_text(status: int | None) -> str:
    if status is None:
        return "no status"
    name = ESME_NAMES.get(status, "ESME_R?")
    return f"{name} (0x{status:02X}): {consts.DESCRIPTIONS.get(status, 'vendor-specific error')}"


# --- text -> submit_sm payloads -------------------------------------------------------
@dataclass(frozen=True)
class Encoded:
    data_coding: int
    esm_class: int
    payloads: list[bytes]  # short_message of each submit_sm, user data header included


def split_text(text: str, *, ref16: bool = False) -> tuple[str, list[str]]:
    """``(encoding, parts)``: the text cut on character boundaries into SMS parts."""
    gsm7 = is_gsm7(text)
    if gsm7:
        costs = [len(GSM7_CODES[ch]) for ch in text]
        single, per_part = 160, 153
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, per_part = 70, 67
    if sum(costs) <= single:
        return ("gsm7" if gsm7 else "ucs2"), [text]
    per_part -= 1 if ref16 else 0
    parts, start, used = [], 0, 0
    for i, cost in enumerate(costs):
        if used + cost > per_part:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return ("gsm7" if gsm7 else "ucs2"), parts


def encode_text(text: str, *, ref: int = 0, ref16: bool = False) -> Encoded:
    """The ``submit_sm`` payloads of ``text``; ``ValueError`` past 255 parts."""
    encoding, parts = split_text(text, ref16=ref16)
    if encoding == "gsm7":
        raw = [b"".join(GSM7_CODES[ch] for ch in part) for part in parts]
        data_coding = DATA_CODING_GSM7
    else:
        raw = [part.encode("utf-16-be") for part in parts]
        data_coding = DATA_CODING_UCS2
    if len(raw) == 1:
        return Encoded(data_coding, 0, raw)
    total = len(raw)
    if total > MAX_PARTS:
        raise ValueError(f"the text needs {total} parts, more than {MAX_PARTS}")
    # IEI 0x08 (16-bit reference) or 0x00 (8-bit), then reference, total, and each part's number.
    ref_octets = (
        bytes([0x08, 0x04, (ref >> 8) & 0xFF, ref & 0xFF]) if ref16 else bytes([0x00, 0x03, ref & 0xFF])
    )
    head = bytes([len(ref_octets) + 2]) + ref_octets + bytes([total])
    return Encoded(
        data_coding, ESM_CLASS_UDHI, [head + bytes([seq]) + chunk for seq, chunk in enumerate(raw, 1)]
    )


def relative_validity(seconds: int | None) -> str | None:
    """SMPP relative time ``YYMMDDhhmmsstnnR`` for a validity period in seconds."""
    if not seconds:
        return None
    seconds = max(1, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{min(days, 99):02d}{hours:02d}{minutes:02d}{secs:02d}000R"


# --- receipts -------------------------------------------------------------------------
@dataclass(frozen=True)
class Receipt:
    message_id: str  # as written by the SMSC in the receipt
    stat: str
    err: str = ""
    network_error: str = ""

    @property
    def final(self) -> bool:
        return self.stat not in INTERIM_STATS

    @property
    def reason(self) -> str:
        bits = []
        if self.err and self.err.strip("0"):
            bits.append(f"err:{self.err}")
        if self.network_error:
            bits.append(f"network_error_code:{self.network_error}")
        return " ".join(bits)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("latin-1").strip()
    return str(value).strip()


def receipt_from(pdu) -> Receipt | None:
    """The delivery receipt a ``deliver_sm`` carries, or ``None`` (a mobile-originated
    message or an unreadable receipt)."""
    body = pdu.short_message or getattr(pdu, "message_payload", None) or b""
    try:
        text = body.decode("utf-16-be") if pdu.data_coding == DATA_CODING_UCS2 else body.decode("latin-1")
    except UnicodeDecodeError:
        text = ""
    fields = {}
    for key, value in RECEIPT_FIELD.findall(text):
        fields.setdefault(key.lower(), value)
    tlv_id = _text(getattr(pdu, "receipted_message_id", None))
    tlv_state = getattr(pdu, "message_state", None)
    is_receipt = ((pdu.esm_class or 0) & 0x3C) in RECEIPT_ESM_TYPES
    if not (is_receipt or tlv_id or ("id" in fields and "stat" in fields)):
        return None
    message_id = tlv_id or fields.get("id", "")
    stat = MESSAGE_STATES.get(tlv_state or 0) or fields.get("stat", "").upper()
    if not message_id or not stat:
        return None
    network = getattr(pdu, "network_error_code", None) or b""
    network_error = ""
    if isinstance(network, bytes) and len(network) == 3 and (network[1] or network[2]):
        network_error = f"{network[0]}/{int.from_bytes(network[1:], 'big')}"
    return Receipt(message_id, stat, fields.get("err", ""), network_error)


_HEX = re.compile(r"^[0-9a-fA-F]+$")


def normalise_id(value: str) -> str:
    return value.strip().lower().lstrip("0") or "0"


class IdIndex:
    """Message ids returned by ``submit_sm_resp`` (or handed to ``poll``), findable by the
    way a receipt writes them: same digits up to case and leading zeros, or the same
    number written in the other base (hexadecimal against decimal)."""

    def __init__(self, limit: int = KNOWN_IDS):
        self.limit = limit
        self.by_norm: OrderedDict[str, str] = OrderedDict()
        self.by_hex: OrderedDict[int, str] = OrderedDict()  # ids read as hexadecimal
        self.by_dec: OrderedDict[int, str] = OrderedDict()  # decimal ids read as decimal

    def add(self, message_id: str) -> None:
        if not message_id:
            return
        self._put(self.by_norm, normalise_id(message_id), message_id)
        if _HEX.match(message_id):
            self._put(self.by_hex, int(message_id, 16), message_id)
            if message_id.isdigit():
                self._put(self.by_dec, int(message_id), message_id)

    def _put(self, table: OrderedDict, key, value: str) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.limit:
            table.popitem(last=False)

    def resolve(self, written: str) -> str | None:
        found = self.by_norm.get(normalise_id(written))
        if found is None and written.isascii() and written.isdigit():
            found = self.by_hex.get(int(written))
        if found is None and _HEX.match(written):
            found = self.by_dec.get(int(written, 16))
        return found


# --- the session ----------------------------------------------------------------------
class Dropped(Exception):
    """The session is gone (closed, reset, unbound by the SMSC, or a broken PDU stream)."""


@dataclass
class Unparsed:
    """A PDU smpplib cannot read: enough of it to answer ``generic_nack``."""

    length: int
    command_id: int
    status: int
    sequence: int
    command = "unparsed"


TLV_NAMES = {code: name for name, code in consts.OPTIONAL_PARAMS.items()}


def parse_pdu(raw: bytes, client) -> object:
    """smpplib's PDU parsing, except that an optional parameter the command does not list
    (``delivery_failure_reason`` in a receipt, a vendor TLV) is skipped rather than fatal:
    an SMSC may add any TLV, and a receipt must not be lost over one."""
    name = command_codes.get_command_name(struct.unpack(">L", raw[4:8])[0])
    pdu = smpp.make_pdu(name, client=client, allow_unknown_opt_params=True)

    def optional(data: bytes) -> None:
        pos = 0
        while pos + 4 <= len(data):
            tag, size = struct.unpack(">HH", data[pos : pos + 4])
            value, pos = data[pos + 4 : pos + 4 + size], pos + 4 + size
            field_name = TLV_NAMES.get(tag)
            param = pdu.params.get(field_name) if field_name else None
            if param is None:
                continue
            if param.type is int:
                setattr(pdu, field_name, int.from_bytes(value, "big"))
            elif param.type is str:
                setattr(pdu, field_name, value.rstrip(b"\0"))
            else:
                setattr(pdu, field_name, value)

    pdu.parse_optional_params = optional
    pdu.parse(raw)
    return pdu


class SmppClient(smpp_client.Client):
    """smpplib's client, with TLS that checks the host name, a bounded PDU reader that
    survives PDUs it does not know, and a readiness check for timed reads."""

    def __init__(self, host: str, port: int, *, timeout: float, ssl_context: ssl.SSLContext | None = None):
        super().__init__(
            host,
            port,
            timeout=timeout,
            ssl_context=ssl_context,
            logger_name=f"{__name__}.session",
            allow_unknown_opt_params=True,
        )

    def _create_socket(self):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(self.timeout)
        if self._ssl_context is None:
            return raw
        return self._ssl_context.wrap_socket(raw, server_hostname=self.host)

    def connect(self):
        try:
            if self._socket is None:
                self._socket = self._create_socket()
            self._socket.connect((self.host, self.port))
        except OSError as exc:
            self.close_socket()
            raise exceptions.ConnectionError(f"{self.host}:{self.port}: {exc}") from exc
        self.state = consts.SMPP_CLIENT_STATE_OPEN

    def close_socket(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None
        self.state = consts.SMPP_CLIENT_STATE_CLOSED

    def readable(self, timeout: float) -> bool:
        sock = self._socket
        if sock is None:
            raise exceptions.ConnectionError("not connected")
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _w, _x = select.select([sock], [], [], max(0.0, timeout))
        return bool(readable)

    def read_pdu(self):
        header = self._recv_exact(16)
        length, command_id, status, sequence = struct.unpack(">LLLL", header)
        if not 16 <= length <= MAX_PDU:
            raise exceptions.ConnectionError(f"broken PDU stream (command_length {length})")
        raw = header + (self._recv_exact(length - 16) if length > 16 else b"")
        try:
            pdu = parse_pdu(raw, self)
        except (exceptions.UnknownCommandError, struct.error, IndexError, ValueError, KeyError, TypeError):
            return Unparsed(length, command_id, status, sequence)
        if not pdu.is_error() and pdu.command in consts.STATE_SETTERS:
            self.state = consts.STATE_SETTERS[pdu.command]
        return pdu


# --- configuration --------------------------------------------------------------------
class SmppForm(ProviderConfigForm):
    host = forms.CharField(label=_("SMSC host"))
    port = forms.IntegerField(label=_("port"), min_value=1, max_value=65535, initial=2775)
    system_id = forms.CharField(label=_("login (system_id)"), max_length=15)
    password = forms.CharField(
        label=_("password"), max_length=8, widget=forms.PasswordInput(render_value=False)
    )
    system_type = forms.CharField(label=_("system_type"), max_length=12, required=False)
    source_ton = forms.IntegerField(
        label=_("sender TON"),
        min_value=0,
        max_value=6,
        required=False,
        help_text=_("Empty: 5 for an alphanumeric sender, 1 for a number."),
    )
    source_npi = forms.IntegerField(
        label=_("sender NPI"),
        min_value=0,
        max_value=18,
        required=False,
        help_text=_("Empty: 0 for an alphanumeric sender, 1 for a number."),
    )
    dest_ton = forms.IntegerField(label=_("recipient TON"), min_value=0, max_value=6, initial=1)
    dest_npi = forms.IntegerField(label=_("recipient NPI"), min_value=0, max_value=18, initial=1)
    registered_delivery = forms.BooleanField(
        label=_("request delivery receipts"), initial=True, required=False
    )
    enquire_link = forms.FloatField(
        label=_("keep-alive (enquire_link) after idle, seconds"), min_value=5, initial=30, required=False
    )
    window = forms.IntegerField(
        label=_("submit window (unanswered submit_sm at once)"),
        min_value=1,
        max_value=100,
        initial=10,
        required=False,
    )
    timeout = forms.FloatField(
        label=_("response timeout, seconds"), min_value=0.5, initial=10, required=False
    )
    poll_seconds = forms.FloatField(
        label=_("time to wait for delivery receipts per status poll, seconds"),
        min_value=0.1,
        max_value=30,
        initial=1,
        required=False,
    )
    ref16 = forms.BooleanField(label=_("16-bit reference in long messages"), required=False)
    tls = forms.BooleanField(label=_("TLS"), required=False)
    tls_verify = forms.BooleanField(
        label=_("verify the SMSC's TLS certificate"), initial=True, required=False
    )


# --- one submission -------------------------------------------------------------------
@dataclass
class Part:
    job: Job
    payload: bytes
    state: str = "queued"  # queued, sent, ok, error, lost, unsent, skipped
    status: int | None = None
    message_id: str = ""
    note: str = ""


@dataclass
class Job:
    message: OutgoingMessage
    params: dict = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    preset: SendResult | None = None
    pause_retry: float | None = None

    @property
    def failed(self) -> bool:
        return any(p.state in ("error", "lost") for p in self.parts)

    def result(self) -> SendResult:
        if self.preset is not None:
            return self.preset
        message_id, n = self.message.id, len(self.parts)
        ok = [p for p in self.parts if p.state == "ok"]
        if len(ok) == n:
            return SendResult(
                message_id,
                Outcome.ACCEPTED,
                Lifecycle.QUEUED,
                provider_message_id=ok[0].message_id,
                part_ids=[p.message_id for p in ok[1:]],
                segments=n,
            )
        partial = f" ({len(ok)} of {n} parts accepted)" if ok else ""
        errors = [p for p in self.parts if p.state == "error"]
        verdicts = [(p, *submit_outcome(p.status, self.message.attempt)) for p in errors]
        hard = [v for v in verdicts if v[1] in (Outcome.PERMANENT, Outcome.REJECTED)]
        lost = [p for p in self.parts if p.state == "lost"]
        if hard or (verdicts and not lost):
            part, outcome, retry_after, suppress = (hard or verdicts)[0]
            return SendResult(
                message_id,
                outcome,
                reason=status_text(part.status) + partial,
                retry_after=retry_after,
                segments=n,
                suppress_address=suppress,
            )
        if lost:
            return SendResult(message_id, Outcome.UNKNOWN, reason=lost[0].note + partial, segments=n)
        unsent = next(p for p in self.parts if p.state != "ok")
        return SendResult(
            message_id,
            Outcome.TEMPORARY,
            reason=(unsent.note or "not sent") + partial,
            retry_after=self.pause_retry,
            segments=n,
        )


def submit_outcome(status: int | None, attempt: int = 1) -> tuple[Outcome, float | None, bool]:
    """``(outcome, retry_after, suppress_address)`` of a ``submit_sm_resp`` status."""
    if status == THROTTLED:
        return Outcome.TEMPORARY, 1.0, False
    if status == QUEUE_FULL:  # progressive pauses, as aggregators ask: 5, 15, 45 s
        return Outcome.TEMPORARY, 5.0 * 3 ** min(max(attempt, 1) - 1, 2), False
    if status in TEMPORARY_STATUSES:
        return Outcome.TEMPORARY, None, False
    if status in PERMANENT_STATUSES:
        return Outcome.PERMANENT, None, status in SUPPRESS_STATUSES
    return Outcome.REJECTED, None, False


# --- the adapter ----------------------------------------------------------------------
@providers.register
class Smpp(Provider):
    key = "smpp"
    label = _("SMPP 3.4 (any SMSC)")
    channel = SMS
    capabilities = frozenset({"text"})
    config_form = SmppForm
    sensitive = ("password",)
    max_batch = 100
    polling = True  # receipts arrive on the bind; the periodic status poll collects them
    callbacks = False
    deduplicates = False  # submit_sm carries no client-side id an SMSC would deduplicate by
    default_rate_per_second = 20.0

    def __init__(self, settings):
        super().__init__(settings)
        get = settings.get
        self.host = get("host", "")
        self.port = int(get("port", 2775))
        self.timeout = float(get("timeout", 10))
        self.window = max(1, int(get("window", 10)))
        self.enquire_interval = float(get("enquire_link", 30))
        self.poll_seconds = float(get("poll_seconds", 1.0))
        self.ref16 = bool(get("ref16", False))
        self._lock = threading.RLock()
        self._client: SmppClient | None = None
        self._last_io = 0.0
        self._link_answered = False
        self._unbound = False
        self._stale = False
        self._pause: tuple[int, int] | None = None
        self._cooldown: tuple[float, str] | None = None
        self._pending: dict[int, Part] = {}
        self._receipts: deque[Receipt] = deque(maxlen=RECEIPT_BUFFER)
        self._known = IdIndex()
        self._waiting: set[str] | None = None
        self._ref = random.randrange(0x10000)

    # --- the contract ----------------------------------------------------------------
    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        with self._lock:
            jobs = [self._job(message) for message in batch]
            live = [job for job in jobs if job.preset is None]
            if live:
                try:
                    self._ensure_bound()
                except ProviderError as exc:
                    if len(live) == len(jobs):
                        raise
                    for job in live:
                        job.preset = SendResult(
                            job.message.id, Outcome.TEMPORARY, reason=str(exc), retry_after=exc.retry_after
                        )
                else:
                    self._submit(live)
            return [job.result() for job in jobs]

    def poll(self, provider_ids: Sequence[str]) -> list[StatusUpdate]:
        with self._lock:
            for provider_id in provider_ids:
                self._known.add(provider_id)
            waiting = set(provider_ids)
            for receipt in self._receipts:
                if receipt.final:
                    waiting.discard(self._known.resolve(receipt.message_id))
            try:
                if self._client is None and waiting:
                    self._connect()
                if self._client is not None:
                    self._waiting = waiting
                    self._pump(0)
                    if self._idle():
                        self._keepalive()
                    if waiting:
                        self._pump(self.poll_seconds, lambda: not waiting)
            except Dropped as exc:
                log.info("SMPP session to %s lost while polling: %s", self.host, exc)
                self._drop()
            except ProviderError as exc:
                log.info("SMPP poll could not bind to %s: %s", self.host, exc)
            finally:
                self._waiting = None
            return self._updates()

    def receipts(self) -> list[StatusUpdate]:
        with self._lock:
            return self._updates()

    def content_errors(self, content):
        errors = text_errors(content, limit=MAX_PARTS * 153)
        text = content.get("text") or ""
        if not errors and len(split_text(text, ref16=self.ref16)[1]) > MAX_PARTS:
            errors.append(gettext("The text needs more than %(n)s SMS parts.") % {"n": MAX_PARTS})
        return errors

    def segments(self, content):
        text = content.get("text") or ""
        return len(split_text(text, ref16=self.ref16)[1]) if text else 1

    def close(self):
        with self._lock:
            if self._client is None:
                return
            try:
                self._pump(0)  # hand over what is waiting; notice a connection already closed
                self._unbound = False
                self._write(smpp.make_pdu("unbind", client=self._client))
                self._pump(min(self.timeout, 2.0), lambda: self._unbound)
            except Dropped:
                pass
            finally:
                self._drop()

    # --- preparing a message ---------------------------------------------------------
    def _job(self, message: OutgoingMessage) -> Job:
        job = Job(message)
        text = message.content.get("text") or ""
        to = message.to.strip().removeprefix("+")
        if not text.strip():
            job.preset = SendResult(message.id, Outcome.REJECTED, reason="the message text is empty")
            return job
        if not to.isdigit() or len(to) > 20:
            job.preset = SendResult(
                message.id,
                Outcome.PERMANENT,
                reason=f"not a phone number: {message.to!r}",
                suppress_address=True,
            )
            return job
        try:
            encoded = encode_text(text, ref=self._next_ref(), ref16=self.ref16)
        except ValueError as exc:
            job.preset = SendResult(message.id, Outcome.REJECTED, reason=str(exc))
            return job
        sender = self.settings.sender.strip()
        numeric = sender.removeprefix("+").isdigit()
        if numeric:
            sender = sender.removeprefix("+")
        auto_ton, auto_npi = (1, 1) if numeric else ((5, 0) if sender else (0, 0))
        job.params = {
            "source_addr_ton": int(self.settings.get("source_ton", auto_ton)),
            "source_addr_npi": int(self.settings.get("source_npi", auto_npi)),
            "source_addr": sender,
            "dest_addr_ton": int(self.settings.get("dest_ton", 1)),
            "dest_addr_npi": int(self.settings.get("dest_npi", 1)),
            "destination_addr": to,
            "esm_class": encoded.esm_class,
            "data_coding": encoded.data_coding,
            "registered_delivery": 1 if self.settings.get("registered_delivery", True) else 0,
            "validity_period": relative_validity(message.validity_seconds),
        }
        job.parts = [Part(job, payload) for payload in encoded.payloads]
        return job

    def _next_ref(self) -> int:
        self._ref = (self._ref + 1) % (0x10000 if self.ref16 else 0x100)
        return self._ref

    # --- submitting ------------------------------------------------------------------
    def _submit(self, jobs: list[Job]) -> None:
        queue = deque(part for job in jobs for part in job.parts)
        self._pause = None
        reconnected = False
        pause: tuple[str, float | None] | None = None
        while queue or self._pending:
            try:
                while queue and len(self._pending) < self.window and pause is None:
                    part = queue[0]
                    if part.job.failed:
                        queue.popleft().state = "skipped"
                        continue
                    pdu = smpp.make_pdu(
                        "submit_sm", client=self._client, short_message=part.payload, **part.job.params
                    )
                    self._write(pdu)
                    queue.popleft()
                    part.state = "sent"
                    self._pending[pdu.sequence] = part
                if not self._pending:
                    break
                waiting = len(self._pending)
                self._pump(self.timeout, lambda n=waiting: len(self._pending) < n)
                if len(self._pending) >= waiting:
                    self._lose_pending(f"no submit_sm_resp within {self.timeout:g} s")
                    self._drop()
                    pause = (f"not sent: the SMSC stopped answering for {self.timeout:g} s", None)
                    break
                if self._pause is not None and pause is None:
                    status, attempt = self._pause
                    _o, retry_after, _s = submit_outcome(status, attempt)
                    pause = (f"not sent: the SMSC answered {status_text(status)}", retry_after)
            except Dropped as exc:
                self._lose_pending(f"connection lost before submit_sm_resp: {exc}")
                self._drop()
                if queue and not reconnected and pause is None:
                    reconnected = True
                    try:
                        self._connect()
                        continue
                    except ProviderError as err:
                        pause = (f"not sent: {err}", err.retry_after)
                else:
                    pause = pause or (f"not sent: connection lost ({exc})", None)
                break
        for part in queue:
            if part.state == "queued":
                part.state = "unsent"
                part.note = pause[0] if pause else "not sent"
                part.job.pause_retry = pause[1] if pause else None
        if self._stale:
            self._stale = False
            self._drop()  # the SMSC says we are not bound: start afresh next time

    def _lose_pending(self, note: str) -> None:
        for part in self._pending.values():
            part.state, part.note = "lost", note
        self._pending.clear()

    # --- the session -----------------------------------------------------------------
    def _ensure_bound(self) -> None:
        if self._client is not None:
            try:
                self._pump(0)  # take what is waiting and notice a closed connection
                if self._idle():
                    self._keepalive()
                return
            except Dropped as exc:
                log.info("SMPP session to %s lost, binding again: %s", self.host, exc)
                self._drop()
        self._connect()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.settings.get("tls", False):
            return None
        context = ssl.create_default_context()
        if not self.settings.get("tls_verify", True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> None:
        now = time.monotonic()
        if self._cooldown and now < self._cooldown[0]:
            raise ProviderError(self._cooldown[1], retry_after=round(self._cooldown[0] - now, 1))
        client = SmppClient(self.host, self.port, timeout=self.timeout, ssl_context=self._ssl_context())
        try:
            client.connect()
            client.bind_transceiver(
                system_id=self.settings.get("system_id", ""),
                password=self.settings.get("password", ""),
                system_type=self.settings.get("system_type", ""),
                addr_ton=0,
                addr_npi=0,
                address_range="",
            )
        except exceptions.PDUError as exc:
            client.close_socket()
            status = exc.args[1] if len(exc.args) > 1 else None
            self._fail(f"the SMSC refused bind_transceiver: {status_text(status)}", BIND_RETRY_SECONDS)
        except (exceptions.ConnectionError, OSError) as exc:
            client.close_socket()
            detail = str(exc) or "no answer to bind_transceiver"
            self._fail(f"cannot bind to the SMSC at {self.host}:{self.port}: {detail}", CONNECT_RETRY_SECONDS)
        self._client = client
        self._cooldown = None
        self._last_io = time.monotonic()

    def _fail(self, reason: str, retry_after: float) -> NoReturn:
        self._cooldown = (time.monotonic() + retry_after, reason)
        raise ProviderError(reason, temporary=True, retry_after=retry_after)

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close_socket()

    def _idle(self) -> bool:
        return time.monotonic() - self._last_io >= self.enquire_interval

    def _keepalive(self) -> None:
        self._link_answered = False
        self._write(smpp.make_pdu("enquire_link", client=self._client))
        self._pump(self.timeout, lambda: self._link_answered)
        if not self._link_answered:
            raise Dropped(f"no enquire_link_resp within {self.timeout:g} s")

    def _write(self, pdu) -> None:
        if self._client is None:
            raise Dropped("not connected")
        try:
            self._client.send_pdu(pdu)
        except (exceptions.ConnectionError, exceptions.PDUError, OSError) as exc:
            raise Dropped(str(exc) or exc.__class__.__name__) from exc
        self._last_io = time.monotonic()

    def _pump(self, seconds: float, done: Callable[[], bool] | None = None) -> None:
        """Read and act on PDUs for up to ``seconds`` or until ``done()``; with 0, only what
        is already waiting."""
        deadline = time.monotonic() + seconds
        handled = 0
        while not (done is not None and done()):
            remaining = deadline - time.monotonic()
            if remaining <= 0 and handled >= 1000:
                return
            client = self._client
            if client is None:
                raise Dropped("not connected")
            try:
                if not client.readable(remaining):
                    return
                pdu = client.read_pdu()
            except (exceptions.ConnectionError, exceptions.PDUError, OSError) as exc:
                raise Dropped(str(exc) or "connection closed by the SMSC") from exc
            self._last_io = time.monotonic()
            handled += 1
            self._dispatch(pdu)

    def _respond(self, request, command: str, status: int = consts.SMPP_ESME_ROK) -> None:
        response = smpp.make_pdu(command, client=self._client, status=status)
        response.sequence = request.sequence
        self._write(response)

    def _dispatch(self, pdu) -> None:
        command = pdu.command
        if command in ("submit_sm_resp", "generic_nack"):
            part = self._pending.pop(pdu.sequence, None)
            if part is None:
                log.info("SMPP %s for an unknown sequence %s (%s)", command, pdu.sequence, pdu.status)
            elif pdu.status == consts.SMPP_ESME_ROK and command == "submit_sm_resp":
                part.state, part.message_id = "ok", _text(pdu.message_id)
                self._known.add(part.message_id)
            else:
                part.state = "error"
                part.status = pdu.status if pdu.status else consts.SMPP_ESME_RUNKNOWNERR
                if part.status in PAUSE_STATUSES and self._pause is None:
                    self._pause = (part.status, part.job.message.attempt)
                if part.status == INVALID_BIND_STATUS:
                    self._stale = True
        elif command == "deliver_sm":
            receipt = receipt_from(pdu)
            if receipt is not None:
                self._receipts.append(receipt)
                if self._waiting and receipt.final:
                    self._waiting.discard(self._known.resolve(receipt.message_id))
            else:
                log.info("SMPP deliver_sm that is not a delivery receipt ignored")
            self._respond(pdu, "deliver_sm_resp")
        elif command == "enquire_link":
            self._respond(pdu, "enquire_link_resp")
        elif command == "enquire_link_resp":
            self._link_answered = True
        elif command == "unbind":
            self._respond(pdu, "unbind_resp")
            raise Dropped("the SMSC unbound the session")
        elif command == "unbind_resp":
            self._unbound = True
        elif isinstance(pdu, Unparsed):
            if pdu.command_id == DELIVER_SM:  # never nack a deliver_sm: some SMSCs unbind for it
                self._respond(pdu, "deliver_sm_resp")
            elif not pdu.command_id & 0x80000000:
                nack = smpp.make_pdu("generic_nack", client=self._client, status=consts.SMPP_ESME_RINVCMDID)
                nack.sequence = pdu.sequence
                self._write(nack)
            log.info("SMPP PDU 0x%08X not understood", pdu.command_id)
        else:
            log.info("SMPP %s ignored", command)

    def _updates(self) -> list[StatusUpdate]:
        updates = []
        while self._receipts:
            receipt = self._receipts.popleft()
            updates.append(
                StatusUpdate(
                    provider_message_id=self._known.resolve(receipt.message_id) or receipt.message_id,
                    status=STAT_MAP.get(receipt.stat, Lifecycle.UNKNOWN),
                    reason=receipt.reason if receipt.stat != "DELIVRD" else "",
                )
            )
        return updates
