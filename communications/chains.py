"""The chain-step catalog: what a step of a chain can do.

Each kind is a class with a stable ``key`` (persisted in ``ChainStep.kind``: renaming one
needs a data migration), a human ``label`` and ``params``, a Django form that validates
the step's parameters and renders them in the back office. ``step_validate`` turns
submitted parameters into the stored JSON or errors naming the parameter.

A kind works on a *group*: the due entries of one step of one chain (a chunk of at most
a few thousand), locked by the caller. ``run`` applies the step to the whole group with a
few set-wise statements and returns where each entry goes next (``StepOutcome``):
on to the next step, to another step, or out of the chain. Entries it names nowhere stay
on the step; the kind has set when they are due again.

Waits are stateless: whether a wait is over follows from the entry's ``step_at`` (when it
reached the step) or ``anchor_at`` (where the current count starts) and the clock, never
from a counter, so running a group twice gives the same answer.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db.models import (
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from communications.models import Chain, ChainEntry, ChainStep, MailingCategory, MessageTemplate, Purpose
from gateways.models import Cascade
from loyalty.events import event_types
from loyalty.models import Currency, MemberEvent, Receipt, ReceiptKind, ReceiptState
from segments.models import AudienceMember, Segment, TargetAudience

SALE_STATES = (ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED)
WAIT_NO_PURCHASE_ROUNDS = 100  # each round moves an anchor past at least one purchase


@dataclass
class StepGroup:
    """The due entries of one step, as the engine hands them to a kind."""

    chain: Chain
    step: ChainStep
    ids: list[int]
    now: dt.datetime

    def entries(self) -> QuerySet[ChainEntry]:
        return ChainEntry.objects.filter(id__in=self.ids)


@dataclass
class StepOutcome:
    """Where the entries of a group go; entries named nowhere stay on the step."""

    advance: list[int] = field(default_factory=list)
    goto: dict[int, list[int]] = field(default_factory=dict)  # step order -> entry ids
    exit: dict[str, list[int]] = field(default_factory=dict)  # exit reason -> entry ids
    messages: int = 0
    bonuses: int = 0


class NoParams(forms.Form):
    pass


class StepKind:
    key: ClassVar[str]
    label: ClassVar[str | Promise]
    help: ClassVar[str | Promise] = ""
    params: ClassVar[type[forms.Form]] = NoParams
    # Whether the step can hold an entry until later: a loop back must pass one.
    waits: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any]):
        form = self.params(data=params)
        if not form.is_valid():
            raise ValidationError(
                {f"{self.key}.{name}": [str(e) for e in errors] for name, errors in form.errors.items()}
            )
        self.raw = params
        self.values = form.cleaned_data

    @classmethod
    def clean_params(cls, params: dict[str, Any]) -> None:
        """Checks across parameters; raise ``ValidationError({param: message})``."""

    def targets(self) -> list[int]:
        """The step orders this step may send an entry to (other than the next one)."""
        return []

    def summary(self) -> str:
        return ""

    def run(self, group: StepGroup) -> StepOutcome:
        raise NotImplementedError


class StepKindRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, type[StepKind]] = {}

    def register(self, cls: type[StepKind]) -> type[StepKind]:
        if cls.key in self._kinds:
            raise ValueError(f"chain step {cls.key!r} is registered twice")
        self._kinds[cls.key] = cls
        return cls

    def get(self, key: str) -> type[StepKind]:
        return self._kinds[key]

    def __contains__(self, key: str) -> bool:
        return key in self._kinds

    def __iter__(self) -> Iterator[type[StepKind]]:
        return iter(self._kinds.values())

    def choices(self) -> list[tuple[str, str]]:
        return [(cls.key, str(cls.label)) for cls in self._kinds.values()]

    def label(self, key: str) -> str:
        return str(self._kinds[key].label) if key in self._kinds else key


step_kinds = StepKindRegistry()


def _jsonable(value: Any, to_field: str | None = None) -> Any:
    if isinstance(value, Model):
        return getattr(value, to_field) if to_field else value.pk
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


def step_validate(kind: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The stored form of a step's parameters. Errors are keyed by the parameter's name
    (``"kind"`` for an unknown kind)."""
    if kind not in step_kinds:
        raise ValidationError({"kind": _("Unknown step %(key)s.") % {"key": kind}})
    cls = step_kinds.get(kind)
    data = dict(params or {})
    for name, form_field in cls.params.base_fields.items():
        if data.get(name) is None and form_field.initial is not None:
            data[name] = form_field.initial
    form = cls.params(data=data)
    if not form.is_valid():
        raise ValidationError({name: [str(e) for e in errors] for name, errors in form.errors.items()})
    cleaned = {
        name: _jsonable(value, getattr(form.fields[name], "to_field_name", None))
        for name, value in form.cleaned_data.items()
        if value not in (None, "", [])
    }
    cls.clean_params(cleaned)
    return cleaned


