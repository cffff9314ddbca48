"""What every provider adapter is: the contract between the dispatch pipeline and a provider.

An adapter is a class registered in ``gateways.providers.providers`` with a stable ``key``
(persisted in ``Gateway.provider``), a human ``label``, the ``channel`` it sends, its
``capabilities`` (what a message on it may contain), a configuration form whose
``sensitive`` fields are stored encrypted, and four operations:

* ``send(batch) -> results``: one ``SendResult`` per ``OutgoingMessage``, in any order,
  never raising for a per-message problem (a connection-level failure may raise
  ``ProviderError``; the pipeline then treats the whole batch as a temporary failure);
* ``parse_callback(request) -> updates``: the provider's status callback turned into
  ``StatusUpdate`` rows (raise ``CallbackRejected`` for a request that fails the
  provider's authentication scheme);
* ``poll(provider_ids) -> updates``: for providers that only offer polling;
* ``content_errors(content) -> errors``: what the content may not contain on this
  provider; called when a template or mailing is saved, not at send time.

An adapter instance lives as long as its gateway's settings are unchanged and is reused
across batches in one process, so connections (SMTP sessions, HTTP keep-alive, SMPP binds,
OAuth tokens) are kept between batches. ``close()`` releases them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from django import forms
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

SMS, EMAIL, PUSH, VIBER, SOCIAL = "sms", "email", "push", "viber", "social"
CHANNELS = (SMS, EMAIL, PUSH, VIBER, SOCIAL)
CHANNEL_LABELS = {
    SMS: _("SMS"),
    EMAIL: _("Email"),
    PUSH: _("Push"),
    VIBER: _("Viber"),
    SOCIAL: _("Social networks"),
}


class Outcome(enum.StrEnum):
    """What one send attempt ended in, as far as the provider told us at once."""

    ACCEPTED = "accepted"  # taken by the provider; ``status`` says queued or sent
    TEMPORARY = "temporary"  # may succeed later: retry with backoff (honour retry_after)
    PERMANENT = "permanent"  # will not succeed for this message and address
    REJECTED = "rejected"  # the provider refused the content or the sender
    UNKNOWN = "unknown"  # sent, but the answer was lost (timeout after writing the request)


class Lifecycle(enum.StrEnum):
    """The statuses a provider reports, mapped from each provider's own vocabulary."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    FAILED_TEMPORARY = "failed_temporary"
    FAILED = "failed"
    UNDELIVERABLE = "undeliverable"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message as an adapter sees it: nothing of the database, only what to send.

    ``ref`` is our own stable reference of the message (the same on every attempt): an
    adapter passes it to the provider wherever the protocol carries a client-side id, so
    a provider that deduplicates by it never delivers a retried message twice.

    ``content`` keys by channel: sms ``text``; email ``subject``, ``text``, ``html``,
    ``preheader``, ``headers`` (extra headers), ``images`` (list of {cid, content_type,
    data(base64)}); push ``title``, ``body``, ``image``, ``link``, ``data``; viber ``text``,
    ``image``, ``button_text``, ``button_url``; social ``template_id``, ``data``, ``text``.
    """

    id: int
    ref: str
    channel: str
    to: str
    content: dict[str, Any]
    marketing: bool = False
    attempt: int = 1
    validity_seconds: int | None = None
    unsubscribe_url: str = ""
    platform: str = ""  # push: android / ios / huawei / ...


@dataclass
class SendResult:
    message_id: int
    outcome: Outcome
    status: Lifecycle = Lifecycle.SENT
    provider_message_id: str = ""
    part_ids: list[str] = field(default_factory=list)  # further provider ids (SMS segments)
    reason: str = ""
    retry_after: float | None = None
    segments: int = 1
    retire_address: bool = False  # push token no longer valid: stop using it
    suppress_address: bool = False  # hard bounce / unknown number: suppress the address


@dataclass
class StatusUpdate:
    provider_message_id: str
    status: Lifecycle
    at: datetime | None = None
    reason: str = ""
    url: str = ""  # clicked link
    suppress_address: bool = False
    # Our message ref, when the provider echoes it: a status that arrives before the
    # send's own answer was written still finds its message.
    ref: str = ""


class ProviderError(Exception):
    """A failure of the whole batch (connection refused, bind failed). ``temporary`` says
    whether the pipeline should retry the batch later."""

    def __init__(self, message: str, *, temporary: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.temporary = temporary
        self.retry_after = retry_after


class CallbackRejected(Exception):
    """A callback that failed the provider's authentication scheme or could not be parsed."""


