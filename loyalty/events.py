"""The member event catalog and the handler registry.

One catalog of event types serves offers, chains, segments and analytics. Each entry has a
stable ``key`` (persisted in ``MemberEvent.event_type``: renaming one needs a data
migration), a human ``label`` and a ``group``.

Other apps react to events without ``loyalty`` importing them: they register a handler in
their ``AppConfig.ready()``::

    from loyalty.events import event_handlers

    @event_handlers.register("purchase_completed")
    def start_chains(event: MemberEvent) -> None: ...

``loyalty.services.events.event_record`` saves the event and calls every handler for its
type (and the ``"*"`` handlers) after the surrounding transaction commits, so a rolled-back
operation triggers nothing. Handlers run in the recording process and should hand slow
work to Celery. Derived figures that must never miss an event (a member's purchase
totals) register ``in_transaction=True`` and are written with it.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class EventType:
    key: str
    label: str | Promise
    group: str


class EventTypeRegistry:
    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}

    def add(self, key: str, label: str | Promise, group: str) -> EventType:
        if key in self._types:
            raise ValueError(f"event type {key!r} is registered twice")
        self._types[key] = EventType(key, label, group)
        return self._types[key]

    def __contains__(self, key: str) -> bool:
        return key in self._types

    def __iter__(self):
        return iter(self._types.values())

    def get(self, key: str) -> EventType:
        return self._types[key]

    def label(self, key: str) -> str | Promise:
        return self._types[key].label if key in self._types else key

    def choices(self) -> list[tuple[str, str | Promise]]:
        return [(t.key, t.label) for t in self._types.values()]


event_types = EventTypeRegistry()

PURCHASE, PROFILE, SOCIAL, PROGRAM, WEB = "purchase", "profile", "social", "program", "web"

for _key, _label, _group in [
    # Purchase flow (registered by the POS API).
    ("discount_calculated", _("Discount calculation"), PURCHASE),
    ("bonus_calculated", _("Bonus points calculation"), PURCHASE),
    ("bonus_paid", _("Payment with bonuses"), PURCHASE),
    ("balance_requested", _("Balance request"), PURCHASE),
    ("card_issued", _("Card issuance"), PURCHASE),
    ("purchase_completed", _("Purchase completed"), PURCHASE),
    ("purchase_refunded", _("Purchase refunded"), PURCHASE),
    ("friend_purchase", _("Purchase by a friend"), PURCHASE),
    # Profile and registration.
    ("card_activated", _("Card activation"), PROFILE),
    ("card_blocked", _("Card blocked"), PROFILE),
    ("card_replaced", _("Card replaced"), PROFILE),
    ("registration_completed", _("Registration completed"), PROFILE),
    ("questionnaire_filled", _("Questionnaire filled"), PROFILE),
    ("phone_bound", _("Phone number bound"), PROFILE),
    ("email_bound", _("Email bound"), PROFILE),
    ("consent_changed", _("Consent changed"), PROFILE),
    ("app_installed", _("Mobile app installed"), PROFILE),
    # Social networks.
    ("social_profile_linked", _("Social profile linked"), SOCIAL),
    ("social_activity", _("Social activity"), SOCIAL),
    ("social_group_joined", _("Joined a social group"), SOCIAL),
    ("social_group_left", _("Left a social group"), SOCIAL),
    ("social_activity_deleted", _("Social activity deleted"), SOCIAL),
    # Program.
    ("friend_invited", _("Friend invited"), PROGRAM),
    ("status_changed", _("Status changed"), PROGRAM),
    ("status_calculated", _("Status calculated"), PROGRAM),
    ("member_blocked", _("Member blocked"), PROGRAM),
    ("bonus_adjusted", _("Bonuses adjusted by an operator"), PROGRAM),
    # Website and tracker.
    ("website_visit", _("Website visit"), WEB),
    ("product_viewed", _("Product viewed"), WEB),
    ("cart_abandoned", _("Cart abandoned"), WEB),
    ("order_cancelled", _("Order cancelled"), WEB),
]:
    event_types.add(_key, _label, _group)


Handler = Callable[["object"], None]


class EventHandlerRegistry:
    """Explicit subscriptions: event type key (or ``"*"``) → handlers, in registration
    order. A handler registered ``in_transaction=True`` runs inside the transaction that
    records the event, at once: for figures that must move with the event or not at
    all (it must be quick, touch only the database, and raise only when the recording
    should fail too)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._in_transaction: dict[str, list[Handler]] = defaultdict(list)

    def register(self, *keys: str, in_transaction: bool = False) -> Callable[[Handler], Handler]:
        for key in keys:
            if key != "*" and key not in event_types:
                raise ValueError(f"unknown event type {key!r}")
        handlers = self._in_transaction if in_transaction else self._handlers

        def decorator(handler: Handler) -> Handler:
            for key in keys:
                if handler not in handlers[key]:
                    handlers[key].append(handler)
            return handler

        return decorator

    def unregister(self, key: str, handler: Handler) -> None:
        for handlers in (self._handlers, self._in_transaction):
            if handler in handlers[key]:
                handlers[key].remove(handler)

    def handlers_for(self, key: str) -> list[Handler]:
        """The handlers to call after the recording transaction commits."""
        return [*self._handlers.get(key, ()), *self._handlers.get("*", ())]

    def in_transaction_for(self, key: str) -> list[Handler]:
        """The handlers to call inside the recording transaction."""
        return [*self._in_transaction.get(key, ()), *self._in_transaction.get("*", ())]


event_handlers = EventHandlerRegistry()