def step_build(step: ChainStep) -> StepKind:
    """The kind of a stored step with its parameters cleaned (model rows loaded)."""
    return step_kinds.get(step.kind)(step.params or {})


def _purchases(since) -> QuerySet[Receipt]:
    return Receipt.objects.filter(
        member_id=OuterRef("member_id"),
        kind=ReceiptKind.SALE,
        state__in=SALE_STATES,
        purchased_at__gt=since,
    )


def _ids(qs: QuerySet) -> list[int]:
    return list(qs.values_list("id", flat=True))


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


# --- waits ------------------------------------------------------------------------------------


class WaitParams(forms.Form):
    days = forms.IntegerField(label=gettext_lazy("days"), min_value=0, initial=0, required=False)
    hours = forms.IntegerField(label=gettext_lazy("hours"), min_value=0, initial=0, required=False)
    minutes = forms.IntegerField(label=gettext_lazy("minutes"), min_value=0, initial=0, required=False)


@step_kinds.register
class WaitStep(StepKind):
    key = "wait"
    label = gettext_lazy("Wait")
    help = gettext_lazy("Hold the member for a while, counted from reaching the step.")
    params = WaitParams
    waits = True

    @classmethod
    def clean_params(cls, params):
        if not any(params.get(name) for name in ("days", "hours", "minutes")):
            raise ValidationError({"days": _("Set how long to wait: days, hours or minutes.")})

    def delay(self) -> dt.timedelta:
        v = self.values
        return dt.timedelta(days=v.get("days") or 0, hours=v.get("hours") or 0, minutes=v.get("minutes") or 0)

    def summary(self) -> str:
        v = self.values
        parts = [
            _("%(n)s d") % {"n": v["days"]} if v.get("days") else "",
            _("%(n)s h") % {"n": v["hours"]} if v.get("hours") else "",
            _("%(n)s min") % {"n": v["minutes"]} if v.get("minutes") else "",
        ]
        return " ".join(p for p in parts if p)

    def run(self, group):
        delay = self.delay()
        entries = group.entries()
        done = _ids(entries.filter(step_at__lte=group.now - delay))
        entries.filter(step_at__gt=group.now - delay).update(
            due_at=ExpressionWrapper(F("step_at") + delay, output_field=DateTimeField())
        )
        return StepOutcome(advance=done)


class WaitUntilParams(forms.Form):
    time = forms.TimeField(label=gettext_lazy("local time"), help_text=gettext_lazy("In the member's zone."))
    days = forms.IntegerField(
        label=gettext_lazy("after days"),
        min_value=0,
        initial=0,
        required=False,
        help_text=gettext_lazy("0: the next time it is this time of day; 1: at that time the next day; ..."),
    )


@step_kinds.register
class WaitUntilStep(StepKind):
    key = "wait_until"
    label = gettext_lazy("Wait until a time of day")
    help = gettext_lazy(
        "Hold the member until a local time of day in their time zone, optionally days later."
    )
    params = WaitUntilParams
    waits = True

    def summary(self) -> str:
        at = self.values["time"].strftime("%H:%M")
        days = self.values.get("days") or 0
        return _("%(time)s after %(days)s d") % {"time": at, "days": days} if days else at

    def target(self, step_at: dt.datetime, zone_name: str) -> dt.datetime:
        """The set local time on the member's calendar day ``days`` after ``step_at``
        (with 0 days: the next time it is that time of day)."""
        zone = _zone(zone_name)
        local = step_at.astimezone(zone)
        day = local.date() + dt.timedelta(days=self.values.get("days") or 0)
        moment = dt.datetime.combine(day, self.values["time"], tzinfo=zone)
        if moment < local:
            moment = dt.datetime.combine(day + dt.timedelta(days=1), self.values["time"], tzinfo=zone)
        return moment

    def run(self, group):
        rows = group.entries().values_list("id", "step_at", "member__time_zone")
        done: list[int] = []
        later: dict[dt.datetime, list[int]] = defaultdict(list)
        for entry_id, step_at, zone_name in rows:
            moment = self.target(step_at, zone_name)
            if moment <= group.now:
                done.append(entry_id)
            else:
                later[moment].append(entry_id)
        # Entries share few targets (one per zone and day): one statement per target.
        for moment, ids in later.items():
            ChainEntry.objects.filter(id__in=ids).update(due_at=moment)
        return StepOutcome(advance=done)