class ProviderConfigForm(forms.Form):
    """Base of each provider's configuration form. Sensitive fields are listed on the
    provider; they are rendered empty and keep their stored value when left blank."""


@dataclass
class GatewaySettings:
    """What an adapter receives: its configuration, decrypted secrets, and the sender."""

    gateway_id: int | None
    config: dict[str, Any]
    sender: str = ""
    callback_url: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key)
        return default if value in (None, "") else value


class Provider:
    key: ClassVar[str]
    label: ClassVar[str | Promise]
    channel: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    config_form: ClassVar[type[forms.Form]] = ProviderConfigForm
    sensitive: ClassVar[tuple[str, ...]] = ()
    max_batch: ClassVar[int] = 100
    # The provider discards a second request carrying the same ``OutgoingMessage.ref``.
    deduplicates: ClassVar[bool] = False
    # The provider reports statuses by callback / only by polling.
    callbacks: ClassVar[bool] = False
    polling: ClassVar[bool] = False
    default_rate_per_second: ClassVar[float] = 50.0

    def __init__(self, settings: GatewaySettings):
        self.settings = settings

    # --- the contract ----------------------------------------------------------------
    def send(self, batch: Sequence[OutgoingMessage]) -> list[SendResult]:
        raise NotImplementedError

    def parse_callback(self, request) -> list[StatusUpdate]:
        raise CallbackRejected(_("This provider sends no callbacks."))

    def poll(self, provider_ids: Sequence[str]) -> list[StatusUpdate]:
        return []

    def receipts(self) -> list[StatusUpdate]:
        """Statuses the adapter has already received on its own connection (SMPP
        delivery receipts that arrive while sending); the pipeline applies them after
        each batch. Never blocks."""
        return []

    def content_errors(self, content: dict[str, Any]) -> list[str]:
        return []

    def segments(self, content: dict[str, Any]) -> int:
        """Billing units of one message (SMS segments; 1 elsewhere)."""
        return 1

    def close(self) -> None:
        pass

    # --- helpers ---------------------------------------------------------------------
    @classmethod
    def channel_label(cls):
        return CHANNEL_LABELS[cls.channel]


class ProviderRegistry:
    def __init__(self) -> None:
        self._providers: dict[str, type[Provider]] = {}

    def register(self, cls: type[Provider]) -> type[Provider]:
        if cls.key in self._providers:
            raise ValueError(f"provider {cls.key!r} is registered twice")
        if cls.channel not in CHANNELS:
            raise ValueError(f"provider {cls.key!r} names an unknown channel {cls.channel!r}")
        self._providers[cls.key] = cls
        return cls

    def get(self, key: str) -> type[Provider]:
        return self._providers[key]

    def __contains__(self, key: str) -> bool:
        return key in self._providers

    def __iter__(self) -> Iterable[type[Provider]]:
        return iter(self._providers.values())

    def choices(self) -> list[tuple[str, str]]:
        return sorted(
            ((p.key, f"{p.label} ({p.channel_label()})") for p in self._providers.values()),
            key=lambda c: str(c[1]),
        )

    def for_channel(self, channel: str) -> list[type[Provider]]:
        return [p for p in self._providers.values() if p.channel == channel]


providers = ProviderRegistry()
