"""SMTP: any mail server or relay (the company's own MTA, a provider's SMTP relay).

One SMTP session is kept open across batches (the adapter lives as long as its gateway's
settings) and re-opened once, transparently, when the server has closed it in between.
Every message is its own transaction (``MAIL FROM``, one ``RCPT TO``, ``DATA``), so every
reply classifies exactly one message:

* 2xx: handed over, ``sent``; the provider id is the message's ``Message-ID``;
* 4xx: temporary, retried later;
* 5xx: permanent. A hard bounce of the address (enhanced status 5.1.x or 5.2.1, a bare
  550 / 551 / 553) also suppresses the address; a policy refusal (5.7.x: spam, DMARC,
  reputation) does not, since the recipient is fine and the sender has to be fixed;
* a refused sender (``MAIL FROM``): temporary on 4xx, a rejection of the sender on 5xx.

When the connection cannot be opened (refused, TLS, authentication) or drops, the rest of
the batch is a temporary failure; when it drops after the message was handed over but
before the server answered, that message's outcome is unknown (it may have been sent).
SMTP has no idempotency key, so the provider does not deduplicate retries.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
import threading
from collections.abc import Sequence
from email.utils import parseaddr

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from gateways.providers._email import BuiltEmail, mime_bytes
from gateways.providers.base import (
    EMAIL,
    Lifecycle,
    Outcome,
    OutgoingMessage,
    Provider,
    ProviderConfigForm,
    SendResult,
    providers,
)

NONE, STARTTLS, SSL = "none", "starttls", "ssl"
SECURITY_CHOICES = [
    (NONE, _("none (plain text)")),
    (STARTTLS, _("STARTTLS")),
    (SSL, _("SSL/TLS (implicit)")),
]
DEFAULT_PORTS = {NONE: 25, STARTTLS: 587, SSL: 465}
DEFAULT_TIMEOUT = 30.0
REASON_LIMIT = 300

# "5.1.1" at the start of a reply text (RFC 3463 enhanced status code).
ENHANCED_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# A bare 550 without an enhanced code is a policy refusal when its text says so.
POLICY_WORDS = re.compile(
    r"spam|policy|block|blacklist|listed|reputation|rate|relay|dmarc|spf|dkim|authenticat", re.IGNORECASE
)


class SmtpForm(ProviderConfigForm):
    host = forms.CharField(label=_("server"), max_length=255)
    port = forms.IntegerField(
        label=_("port"),
        min_value=1,
        max_value=65535,
        initial=587,
        required=False,
        help_text=_("25 without encryption, 587 with STARTTLS, 465 with SSL/TLS when empty."),
    )
    security = forms.ChoiceField(label=_("connection security"), choices=SECURITY_CHOICES, initial=STARTTLS)
    username = forms.CharField(label=_("user name"), max_length=255, required=False)
    password = forms.CharField(
        label=_("password"), required=False, widget=forms.PasswordInput(render_value=False)
    )
    timeout = forms.FloatField(
        label=_("timeout, seconds"), min_value=1, initial=DEFAULT_TIMEOUT, required=False
    )
    verify_tls = forms.BooleanField(
        label=_("verify the server's TLS certificate"),
        initial=True,
        required=False,
        help_text=_("Turn off only for a server with a self-signed certificate on a trusted network."),
    )
    local_hostname = forms.CharField(
        label=_("HELO name"),
        max_length=255,
        required=False,
        help_text=_("The name this system introduces itself with; the machine's own name when empty."),
    )
    message_id_domain = forms.CharField(
        label=_("Message-ID domain"),
        max_length=255,
        required=False,
        help_text=_("The domain of the sender address when empty."),
    )


def classify(code: int, text: str) -> tuple[Outcome, bool]:
    """The outcome of a reply to ``RCPT TO`` or ``DATA``, and whether it is a hard bounce of
    the address (the address should be suppressed)."""
    if 200 <= code < 300:
        return Outcome.ACCEPTED, False
    if code < 500:
        return Outcome.TEMPORARY, False
    enhanced = ENHANCED_STATUS.match(text)
    if enhanced:
        _class, subject, detail = enhanced.groups()
        if subject == "7":  # security or policy: the address itself is fine
            return Outcome.PERMANENT, False
        if subject == "1" and detail not in ("7", "8"):  # 5.1.7 / 5.1.8 concern the sender
            return Outcome.PERMANENT, True
        if (subject, detail) == ("2", "1"):  # mailbox disabled
            return Outcome.PERMANENT, True
        return Outcome.PERMANENT, False
    if code in (550, 551, 553) and not POLICY_WORDS.search(text):
        return Outcome.PERMANENT, True
    return Outcome.PERMANENT, False


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return " ".join(f"{code} {text}".split())[:REASON_LIMIT]


class _ConnectionFailed(Exception):
    """The session failed: this message ends in ``outcome``, the rest of the batch is
    temporary."""

    def __init__(self, reason: str, outcome: Outcome = Outcome.TEMPORARY):
        super().__init__(reason)
        self.reason = reason[:REASON_LIMIT]
        self.outcome = outcome


class _Dropped(Exception):
    """The session broke before the message was handed over: safe to try again."""


@providers.register
class SmtpProvider(Provider):
    key = "smtp"
    label = _("SMTP server")
    channel = EMAIL
    capabilities = frozenset({"text", "html", "images"})
    config_form = SmtpForm
    sensitive = ("password",)
    max_batch = 200
    deduplicates = False
    default_rate_per_second = 20.0

    def __init__(self, settings):
        super().__init__(settings)
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    # --- the contract ----------------------------------------------------------------
    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        with self._lock:
            for index, message in enumerate(batch):
                try:
                    results.append(self._deliver(message))
                except _ConnectionFailed as exc:
                    results.append(SendResult(message.id, exc.outcome, reason=exc.reason))
                    results += [
                        SendResult(m.id, Outcome.TEMPORARY, reason=exc.reason) for m in batch[index + 1 :]
                    ]
                    break
        return results

    def content_errors(self, content):
        errors = []
        if not str(content.get("subject") or "").strip():
            errors.append(gettext("The email subject is empty."))
        if not (str(content.get("text") or "").strip() or str(content.get("html") or "").strip()):
            errors.append(gettext("The email has neither a text nor an HTML part."))
        return errors

    def close(self) -> None:
        with self._lock:
            smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    # --- one message -----------------------------------------------------------------
    @property
    def _envelope_from(self) -> str:
        return parseaddr(self.settings.sender)[1] or self.settings.sender

    def _deliver(self, message: OutgoingMessage) -> SendResult:
        envelope_from = self._envelope_from
        if "@" not in envelope_from:
            raise _ConnectionFailed(gettext("The gateway has no sender address."))
        domain = self.settings.get("message_id_domain") or envelope_from.rpartition("@")[2]
        try:
            mime = mime_bytes(message, sender=self.settings.sender, domain=domain)
        except (ValueError, TypeError, KeyError) as exc:  # a malformed header or image
            reason = gettext("The message cannot be built: %(error)s") % {"error": exc}
            return SendResult(message.id, Outcome.REJECTED, reason=reason[:REASON_LIMIT])
        for attempt in (1, 2):
            fresh = self._smtp is None
            smtp = self._session()
            try:
                return self._transaction(smtp, message, mime, envelope_from)
            except _Dropped as exc:
                self._discard()
                if fresh or attempt == 2:
                    raise _ConnectionFailed(
                        gettext("The mail server closed the connection: %(error)s") % {"error": exc}
                    ) from exc
                # The server closed an idle session between batches: open a new one.
        raise AssertionError("unreachable")

    def _transaction(
        self, smtp: smtplib.SMTP, message: OutgoingMessage, mime: BuiltEmail, envelope_from: str
    ) -> SendResult:
        provider_id = mime.message_id
        international = not (envelope_from.isascii() and message.to.isascii())
        if international and not smtp.has_extn("smtputf8"):
            return SendResult(
                message.id,
                Outcome.PERMANENT,
                reason=gettext("The mail server does not accept non-ASCII addresses (no SMTPUTF8)."),
            )
        options = ["SMTPUTF8"] if international else []
        payload = mime.data  # 7-bit clean: no BODY=8BITMIME needed

        try:
            code, reply = smtp.mail(envelope_from, options)
        except (OSError, smtplib.SMTPException) as exc:
            raise _Dropped(str(exc) or exc.__class__.__name__) from exc
        if code == 421:
            raise _Dropped(_reply(code, reply))
        if code != 250:
            self._reset(smtp)
            outcome = Outcome.TEMPORARY if code < 500 else Outcome.REJECTED
            return SendResult(
                message.id,
                outcome,
                reason=gettext("sender refused: %(reply)s") % {"reply": _reply(code, reply)},
            )

        try:
            code, reply = smtp.rcpt(message.to)
        except (OSError, smtplib.SMTPException) as exc:
            raise _Dropped(str(exc) or exc.__class__.__name__) from exc
        if code == 421:
            raise _Dropped(_reply(code, reply))
        if code not in (250, 251):
            self._reset(smtp)
            return self._refused(message, code, reply)

        try:
            code, reply = smtp.data(payload)
        except smtplib.SMTPDataError as exc:  # the DATA command itself was refused
            self._reset(smtp)
            return self._refused(message, exc.smtp_code, exc.smtp_error)
        except (OSError, smtplib.SMTPException) as exc:
            self._discard()
            raise _ConnectionFailed(
                gettext("The connection dropped while the message was handed over: %(error)s")
                % {"error": str(exc) or exc.__class__.__name__},
                Outcome.UNKNOWN,
            ) from exc
        if code == 421:
            self._discard()
        if 200 <= code < 300:
            return SendResult(message.id, Outcome.ACCEPTED, Lifecycle.SENT, provider_message_id=provider_id)
        return self._refused(message, code, reply)

    @staticmethod
    def _refused(message: OutgoingMessage, code: int, reply: bytes | str) -> SendResult:
        text = _reply(code, reply)
        outcome, hard_bounce = classify(code, text.partition(" ")[2])
        return SendResult(message.id, outcome, reason=text, suppress_address=hard_bounce)

    def _reset(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._discard()

    # --- the session -----------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.settings.get("verify_tls", True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _session(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        security = self.settings.get("security", STARTTLS)
        host = self.settings.get("host", "localhost")
        port = int(self.settings.get("port", DEFAULT_PORTS.get(security, 25)))
        timeout = float(self.settings.get("timeout", DEFAULT_TIMEOUT))
        local_hostname = self.settings.get("local_hostname") or None
        where = {"host": host, "port": port}
        smtp = None
        try:
            if security == SSL:
                smtp = smtplib.SMTP_SSL(
                    host, port, local_hostname=local_hostname, timeout=timeout, context=self._tls_context()
                )
            else:
                smtp = smtplib.SMTP(host, port, local_hostname=local_hostname, timeout=timeout)
            smtp.ehlo_or_helo_if_needed()
            if security == STARTTLS:
                if not smtp.has_extn("starttls"):
                    raise _ConnectionFailed(
                        gettext("The mail server %(host)s:%(port)s does not offer STARTTLS.") % where
                    )
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            username = self.settings.get("username")
            if username:
                if not smtp.has_extn("auth"):
                    raise _ConnectionFailed(
                        gettext("The mail server %(host)s:%(port)s offers no authentication (AUTH).") % where
                    )
                smtp.login(username, self.settings.get("password", ""))
        except _ConnectionFailed:
            _close_quietly(smtp)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(smtp)
            raise _ConnectionFailed(
                gettext("Authentication failed at the mail server: %(reply)s")
                % {"reply": _reply(exc.smtp_code, exc.smtp_error)}
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            _close_quietly(smtp)
            raise _ConnectionFailed(
                gettext("The TLS certificate of %(host)s is not trusted: %(error)s")
                % {**where, "error": exc.verify_message or exc}
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(smtp)
            raise _ConnectionFailed(
                gettext("Cannot connect to the mail server %(host)s:%(port)s: %(error)s")
                % {**where, "error": str(exc) or exc.__class__.__name__}
            ) from exc
        self._smtp = smtp
        return smtp

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        _close_quietly(smtp)


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()