class WaitNoPurchaseParams(forms.Form):
    days = forms.IntegerField(label=gettext_lazy("days without a purchase"), min_value=1)


@step_kinds.register
class WaitNoPurchaseStep(StepKind):
    """Passes once the member has gone ``days`` without a purchase, counted from reaching
    the step and counted again from each purchase made meanwhile (``anchor_at``)."""

    key = "wait_no_purchase"
    label = gettext_lazy("Wait for days without a purchase")
    help = gettext_lazy("Counted from reaching the step; each purchase starts the count again.")
    params = WaitNoPurchaseParams
    waits = True

    def summary(self) -> str:
        return _("%(n)s d") % {"n": self.values["days"]}

    def run(self, group):
        delay = dt.timedelta(days=self.values["days"])
        entries = group.entries()
        window_end = ExpressionWrapper(OuterRef("anchor_at") + delay, output_field=DateTimeField())
        in_window = (
            _purchases(OuterRef("anchor_at"))
            .filter(purchased_at__lte=window_end)
            .filter(purchased_at__lte=group.now)
        )
        # A purchase inside the current window starts the count again from the latest one
        # in it; repeat until no window holds a purchase (each round passes one at least).
        for _round in range(WAIT_NO_PURCHASE_ROUNDS):
            latest = in_window.order_by("-purchased_at").values("purchased_at")[:1]
            if not entries.filter(Exists(in_window)).update(anchor_at=Subquery(latest)):
                break
        done = _ids(entries.filter(anchor_at__lte=group.now - delay))
        entries.filter(anchor_at__gt=group.now - delay).update(
            due_at=ExpressionWrapper(F("anchor_at") + delay, output_field=DateTimeField())
        )
        return StepOutcome(advance=done)


# --- branching --------------------------------------------------------------------------------


class ConditionTest:
    PURCHASE = "purchase"
    NO_PURCHASE = "no_purchase"
    FIRST_PURCHASE = "first_purchase"
    SEGMENT = "segment"
    AUDIENCE = "audience"
    EVENT = "event"

    choices = [
        (PURCHASE, gettext_lazy("made a purchase")),
        (NO_PURCHASE, gettext_lazy("made no purchase")),
        (FIRST_PURCHASE, gettext_lazy("had no purchase before entering the chain (a first purchase)")),
        (SEGMENT, gettext_lazy("is in the segment")),
        (AUDIENCE, gettext_lazy("is in the target audience")),
        (EVENT, gettext_lazy("had the event")),
    ]


def _event_choices():
    return [("", "—"), *[(k, str(label)) for k, label in event_types.choices()]]


class ConditionParams(forms.Form):
    test = forms.ChoiceField(label=gettext_lazy("the member"), choices=ConditionTest.choices)
    days = forms.IntegerField(
        label=gettext_lazy("in the last days"),
        min_value=1,
        required=False,
        help_text=gettext_lazy("Purchases and events: empty counts from entering the chain."),
    )
    segment = forms.ModelChoiceField(
        label=gettext_lazy("segment"), queryset=Segment.objects.all(), required=False
    )
    audience = forms.ModelChoiceField(
        label=gettext_lazy("target audience"), queryset=TargetAudience.objects.all(), required=False
    )
    event_type = forms.ChoiceField(label=gettext_lazy("event"), choices=_event_choices, required=False)
    negate = forms.BooleanField(label=gettext_lazy("the opposite"), required=False)
    on_false = forms.ChoiceField(
        label=gettext_lazy("otherwise"),
        choices=[("exit", gettext_lazy("leave the chain")), ("goto", gettext_lazy("go to step"))],
        initial="exit",
    )
    goto_step = forms.IntegerField(label=gettext_lazy("step number"), min_value=1, required=False)


