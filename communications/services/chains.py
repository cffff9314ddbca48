"""Chains: saving and switching them, starting and ending members' passes on events,
advancing the due passes set-wise, and the report.

Invariants:

* A member is at most once in a chain at a time: the partial unique constraint on active
  entries; entries are inserted with ``ignore_conflicts`` so a concurrent second start is
  a no-op rather than an error. ``(chain, member, occurrence)`` is unique too, so one
  event never starts a chain twice.
* Everything a pass needs is in its ``ChainEntry`` row (step, due time, anchors): a
  crash loses nothing. ``chains_advance`` works per chunk of one step of one chain in one
  transaction that locks the chunk's rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
  two runs take different chunks); a crash re-runs at most that chunk, and the steps'
  side effects are idempotent per entry (messages by their occurrence, the entry id;
  bonuses by their idempotency key).
* Moves only touch entries still active on the step being run, so an entry a turn-off
  event ended meanwhile stays ended.
* The event handler runs on every member event (purchases included): it reads a
  per-process index of which chains listen to which event (``INDEX_TTL_SECONDS``; saving
  or switching a chain clears it in this process, other processes follow within the
  TTL) and does no query at all for an event no chain listens to.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from communications.chains import StepGroup, StepOutcome, step_build, step_kinds, step_validate
from communications.models import (
    Chain,
    ChainEntry,
    ChainStatus,
    ChainStep,
    EntryState,
    Message,
    Origin,
    Reentry,
)
from loyalty.events import event_handlers, event_types
from loyalty.models import MemberEvent
from loyalty.refcache import cached, refcache_clear

log = logging.getLogger(__name__)

INDEX_TTL_SECONDS = 30.0
CHUNK_SIZE = 5000
MAX_ROUNDS = 50  # steps an entry can pass in one run (a run every minute picks up the rest)

TRANSITIONS: dict[str, set[str]] = {
    ChainStatus.DRAFT: {ChainStatus.ACTIVE},
    ChainStatus.ACTIVE: {ChainStatus.PAUSED, ChainStatus.STOPPED},
    ChainStatus.PAUSED: {ChainStatus.ACTIVE, ChainStatus.STOPPED},
    ChainStatus.STOPPED: set(),
}

EXIT_STOPPED = "stopped"


# --- saving and switching ---------------------------------------------------------------------


def _loop_errors(steps: list[dict]) -> dict[str, list[str]]:
    """A jump back must pass a waiting step, or a member would go round without end."""
    errors: dict[str, list[str]] = {}
    orders = {s["order"] for s in steps}
    waiting = {s["order"] for s in steps if step_kinds.get(s["kind"]).waits}
    for i, s in enumerate(steps):
        kind = step_kinds.get(s["kind"])
        try:
            targets = kind(s["params"]).targets()
        except ValidationError:
            continue
        name = "step" if s["kind"] == "goto" else "goto_step"
        for target in targets:
            if target not in orders:
                errors[f"steps[{i}].{name}"] = [_("There is no step %(n)s.") % {"n": target}]
            elif target <= s["order"] and not any(target <= w <= s["order"] for w in waiting):
                errors[f"steps[{i}].{name}"] = [
                    _("Going back to step %(n)s needs a wait on the way, or members would loop.")
                    % {"n": target}
                ]
    return errors


def steps_validate(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps (dicts with ``order``, ``kind``, ``params``, optional ``name``) in their
    stored form, by order. Errors are keyed ``steps[i].<parameter>``."""
    errors: dict[str, list[str]] = {}
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, step in enumerate(steps):
        order = step.get("order")
        if not isinstance(order, int) or order < 1:
            errors[f"steps[{i}].order"] = [_("Give the step a number from 1.")]
            continue
        if order in seen:
            errors[f"steps[{i}].order"] = [_("Step %(n)s is there twice.") % {"n": order}]
            continue
        seen.add(order)
        try:
            params = step_validate(step.get("kind", ""), step.get("params"))
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors[f"steps[{i}].{name}"] = messages
            continue
        out.append({"order": order, "kind": step["kind"], "params": params, "name": step.get("name") or ""})
    if not errors:
        errors.update(_loop_errors(out))
    if errors:
        raise ValidationError(errors)
    return sorted(out, key=lambda s: s["order"])


