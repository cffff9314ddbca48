"""Reads: the compiled active offers, kept in each process.

``active_offers(events)`` reads the offers' version (at most once a second per process);
the offers are recompiled only when it changed (any offer saved or its status changed)."""

from __future__ import annotations

import dataclasses
import threading

from loyalty.versions import Version
from offers.catalog import offer_actions, offer_filters
from offers.engine import CompiledOffer, CompiledRule
from offers.models import Offer, OfferStatus

_lock = threading.Lock()
_state: dict = {"version": None, "by_event": {}, "by_events": {}, "needs": frozenset(), "by_pos": {}}


# A change made in another process reaches this one within a second (the process that
# made it knows at once).
OFFERS_VERSION = Version("offers.OffersState", seconds=1.0)


def offers_version() -> int:
    return OFFERS_VERSION.current()


def compile_offer(offer: Offer) -> CompiledOffer:
    """The offer's rules as filter and action instances; each knows when its offer
    starts (counters of "the offer's period" count from there)."""
    rules = [
        CompiledRule(
            filters=[offer_filters.get(f["key"])(f.get("params") or {}) for f in rule.get("filters", [])],
            actions=[offer_actions.get(a["key"])(a.get("params") or {}) for a in rule.get("actions", [])],
        )
        for rule in offer.rules
    ]
    for rule in rules:
        for entry in (*rule.filters, *rule.actions):
            entry.offer_starts_at = offer.starts_at
    return CompiledOffer(
        id=offer.pk,
        name=offer.name,
        event=offer.event_type,
        priority=offer.priority,
        stop_further=offer.stop_further,
        starts_at=offer.starts_at,
        ends_at=offer.ends_at,
        audience_id=offer.audience_id,
        rules=rules,
        version=offer.version,
    )


def _rebuild(version: int) -> None:
    by_event: dict[str, list[CompiledOffer]] = {}
    needs: set[str] = set()
    for offer in Offer.objects.filter(status=OfferStatus.ACTIVE).order_by("priority", "pk"):
        compiled = compile_offer(offer)
        by_event.setdefault(offer.event_type, []).append(compiled)
        if offer.audience_id:
            needs.add("audiences")
        for rule in compiled.rules:
            for flt in rule.filters:
                needs |= flt.needs
    _state.update(version=version, by_event=by_event, by_events={}, needs=frozenset(needs), by_pos={})


def active_offers(events: tuple[str, ...] | list[str]) -> tuple[list[CompiledOffer], frozenset[str]]:
    """The active offers of these events in priority order, and the member data their
    filters need."""
    version = offers_version()
    key = tuple(events)
    with _lock:
        if _state["version"] != version:
            _rebuild(version)
        # Sorted once per version (a till request would sort them all again).
        offers = _state["by_events"].get(key)
        if offers is None:
            offers = _state["by_events"][key] = sorted(
                (o for e in events for o in _state["by_event"].get(e, [])), key=lambda o: (o.priority, o.id)
            )
        needs = _state["needs"]
    return list(offers), needs


def offers_cache_clear() -> None:
    """Forget the compiled offers (tests roll the version back with the database)."""
    with _lock:
        _state.update(version=None, by_event={}, by_events={}, needs=frozenset(), by_pos={})


def member_counters_panel(member) -> dict:
    """The member page's counters panel: each counter's value in its current period."""
    from django.utils import timezone
    from django.utils.translation import gettext as _

    from offers.context import local_time, period_start
    from offers.models import Counter, CounterValue

    local = local_time(timezone.now(), member.time_zone)
    values = {
        (v["counter_id"], v["period_start"]): v["value"]
        for v in CounterValue.objects.filter(member=member).values("counter_id", "period_start", "value")
    }
    rows = []
    for counter in Counter.objects.all():
        start = period_start(counter.period, local)
        value = values.get((counter.pk, start))
        if value is not None:
            rows.append([counter.name, counter.get_period_display(), value])
    return {
        "title": _("Counters"),
        "columns": [_("Counter"), _("Period"), _("Value")],
        "rows": rows,
        "empty": _("No counters yet."),
    }


def _reaches(offer: CompiledOffer, pos_ctx) -> CompiledOffer | None:
    """The offer as seen at one point of sale: rules whose point-of-sale filters fail
    there are dropped, the filters that pass are dropped from the rules (they would pass
    on every receipt); ``None`` when no rule is left."""
    rules = []
    for rule in offer.rules:
        static = [f for f in rule.filters if f.pos_static]
        if all(f.passes(pos_ctx) for f in static):
            rules.append(CompiledRule([f for f in rule.filters if not f.pos_static], rule.actions))
    if not rules:
        return None
    if len(rules) == len(offer.rules) and all(
        len(a.filters) == len(b.filters) for a, b in zip(rules, offer.rules, strict=True)
    ):
        return offer
    return dataclasses.replace(offer, rules=rules)


def offers_at(
    events: tuple[str, ...] | list[str], point_of_sale
) -> tuple[list[CompiledOffer], frozenset[str]]:
    """``active_offers`` narrowed to one point of sale, computed once per point of sale
    and offers version (the index by point of sale)."""
    from offers.engine import Context

    offers, needs = active_offers(events)
    key = (
        tuple(events),
        point_of_sale.pk,
        point_of_sale.kind,
        repr(sorted((point_of_sale.attributes or {}).items())),
    )
    with _lock:
        cached = _state["by_pos"].get(key)
    if cached is not None:
        return cached, needs
    pos_ctx = Context(
        event="",
        now=None,
        local_now=None,
        point_of_sale_id=point_of_sale.pk,
        partner_id=point_of_sale.partner_id,
        sales_channel=point_of_sale.kind,
        pos_attributes=point_of_sale.attributes or {},
    )
    narrowed = [r for r in (_reaches(o, pos_ctx) for o in offers) if r is not None]
    with _lock:
        if len(_state["by_pos"]) > 10000:
            _state["by_pos"].clear()
        _state["by_pos"][key] = narrowed
    return narrowed, needs