@step_kinds.register
class ConditionStep(StepKind):
    key = "condition"
    label = gettext_lazy("Condition")
    help = gettext_lazy("Members who pass go on; the others leave the chain or go to another step.")
    params = ConditionParams

    @classmethod
    def clean_params(cls, params):
        test = params.get("test")
        needs = {
            ConditionTest.SEGMENT: "segment",
            ConditionTest.AUDIENCE: "audience",
            ConditionTest.EVENT: "event_type",
        }
        if test in needs and not params.get(needs[test]):
            raise ValidationError({needs[test]: _("Choose one for this condition.")})
        if params.get("on_false") == "goto" and not params.get("goto_step"):
            raise ValidationError({"goto_step": _("Give the step to go to.")})

    def targets(self) -> list[int]:
        return [self.values["goto_step"]] if self.values.get("on_false") == "goto" else []

    def summary(self) -> str:
        label = dict(ConditionTest.choices)[self.values["test"]]
        return f"{_('not') + ' ' if self.values.get('negate') else ''}{label}"

    def _since(self, group: StepGroup):
        days = self.values.get("days")
        return group.now - dt.timedelta(days=days) if days else OuterRef("entered_at")

    def passes(self, group: StepGroup) -> Q:
        from segments.services import segment_members

        test, v = self.values["test"], self.values
        if test == ConditionTest.PURCHASE:
            q = Q(Exists(_purchases(self._since(group))))
        elif test == ConditionTest.NO_PURCHASE:
            q = ~Q(Exists(_purchases(self._since(group))))
        elif test == ConditionTest.FIRST_PURCHASE:
            earlier = Receipt.objects.filter(
                member_id=OuterRef("member_id"),
                kind=ReceiptKind.SALE,
                state__in=SALE_STATES,
                purchased_at__lt=OuterRef("entered_at"),
            )
            q = ~Q(Exists(earlier))
        elif test == ConditionTest.SEGMENT:
            q = Q(member_id__in=segment_members(v["segment"]).values("pk"))
        elif test == ConditionTest.AUDIENCE:
            q = Q(
                Exists(AudienceMember.objects.filter(audience=v["audience"], member_id=OuterRef("member_id")))
            )
        else:
            events = MemberEvent.objects.filter(
                member_id=OuterRef("member_id"),
                event_type=v["event_type"],
                occurred_at__gt=self._since(group),
            )
            q = Q(Exists(events))
        return ~q if v.get("negate") else q

    def run(self, group):
        entries = group.entries()
        passed = _ids(entries.filter(self.passes(group)))
        failed = sorted(set(group.ids) - set(passed))
        outcome = StepOutcome(advance=passed)
        if failed:
            if self.values.get("on_false") == "goto":
                outcome.goto[self.values["goto_step"]] = failed
            else:
                outcome.exit[f"condition:{group.step.order}"] = failed
        return outcome


class GotoParams(forms.Form):
    step = forms.IntegerField(label=gettext_lazy("step number"), min_value=1)


@step_kinds.register
class GotoStep(StepKind):
    key = "goto"
    label = gettext_lazy("Go to step")
    params = GotoParams

    def targets(self) -> list[int]:
        return [self.values["step"]]

    def summary(self) -> str:
        return _("to step %(n)s") % {"n": self.values["step"]}

    def run(self, group):
        return StepOutcome(goto={self.values["step"]: list(group.ids)})


@step_kinds.register
class ExitStep(StepKind):
    key = "exit"
    label = gettext_lazy("Leave the chain")

    def run(self, group):
        return StepOutcome(exit={f"exit:{group.step.order}": list(group.ids)})


# --- actions ----------------------------------------------------------------------------------


class SendParams(forms.Form):
    template = forms.ModelChoiceField(label=gettext_lazy("template"), queryset=MessageTemplate.objects.all())
    cascade = forms.ModelChoiceField(
        label=gettext_lazy("cascade"),
        queryset=Cascade.objects.all(),
        required=False,
        help_text=gettext_lazy("Instead of the template's channel: try the cascade's channels in order."),
    )
    category = forms.ModelChoiceField(
        label=gettext_lazy("mailing category"),
        queryset=MailingCategory.objects.filter(active=True),
        to_field_name="code",
        required=False,
    )
    purpose = forms.ChoiceField(
        label=gettext_lazy("purpose"),
        choices=[(Purpose.MARKETING, Purpose.MARKETING.label), (Purpose.SERVICE, Purpose.SERVICE.label)],
        initial=Purpose.MARKETING,
    )
    expires_hours = forms.IntegerField(
        label=gettext_lazy("give up after, hours"),
        min_value=1,
        initial=48,
        help_text=gettext_lazy("Messages not sent by then (quiet hours, outages) expire."),
    )