def chain_check(chain: Chain) -> None:
    """The chain's own settings: known turn-on and turn-off events, re-entry days only
    with re-entry after exit. Errors are keyed by field."""
    errors: dict[str, list[str]] = {}
    if chain.turn_on not in event_types:
        errors["turn_on"] = [_("Choose the event that starts the chain.")]
    unknown = [key for key in chain.turn_off or [] if key not in event_types]
    if unknown:
        errors["turn_off"] = [_("Unknown events: %(keys)s.") % {"keys": ", ".join(unknown)}]
    if chain.reentry_days and chain.reentry != Reentry.AFTER_EXIT:
        errors["reentry_days"] = [_("Only with re-entry after the previous pass has ended.")]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def chain_steps_set(*, chain: Chain, steps: list[dict[str, Any]]) -> list[ChainStep]:
    """Make the chain's steps exactly ``steps``. A step keeps its row (and so its
    messages in the report) while its number and kind stay the same; an entry on a step
    that is gone moves on to the next existing step when it is due."""
    clean = steps_validate(steps)
    existing = {s.order: s for s in ChainStep.objects.filter(chain=chain)}
    wanted = {s["order"]: s for s in clean}
    ChainStep.objects.filter(chain=chain).exclude(
        order__in=[o for o, s in wanted.items() if o in existing and existing[o].kind == s["kind"]]
    ).delete()
    for order, s in wanted.items():
        row = existing.get(order)
        if row is not None and row.kind == s["kind"]:
            if (row.params, row.name) != (s["params"], s["name"]):
                row.params, row.name = s["params"], s["name"]
                row.save(update_fields=["params", "name"])
        else:
            ChainStep.objects.create(chain=chain, **s)
    refcache_clear()
    return list(ChainStep.objects.filter(chain=chain).order_by("order"))


@transaction.atomic
def chain_save(*, chain: Chain, steps: list[dict[str, Any]] | None = None) -> Chain:
    """Validate and save the chain and, when given, its steps."""
    chain.full_clean()
    chain_check(chain)
    if steps is not None:
        steps_validate(steps)
    chain.save()
    if steps is not None:
        chain_steps_set(chain=chain, steps=steps)
    refcache_clear()
    return chain


def _transition(chain: Chain, status: str) -> Chain:
    chain = Chain.objects.select_for_update().get(pk=chain.pk)
    if chain.status == status:
        return chain
    if status not in TRANSITIONS[chain.status]:
        raise ValidationError(
            _("A %(old)s chain cannot become %(new)s.")
            % {"old": ChainStatus(chain.status).label, "new": ChainStatus(status).label}
        )
    chain.status = status
    chain.save(update_fields=["status", "updated_at"])
    refcache_clear()
    return chain


@transaction.atomic
def chain_activate(*, chain: Chain) -> Chain:
    """Start listening to the turn-on event (from a draft) or resume a paused chain:
    members it holds carry on where they were, waits that ended meanwhile pass."""
    chain_check(chain)
    steps = list(ChainStep.objects.filter(chain=chain).values("order", "kind", "params", "name"))
    if not steps:
        raise ValidationError(_("Add at least one step first."))
    steps_validate(steps)
    return _transition(chain, ChainStatus.ACTIVE)


@transaction.atomic
def chain_pause(*, chain: Chain) -> Chain:
    """Stop starting and advancing members; turn-off events still end their passes."""
    return _transition(chain, ChainStatus.PAUSED)


@transaction.atomic
def chain_stop(*, chain: Chain) -> Chain:
    """End the chain for good: every member still in it leaves."""
    chain = _transition(chain, ChainStatus.STOPPED)
    ChainEntry.objects.filter(chain=chain, state=EntryState.ACTIVE).update(
        state=EntryState.EXITED, left_at=timezone.now(), exit_reason=EXIT_STOPPED
    )
    return chain


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventIndex:
    on: dict[str, tuple[int, ...]]  # event type -> active chains it starts
    off: dict[str, tuple[int, ...]]  # event type -> active or paused chains it ends


def _index_load() -> EventIndex:
    on: dict[str, list[int]] = defaultdict(list)
    off: dict[str, list[int]] = defaultdict(list)
    rows = Chain.objects.filter(status__in=[ChainStatus.ACTIVE, ChainStatus.PAUSED]).values_list(
        "id", "status", "turn_on", "turn_off"
    )
    for chain_id, status, turn_on, turn_off in rows:
        if status == ChainStatus.ACTIVE:
            on[turn_on].append(chain_id)
        for key in turn_off or []:
            off[key].append(chain_id)
    return EventIndex({k: tuple(v) for k, v in on.items()}, {k: tuple(v) for k, v in off.items()})


def chains_index() -> EventIndex:
    return cached(("communications.chains", "index"), _index_load, ttl=INDEX_TTL_SECONDS)


def chain_entries_end(*, event: MemberEvent, chain_ids: tuple[int, ...] | list[int]) -> int:
    """End the member's passes through these chains (their turn-off event happened);
    the pass this very event started is not ended by it."""
    return (
        ChainEntry.objects.filter(chain_id__in=chain_ids, member_id=event.member_id, state=EntryState.ACTIVE)
        .exclude(occurrence=event.pk)
        .update(state=EntryState.EXITED, left_at=timezone.now(), exit_reason=f"event:{event.event_type}")
    )


def chain_entries_start(*, event: MemberEvent, chain_ids: tuple[int, ...] | list[int]) -> int:
    """Start the member on those of these chains that are active, listen to the event
    and let them in again (three queries whatever the number of chains). Re-entry:
    ``once`` lets nobody in twice; ``after_exit`` lets a member in when they are not in
    the chain now and, with ``reentry_days``, entered it at least that long ago."""
    now = timezone.now()
    chains = list(
        Chain.objects.filter(pk__in=chain_ids, status=ChainStatus.ACTIVE, turn_on=event.event_type)
        .annotate(first=Min("steps__order"))
        .filter(first__isnull=False)
        .values("id", "reentry", "reentry_days", "first")
    )
    if not chains:
        return 0
    history = {
        row["chain_id"]: row
        for row in ChainEntry.objects.filter(
            chain_id__in=[c["id"] for c in chains], member_id=event.member_id
        )
        .values("chain_id")
        .annotate(active=Count("id", filter=Q(state=EntryState.ACTIVE)), last=Max("entered_at"))
    }
    at = min(event.occurred_at, now)
    rows = []
    for chain in chains:
        past = history.get(chain["id"])
        if past is not None:
            if chain["reentry"] == Reentry.ONCE or past["active"]:
                continue
            if chain["reentry_days"] and past["last"] > now - dt.timedelta(days=chain["reentry_days"]):
                continue
        rows.append(
            ChainEntry(
                chain_id=chain["id"],
                member_id=event.member_id,
                occurrence=event.pk,
                step=chain["first"],
                state=EntryState.ACTIVE,
                due_at=now,
                anchor_at=at,
                entered_at=at,
                step_at=at,
                payload=event.payload or {},
            )
        )
    # A concurrent start for the same member loses on the one-active-entry constraint.
    ChainEntry.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


@event_handlers.register("*")
def chains_on_event(event: MemberEvent) -> None:
    """End the passes the event turns off, then start the chains it turns on (so a chain
    turned on and off by one event starts again)."""
    if event.member_id is None:
        return
    index = chains_index()
    off = index.off.get(event.event_type)
    on = index.on.get(event.event_type)
    if off:
        chain_entries_end(event=event, chain_ids=off)
    if on:
        chain_entries_start(event=event, chain_ids=on)


# --- advancing --------------------------------------------------------------------------------


def _move(ids: list[int], *, step: ChainStep, target: int | None, orders: list[int], now) -> Counter:
    """Move entries still active on ``step`` to step number ``target`` (or the next that
    exists), or finish them when there is none."""
    figures: Counter = Counter()
    if not ids:
        return figures
    entries = ChainEntry.objects.filter(id__in=ids, step=step.order, state=EntryState.ACTIVE)
    following = [o for o in orders if target is not None and o >= target]
    if following:
        figures["moved"] += entries.update(step=following[0], step_at=now, anchor_at=now, due_at=now)
    else:
        figures["finished"] += entries.update(state=EntryState.FINISHED, left_at=now)
    return figures


def _outcome_apply(outcome: StepOutcome, *, step: ChainStep, orders: list[int], now) -> Counter:
    figures: Counter = Counter(messages=outcome.messages, bonuses=outcome.bonuses)
    for reason, ids in outcome.exit.items():
        figures["exited"] += ChainEntry.objects.filter(
            id__in=ids, step=step.order, state=EntryState.ACTIVE
        ).update(state=EntryState.EXITED, left_at=now, exit_reason=reason)
    for target, ids in outcome.goto.items():
        figures += _move(ids, step=step, target=target, orders=orders, now=now)
    following = [o for o in orders if o > step.order]
    figures += _move(
        outcome.advance, step=step, target=following[0] if following else None, orders=orders, now=now
    )
    return figures


def _chunk(chain_id: int, order: int, now, after: int, size: int) -> list[int]:
    return list(
        ChainEntry.objects.select_for_update(skip_locked=True)
        .filter(chain_id=chain_id, step=order, state=EntryState.ACTIVE, due_at__lte=now, id__gt=after)
        .order_by("id")
        .values_list("id", flat=True)[:size]
    )


def _group_run(chain: Chain, order: int, steps: dict[int, ChainStep], now, size: int) -> Counter:
    """Run every due entry of one step once, a chunk per transaction."""
    figures: Counter = Counter()
    orders = sorted(steps)
    step = steps.get(order)
    kind = step_build(step) if step is not None else None
    after = 0
    while True:
        with transaction.atomic():
            ids = _chunk(chain.pk, order, now, after, size)
            if not ids:
                return figures
            after = ids[-1]
            if step is None:
                # The step was removed while members were on it: they go on to the next one.
                gone = ChainStep(chain=chain, order=order)
                following = [o for o in orders if o > order]
                figures += _move(
                    ids, step=gone, target=following[0] if following else None, orders=orders, now=now
                )
                continue
            outcome = kind.run(StepGroup(chain=chain, step=step, ids=ids, now=now))
            figures += _outcome_apply(outcome, step=step, orders=orders, now=now)
            figures["processed"] += len(ids)