@step_kinds.register
class SendStep(StepKind):
    """Queues one message per reachable member of the group in one statement; the
    message's occurrence is the entry id, so a repeat of the group queues nothing new."""

    key = "send"
    label = gettext_lazy("Send a message")
    params = SendParams

    def summary(self) -> str:
        return str(self.values["template"])

    def category_code(self, chain: Chain) -> str:
        """The step's mailing category, else the chain's: members opted out get nothing."""
        if self.values.get("category"):
            return self.values["category"].code
        return chain.category.code if chain.category_id else ""

    def run(self, group):
        from communications.models import Origin
        from communications.services.bulk import Source, marketing_holdouts, messages_queue

        v = self.values
        marks = ", ".join(["%s"] * len(group.ids))
        source = Source(
            sql=(
                f"SELECT e.member_id AS member_id, CAST(e.id AS TEXT) AS occurrence, e.payload AS event"
                f" FROM {ChainEntry._meta.db_table} e WHERE e.id IN ({marks})"
            ),
            params=tuple(group.ids),
            has_occurrence=True,
            has_event=True,
        )
        written = messages_queue(
            source=source,
            channel=v["template"].channel,
            template=v["template"],
            origin=Origin.CHAIN,
            origin_id=group.step.pk,
            purpose=v["purpose"],
            category=self.category_code(group.chain),
            cascade=v.get("cascade"),
            holdouts=marketing_holdouts() if v["purpose"] == Purpose.MARKETING else (),
            expires_at=group.now + dt.timedelta(hours=v.get("expires_hours") or 48),
        )
        return StepOutcome(advance=list(group.ids), messages=written)


class BonusParams(forms.Form):
    amount = forms.DecimalField(
        label=gettext_lazy("bonuses"),
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    currency = forms.ModelChoiceField(
        label=gettext_lazy("currency"),
        queryset=Currency.objects.all(),
        required=False,
        help_text=gettext_lazy("Empty: the default currency."),
    )
    lifetime_days = forms.IntegerField(
        label=gettext_lazy("lifetime, days"),
        min_value=1,
        required=False,
        help_text=gettext_lazy("Empty: no expiry."),
    )


@step_kinds.register
class BonusStep(StepKind):
    """Accrues bonuses to each member of the group. Idempotent per entry and step: the
    ledger's idempotency key ``chain:<entry id>:<step id>`` makes a repeat a no-op."""

    key = "bonus"
    label = gettext_lazy("Accrue bonuses")
    params = BonusParams

    def summary(self) -> str:
        return str(self.values["amount"])

    def run(self, group):
        from loyalty.models import Member, SourceType
        from loyalty.services import ledger
        from loyalty.services.errors import IdempotencyConflict

        v = self.values
        rows = list(group.entries().values_list("id", "member_id"))
        members = Member.objects.in_bulk([m for _e, m in rows])
        expires_at = group.now + dt.timedelta(days=v["lifetime_days"]) if v.get("lifetime_days") else None
        source = ledger.Source(type=SourceType.CAMPAIGN, id=f"chain:{group.chain.pk}", label=group.chain.name)
        accrued = 0
        # The ledger accrues one account at a time (one statement each on PostgreSQL).
        for entry_id, member_id in rows:
            account = ledger.account_get_or_create(member=members[member_id], currency=v.get("currency"))
            try:
                ledger.bonus_accrue(
                    account=account,
                    amount=v["amount"],
                    source=source,
                    expires_at=expires_at,
                    idempotency_key=f"chain:{entry_id}:{group.step.pk}",
                    at=group.now,
                )
            except IdempotencyConflict:
                continue  # accrued before with other parameters: the step was edited since
            accrued += 1
        return StepOutcome(advance=[e for e, _m in rows], bonuses=accrued)


class AudienceParams(forms.Form):
    audience = forms.ModelChoiceField(
        label=gettext_lazy("target audience"), queryset=TargetAudience.objects.all()
    )
    action = forms.ChoiceField(
        label=gettext_lazy("action"),
        choices=[("add", gettext_lazy("add to")), ("remove", gettext_lazy("remove from"))],
        initial="add",
    )


@step_kinds.register
class AudienceStep(StepKind):
    key = "audience"
    label = gettext_lazy("Change a target audience")
    params = AudienceParams

    def summary(self) -> str:
        verb = _("add to") if self.values["action"] == "add" else _("remove from")
        return f"{verb} {self.values['audience']}"

    def run(self, group):
        from loyalty.models import Member
        from segments.services import audience_add, audience_remove

        members = Member.objects.filter(pk__in=group.entries().values("member_id"))
        if self.values["action"] == "add":
            audience_add(self.values["audience"], members)
        else:
            audience_remove(self.values["audience"], members)
        return StepOutcome(advance=list(group.ids))