def chains_advance(
    *, now: dt.datetime | None = None, chunk_size: int = CHUNK_SIZE, max_rounds: int = MAX_ROUNDS
) -> dict:
    """Run the due entries of the active chains, step by step, until nothing is due or
    ``max_rounds`` passed. Each round takes the (chain, step) groups that have due
    entries and runs each group set-wise in chunks; an entry moved to a next step is due
    at once and is run in the next round. A group that fails is logged and left due for
    the next run; the other groups go on. Returns the run's figures."""
    now = now or timezone.now()
    figures: Counter = Counter()
    failed: set[tuple[int, int]] = set()
    chains: dict[int, Chain] = {}
    steps: dict[int, dict[int, ChainStep]] = {}
    for round_number in range(1, max_rounds + 1):
        groups = [
            (row["chain_id"], row["step"])
            for row in ChainEntry.objects.filter(
                state=EntryState.ACTIVE, due_at__lte=now, chain__status=ChainStatus.ACTIVE
            )
            .values("chain_id", "step")
            .annotate(n=Count("id"))
            .order_by("chain_id", "step")
            if (row["chain_id"], row["step"]) not in failed
        ]
        if not groups:
            break
        figures["rounds"] = round_number
        for chain_id, order in groups:
            if chain_id not in chains:
                chains[chain_id] = Chain.objects.select_related("category").get(pk=chain_id)
                steps[chain_id] = {s.order: s for s in ChainStep.objects.filter(chain_id=chain_id)}
            try:
                figures += _group_run(chains[chain_id], order, steps[chain_id], now, chunk_size)
            except Exception:
                log.exception("chain %s step %s failed", chain_id, order)
                failed.add((chain_id, order))
                figures["failed_groups"] += 1
    return dict(figures)


# --- the report -------------------------------------------------------------------------------


def exit_reason_label(reason: str) -> str:
    """What an entry's stored exit reason means, in the current language."""
    kind, _sep, value = reason.partition(":")
    if kind == "event":
        return _("turn-off event: %(event)s") % {"event": event_types.label(value)}
    if kind == "condition":
        return _("did not meet the condition of step %(n)s") % {"n": value}
    if kind == "exit":
        return _("reached the exit at step %(n)s") % {"n": value}
    if reason == EXIT_STOPPED:
        return _("the chain was stopped")
    return reason or _("finished")


@dataclass
class StepFigures:
    step: ChainStep
    label: str
    summary: str
    active: int = 0
    messages: dict[str, int] = field(default_factory=dict)  # message status -> count


@dataclass
class ChainReport:
    steps: list[StepFigures]
    entered: int = 0
    active: int = 0
    finished: int = 0
    exited: list[tuple[str, str, int]] = field(default_factory=list)  # (reason, label, count)


def chain_report(chain: Chain) -> ChainReport:
    """Members at each step now, how many finished, who left and why, and the messages
    of each send step by status (four queries)."""
    steps = list(ChainStep.objects.filter(chain=chain).order_by("order"))
    figures = []
    for step in steps:
        try:
            summary = step_build(step).summary()
        except (ValidationError, KeyError):
            summary = ""
        figures.append(StepFigures(step=step, label=step_kinds.label(step.kind), summary=summary))
    by_order = {f.step.order: f for f in figures}
    report = ChainReport(steps=figures)
    counts = ChainEntry.objects.filter(chain=chain).values("state", "step").annotate(n=Count("id"))
    for row in counts:
        report.entered += row["n"]
        if row["state"] == EntryState.ACTIVE:
            report.active += row["n"]
            if row["step"] in by_order:
                by_order[row["step"]].active += row["n"]
        elif row["state"] == EntryState.FINISHED:
            report.finished += row["n"]
    exits = (
        ChainEntry.objects.filter(chain=chain, state=EntryState.EXITED)
        .values("exit_reason")
        .annotate(n=Count("id"))
        .order_by("-n", "exit_reason")
    )
    report.exited = [(row["exit_reason"], exit_reason_label(row["exit_reason"]), row["n"]) for row in exits]
    by_id = {f.step.pk: f for f in figures}
    messages = (
        Message.objects.filter(origin=Origin.CHAIN, origin_id__in=list(by_id))
        .values("origin_id", "status")
        .annotate(n=Count("id"))
    )
    for row in messages:
        by_id[row["origin_id"]].messages[row["status"]] = row["n"]
    return report
