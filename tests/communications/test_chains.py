"""Chains: members start on their turn-on event, pass the steps as the days go by, leave on
a turn-off event; the runs are set-wise, durable and idempotent; the step catalog."""

import datetime as dt
import itertools
import threading
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from communications.chains import StepGroup, step_build, step_kinds, step_validate
from communications.models import (
    CategoryOptOut,
    Chain,
    ChainEntry,
    ChainStatus,
    EntryState,
    MailingCategory,
    Message,
    MessageTemplate,
    Origin,
    Status,
)
from communications.recipes import chain_from_recipe
from communications.services import chains as chain_services
from communications.services.chains import (
    chain_activate,
    chain_pause,
    chain_report,
    chain_save,
    chain_stop,
    chains_advance,
    chains_on_event,
)
from communications.services.delivery import dispatch_batch
from communications.services.rendering import message_content
from loyalty.models import BonusAccount, MemberEvent
from loyalty.services.events import event_record
from loyalty.services.receipts import LineInput, receipt_confirm, receipt_record
from segments.models import AudienceMember, GlobalControlGroup, Segment, TargetAudience
from tests import factories
from tests.communications.conftest import NOON

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)
_receipts = itertools.count(1)


# --- helpers ----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def dispatches(monkeypatch):
    """Dispatch tasks started after commit, recorded instead of sent to the broker."""
    from communications import tasks

    started: list[int] = []
    monkeypatch.setattr(tasks.dispatch, "delay", started.append)
    return started


@pytest.fixture
def sms(make_gateway):
    return make_gateway("file_sms")


@pytest.fixture
def happen(django_capture_on_commit_callbacks):
    """Record a member event and run its handlers, as after a committed request."""

    def record(event_type: str, member, **payload) -> MemberEvent:
        with django_capture_on_commit_callbacks(execute=True):
            return event_record(event_type=event_type, member=member, payload=payload)

    return record


@pytest.fixture
def buy(db, django_capture_on_commit_callbacks):
    """A confirmed purchase now (it records ``purchase_completed``)."""
    shop = factories.PointOfSaleFactory()

    def purchase(member, amount: str = "500"):
        with django_capture_on_commit_callbacks(execute=True):
            receipt = receipt_record(
                point_of_sale=shop,
                external_id=f"r{next(_receipts)}",
                lines=[LineInput(sku="A", quantity=Decimal(1), price=Decimal(amount))],
                member=member,
            )
            return receipt_confirm(receipt=receipt)

    return purchase


def sms_template(text: str = "Hello, {{ first_name }}!", name: str = "t") -> MessageTemplate:
    return MessageTemplate.objects.create(name=name, channel="sms", text=text)


def make_chain(*steps, turn_on="registration_completed", turn_off=(), active=True, **fields) -> Chain:
    """A chain of ``(kind, params)`` steps numbered from 1."""
    chain = chain_save(
        chain=Chain(name="Chain", turn_on=turn_on, turn_off=list(turn_off), **fields),
        steps=[{"order": i, "kind": kind, "params": params} for i, (kind, params) in enumerate(steps, 1)],
    )
    return chain_activate(chain=chain) if active else chain


def entry_of(chain, member) -> ChainEntry:
    return ChainEntry.objects.get(chain=chain, member=member, state=EntryState.ACTIVE)


def sent(member=None) -> list[Message]:
    qs = Message.objects.filter(origin=Origin.CHAIN).order_by("id")
    return list(qs.filter(member=member) if member else qs)


def live_day_by_day(traveller, days: int, gateway, *, on_day=None) -> dict[int, list[str]]:
    """Run the chains and the dispatcher once a day at the same time; returns what each
    day sent: ``{day: [message text, ...]}``."""
    start = dt.datetime.now(dt.UTC)
    timeline: dict[int, list[str]] = {}
    for day in range(days + 1):
        if day:
            traveller.shift(DAY)
        if on_day:
            on_day(day)
        before = set(Message.objects.values_list("id", flat=True))
        chains_advance()
        dispatch_batch(gateway=gateway)
        new = Message.objects.filter(origin=Origin.CHAIN).exclude(id__in=before).order_by("id")
        for message in new:
            assert message.status == Status.DELIVERED, (day, message.status, message.reason)
            assert (message.sent_at - start).days == day
            timeline.setdefault(day, []).append(message_content(message)["text"])
    return timeline


# --- the seed's examples, day by day ------------------------------------------------------------
def test_example_1_no_purchase_two_weeks_after_registering_then_two_more(noon, sms, make_member, happen):
    # given: the registration example, active; a member registers at noon
    chain = chain_from_recipe("welcome_no_purchase")
    chain_activate(chain=chain)
    member = make_member(first_name="Olga")
    happen("registration_completed", member)
    # when: forty days go by without a purchase
    timeline = live_day_by_day(noon, 40, sms)
    # then: the invitation on day 14, the second message on day 28, nothing else
    assert sorted(timeline) == [14, 28]
    assert timeline[14][0].startswith("Olga, welcome to the club!")
    assert timeline[28][0].startswith("Olga, we still have not met")
    finished = ChainEntry.objects.get(chain=chain, member=member)
    assert finished.state == EntryState.FINISHED


def test_example_2_a_purchase_on_day_5_postpones_the_invitation_to_day_19(
    noon, sms, make_member, happen, buy
):
    # given
    chain_activate(chain=chain_from_recipe("welcome_no_purchase"))
    member = make_member(first_name="Olga")
    happen("registration_completed", member)
    # when: the member buys on day 5 and never again
    timeline = live_day_by_day(noon, 40, sms, on_day=lambda day: day == 5 and buy(member))
    # then: two weeks from the purchase, and two weeks after that the second message
    assert sorted(timeline) == [19, 33]


def test_example_2_each_purchase_in_the_window_restarts_the_count(noon, sms, make_member, happen, buy):
    chain_activate(chain=chain_from_recipe("welcome_no_purchase"))
    member = make_member()
    happen("registration_completed", member)
    timeline = live_day_by_day(noon, 30, sms, on_day=lambda day: day in (5, 12) and buy(member))
    assert sorted(timeline) == [26]


def test_example_1_a_purchase_after_the_invitation_means_no_second_message(
    noon, sms, make_member, happen, buy
):
    # given
    chain = chain_from_recipe("welcome_no_purchase")
    chain_activate(chain=chain)
    member = make_member()
    happen("registration_completed", member)
    # when: the member comes on day 20, after the invitation
    timeline = live_day_by_day(noon, 40, sms, on_day=lambda day: day == 20 and buy(member))
    # then
    assert sorted(timeline) == [14]
    entry = ChainEntry.objects.get(chain=chain, member=member)
    assert (entry.state, entry.exit_reason) == (EntryState.EXITED, "condition:4")


# --- entering and leaving -----------------------------------------------------------------------
def test_a_turn_off_event_ends_the_pass_and_names_the_event(noon, sms, make_member, happen):
    # given
    chain = make_chain(
        ("wait", {"days": 3}), ("send", {"template": sms_template().pk}), turn_off=["friend_invited"]
    )
    member, other = make_member(), make_member()
    happen("registration_completed", member)
    happen("registration_completed", other)
    chains_advance()
    # when
    happen("friend_invited", member)
    noon.shift(3 * DAY)
    chains_advance()
    # then
    left = ChainEntry.objects.get(chain=chain, member=member)
    assert (left.state, left.exit_reason) == (EntryState.EXITED, "event:friend_invited")
    assert [m.member for m in sent()] == [other]
    assert "Friend invited" in chain_services.exit_reason_label(left.exit_reason)


def test_a_member_is_never_twice_in_a_chain_at_once(noon, make_member, happen):
    # given: a chain one may enter again once the previous pass has ended
    chain = make_chain(("wait", {"days": 10}), turn_on="purchase_completed", reentry="after_exit")
    member = make_member()
    # when: the turn-on event happens three times while the member is in the chain
    events = [happen("purchase_completed", member) for _i in range(3)]
    chains_advance()
    # and the start is tried again for the same events (a repeated delivery of the event)
    for event in events:
        chain_services.chain_entries_start(event=event, chain_ids=[chain.pk])
    # then
    entries = ChainEntry.objects.filter(chain=chain, member=member)
    assert entries.count() == 1 and entries.get().occurrence == events[0].pk


def test_once_lets_nobody_in_again(noon, make_member, happen):
    chain = make_chain(("wait", {"hours": 1}))
    member = make_member()
    happen("registration_completed", member)
    noon.shift(dt.timedelta(hours=1))
    chains_advance()
    assert ChainEntry.objects.get(chain=chain, member=member).state == EntryState.FINISHED
    # when
    happen("registration_completed", member)
    # then
    assert ChainEntry.objects.filter(chain=chain, member=member).count() == 1


def test_after_exit_lets_a_member_in_again_not_earlier_than_the_set_days(noon, make_member, happen):
    # given: at most once in ten days
    chain = make_chain(
        ("wait", {"days": 1}), turn_on="purchase_completed", reentry="after_exit", reentry_days=10
    )
    member = make_member()
    happen("purchase_completed", member)
    noon.shift(2 * DAY)
    chains_advance()
    # when: five days after entering, the event again
    noon.shift(3 * DAY)
    happen("purchase_completed", member)
    # then: not yet
    assert ChainEntry.objects.filter(chain=chain, member=member).count() == 1
    # when: eleven days after entering
    noon.shift(6 * DAY)
    happen("purchase_completed", member)
    # then: a second pass
    states = sorted(ChainEntry.objects.filter(chain=chain, member=member).values_list("state", flat=True))
    assert states == [EntryState.ACTIVE, EntryState.FINISHED]


def test_an_event_that_turns_a_chain_on_and_off_starts_it_again(noon, make_member, happen):
    # given: each purchase restarts a two-week count
    chain = make_chain(
        ("wait", {"days": 14}),
        turn_on="purchase_completed",
        turn_off=["purchase_completed"],
        reentry="after_exit",
    )
    member = make_member()
    first = happen("purchase_completed", member)
    # when
    noon.shift(5 * DAY)
    second = happen("purchase_completed", member)
    # then
    entries = {e.occurrence: e for e in ChainEntry.objects.filter(chain=chain, member=member)}
    assert entries[first.pk].state == EntryState.EXITED
    assert entries[first.pk].exit_reason == "event:purchase_completed"
    assert entries[second.pk].state == EntryState.ACTIVE


def test_a_paused_chain_starts_and_advances_nobody_but_turn_off_still_ends(noon, sms, make_member, happen):
    # given
    chain = make_chain(("send", {"template": sms_template().pk}), turn_off=["friend_invited"])
    inside, leaving, late = make_member(), make_member(), make_member()
    happen("registration_completed", inside)
    happen("registration_completed", leaving)
    # when
    chain_pause(chain=chain)
    happen("registration_completed", late)
    happen("friend_invited", leaving)
    chains_advance()
    # then
    assert sent() == []
    assert not ChainEntry.objects.filter(chain=chain, member=late).exists()
    assert ChainEntry.objects.get(chain=chain, member=leaving).state == EntryState.EXITED
    # when: resumed, the member still inside gets the message
    chain_activate(chain=chain)
    chains_advance()
    assert [m.member for m in sent()] == [inside]


def test_stopping_a_chain_ends_every_pass_and_it_cannot_be_activated_again(noon, make_member, happen):
    chain = make_chain(("wait", {"days": 1}))
    member = make_member()
    happen("registration_completed", member)
    chain_stop(chain=chain)
    entry = ChainEntry.objects.get(chain=chain, member=member)
    assert (entry.state, entry.exit_reason) == (EntryState.EXITED, "stopped")
    with pytest.raises(ValidationError):
        chain_activate(chain=chain)


def test_the_event_handler_does_no_query_for_an_event_no_chain_listens_to(
    noon, make_member, django_assert_num_queries, django_assert_max_num_queries
):
    # given
    chain = make_chain(("wait", {"days": 1}), turn_off=["bonus_paid"])
    member = make_member()
    website = event_record(event_type="website_visit", member=member)
    registered = event_record(event_type="registration_completed", member=member)
    chains_on_event(website)  # the index is loaded once per process and TTL
    # then
    with django_assert_num_queries(0):
        chains_on_event(website)
    with django_assert_max_num_queries(3):
        chains_on_event(registered)
    assert ChainEntry.objects.filter(chain=chain, member=member).count() == 1


def test_an_activated_chain_is_seen_by_the_handler_at_once(noon, make_member, happen):
    member = make_member()
    happen("website_visit", member)  # the index is now cached without the chain
    chain = make_chain(("wait", {"days": 1}), turn_on="website_visit")
    happen("website_visit", member)
    assert ChainEntry.objects.filter(chain=chain, member=member).count() == 1


# --- advancing: set-wise, durable, idempotent ----------------------------------------------------
def test_the_run_costs_the_same_queries_for_3_members_as_for_30(noon, sms, make_member, happen):
    # given: a send step and a wait
    chain = make_chain(("send", {"template": sms_template().pk}), ("wait", {"days": 1}))
    GlobalControlGroup.current()  # created on first use
    queries = []
    for count in (3, 30):
        for _i in range(count):
            happen("registration_completed", make_member())
        # when
        with CaptureQueriesContext(connection) as captured:
            figures = chains_advance()
        queries.append(len(captured))
        # then
        assert figures["messages"] == count and figures["processed"] == 2 * count
    assert queries[0] == queries[1]
    assert len(sent()) == 33
    assert set(ChainEntry.objects.filter(chain=chain).values_list("step", flat=True)) == {2}


def test_a_group_larger_than_a_chunk_is_run_whole(noon, sms, make_member, happen):
    chain = make_chain(("send", {"template": sms_template().pk}))
    for _i in range(25):
        happen("registration_completed", make_member())
    figures = chains_advance(chunk_size=10)
    assert figures["messages"] == 25 and figures["finished"] == 25
    assert not ChainEntry.objects.filter(chain=chain, state=EntryState.ACTIVE).exists()


def test_a_failure_in_the_middle_of_a_group_is_rerun_without_a_second_message(
    noon, sms, make_member, happen, monkeypatch
):
    # given
    chain = make_chain(("send", {"template": sms_template().pk}))
    members = [make_member() for _i in range(3)]
    for member in members:
        happen("registration_completed", member)

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died after queueing")

    # when: the run fails after the messages were queued, before the members moved on
    with monkeypatch.context() as patch:
        patch.setattr(chain_services, "_outcome_apply", crash)
        figures = chains_advance()
    # then: the chunk was rolled back; the members are still due on the step
    assert figures["failed_groups"] == 1
    assert sent() == []
    assert set(ChainEntry.objects.filter(chain=chain).values_list("step", "state")) == {
        (1, EntryState.ACTIVE)
    }
    # when: the next run
    chains_advance()
    chains_advance()
    # then: one message each, and they are through
    assert sorted(m.member_id for m in sent()) == sorted(m.pk for m in members)
    assert set(ChainEntry.objects.filter(chain=chain).values_list("state", flat=True)) == {
        EntryState.FINISHED
    }


def test_side_effects_kept_from_a_crashed_run_are_not_repeated(noon, sms, make_member, happen, currency):
    # given: messages queued and bonuses accrued, then the process died before the moves
    template = sms_template()
    chain = make_chain(("bonus", {"amount": "100"}), ("send", {"template": template.pk}))
    members = [make_member() for _i in range(3)]
    for member in members:
        happen("registration_completed", member)
    steps = {s.order: s for s in chain.steps.all()}
    ids = list(ChainEntry.objects.filter(chain=chain).values_list("id", flat=True))
    step_build(steps[1]).run(StepGroup(chain=chain, step=steps[1], ids=ids, now=NOON))
    step_build(steps[2]).run(StepGroup(chain=chain, step=steps[2], ids=ids, now=NOON))
    # when: the chains run again, twice
    chains_advance()
    chains_advance()
    # then: one accrual and one message per member
    for member in members:
        account = BonusAccount.objects.get(member=member)
        assert account.available == Decimal("100")
        assert len(sent(member)) == 1


def test_members_opted_out_of_the_chains_mailing_category_get_no_message(noon, sms, make_member, happen):
    # given: a chain in the "news" category; one member opted out of it
    news = MailingCategory.objects.create(code="news", name="News")
    chain = make_chain(("send", {"template": sms_template().pk}), active=False)
    chain.category = news
    chain_activate(chain=chain_save(chain=chain))
    reader, opted_out = make_member(), make_member()
    CategoryOptOut.objects.create(member=opted_out, category=news)
    for member in (reader, opted_out):
        happen("registration_completed", member)
    # when
    chains_advance()
    # then: both went through the step, one message
    assert [(m.member, m.category) for m in sent()] == [(reader, "news")]
    assert set(ChainEntry.objects.filter(chain=chain).values_list("state", flat=True)) == {
        EntryState.FINISHED
    }


def test_a_step_removed_while_members_are_on_it_hands_them_to_the_next(noon, sms, make_member, happen):
    # given: members wait at step 2
    template = sms_template()
    chain = make_chain(("send", {"template": template.pk}), ("wait", {"days": 1}), ("exit", {}))
    member = make_member()
    happen("registration_completed", member)
    chains_advance()
    assert entry_of(chain, member).step == 2
    # when: step 2 is removed
    chain_save(
        chain=chain,
        steps=[
            {"order": 1, "kind": "send", "params": {"template": template.pk}},
            {"order": 3, "kind": "exit", "params": {}},
        ],
    )
    ChainEntry.objects.filter(chain=chain).update(due_at=NOON)
    chains_advance()
    # then
    entry = ChainEntry.objects.get(chain=chain, member=member)
    assert (entry.state, entry.exit_reason) == (EntryState.EXITED, "exit:3")


def test_quiet_hours_defer_a_late_message_to_the_members_morning_in_each_zone(
    sms, make_member, happen, time_machine
):
    # given: a message ten hours after registering
    time_machine.move_to(dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC), tick=False)
    make_chain(("wait", {"hours": 10}), ("send", {"template": sms_template().pk}))
    vladivostok = make_member(time_zone="Asia/Vladivostok")
    happen("registration_completed", vladivostok)  # 10:00 there: due at 20:00, daytime
    time_machine.move_to(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC), tick=False)
    moscow = make_member(time_zone="Europe/Moscow")
    happen("registration_completed", moscow)  # 12:00 there: due at 22:00, quiet hours
    # when: the chains and the dispatcher run every hour for a day and a half
    for hour in range(0, 36):
        time_machine.move_to(
            dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC) + dt.timedelta(hours=hour), tick=False
        )
        chains_advance()
        dispatch_batch(gateway=sms)
    # then
    (east,) = sent(vladivostok)
    (west,) = sent(moscow)
    assert east.sent_at == dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)  # 20:00 in Vladivostok
    assert west.created_at == dt.datetime(2026, 11, 23, 19, 0, tzinfo=dt.UTC)  # 22:00 in Moscow
    assert west.sent_at == dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC)  # 09:00 in Moscow
    assert any("quiet hours" in reason for reason in west.history.values_list("reason", flat=True))


# --- the report ---------------------------------------------------------------------------------
def test_the_report_counts_members_at_each_step_who_left_and_why_and_the_messages(
    noon, sms, make_member, happen, buy
):
    # given: buyers leave at the condition; the others get a message and wait a week
    chain = make_chain(
        ("condition", {"test": "no_purchase", "on_false": "exit"}),
        ("send", {"template": sms_template().pk}),
        ("wait", {"days": 7}),
        turn_off=["friend_invited"],
    )
    waiting, buyer, inviter, finisher = (make_member() for _i in range(4))
    for member in (waiting, buyer, inviter, finisher):
        happen("registration_completed", member)
    noon.shift(dt.timedelta(minutes=1))
    buy(buyer)
    happen("friend_invited", inviter)
    chains_advance()
    dispatch_batch(gateway=sms)
    ChainEntry.objects.filter(chain=chain, member=finisher).update(step_at=NOON - 8 * DAY, due_at=NOON)
    chains_advance()
    # when
    report = chain_report(chain)
    # then
    assert [(f.step.order, f.active) for f in report.steps] == [(1, 0), (2, 0), (3, 1)]
    assert report.steps[1].messages == {Status.DELIVERED: 2}
    assert (report.entered, report.active, report.finished) == (4, 1, 1)
    assert [(reason, count) for reason, _label, count in report.exited] == [
        ("condition:1", 1),
        ("event:friend_invited", 1),
    ]


# --- saving ------------------------------------------------------------------------------------
def test_a_chain_is_refused_with_errors_naming_the_step_and_parameter(db):
    with pytest.raises(ValidationError) as caught:
        chain_save(
            chain=Chain(name="C", turn_on="registration_completed", turn_off=["no_such_event"]),
            steps=[{"order": 1, "kind": "wait", "params": {"days": -1}}],
        )
    assert "turn_off" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        chain_save(
            chain=Chain(name="C", turn_on="registration_completed"),
            steps=[{"order": 1, "kind": "wait", "params": {"days": -1}}],
        )
    assert list(caught.value.message_dict) == ["steps[0].days"]


def test_a_loop_back_without_a_wait_is_refused(db):
    template = sms_template()
    steps = [
        {"order": 1, "kind": "send", "params": {"template": template.pk}},
        {"order": 2, "kind": "goto", "params": {"step": 1}},
    ]
    with pytest.raises(ValidationError) as caught:
        chain_save(chain=Chain(name="C", turn_on="registration_completed"), steps=steps)
    assert list(caught.value.message_dict) == ["steps[1].step"]
    steps.insert(1, {"order": 2, "kind": "wait", "params": {"days": 7}})
    steps[2]["order"] = 3
    chain = chain_save(chain=Chain(name="C", turn_on="registration_completed"), steps=steps)
    assert chain.steps.count() == 3


def test_a_chain_without_steps_cannot_be_activated(db):
    chain = chain_save(chain=Chain(name="C", turn_on="registration_completed"))
    with pytest.raises(ValidationError):
        chain_activate(chain=chain)
    assert Chain.objects.get(pk=chain.pk).status == ChainStatus.DRAFT


# --- the step catalog ---------------------------------------------------------------------------
def _run_one(chain, member, happen, *, event="registration_completed"):
    happen(event, member)
    chains_advance()
    return ChainEntry.objects.filter(chain=chain, member=member).latest("id")


def _wait(ctx):
    chain = make_chain(("wait", {"hours": 2}))
    entry = _run_one(chain, ctx.member, ctx.happen)
    assert entry.state == EntryState.ACTIVE and entry.due_at == NOON + dt.timedelta(hours=2)
    ctx.noon.shift(dt.timedelta(hours=2))
    chains_advance()
    entry.refresh_from_db()
    assert entry.state == EntryState.FINISHED


def _wait_until(ctx):
    chain = make_chain(("wait_until", {"time": "10:00", "days": 1}))
    ctx.member.time_zone = "Asia/Yekaterinburg"  # noon in Moscow is 14:00 there
    ctx.member.save(update_fields=["time_zone"])
    entry = _run_one(chain, ctx.member, ctx.happen)
    assert entry.due_at == dt.datetime(2026, 11, 24, 5, 0, tzinfo=dt.UTC)  # 10:00 there the next day


def _wait_no_purchase(ctx):
    chain = make_chain(("wait_no_purchase", {"days": 3}))
    entry = _run_one(chain, ctx.member, ctx.happen)
    assert entry.due_at == NOON + 3 * DAY
    ctx.noon.shift(2 * DAY)
    ctx.buy(ctx.member)
    ctx.noon.shift(DAY)
    chains_advance()
    entry.refresh_from_db()
    assert (entry.state, entry.anchor_at, entry.due_at) == (EntryState.ACTIVE, NOON + 2 * DAY, NOON + 5 * DAY)


def _condition(ctx):
    segment = Segment.objects.create(
        name="Women", rule={"metric": "gender", "operator": "in", "value": ["female"]}
    )
    chain = make_chain(
        ("condition", {"test": "segment", "segment": segment.pk, "on_false": "goto", "goto_step": 3}),
        ("exit", {}),
        ("wait", {"days": 1}),
    )
    olga = factories.MemberFactory(first_name="Olga", gender="female")
    assert _run_one(chain, olga, ctx.happen).exit_reason == "exit:2"
    assert _run_one(chain, ctx.member, ctx.happen).step == 3


def _goto(ctx):
    chain = make_chain(("goto", {"step": 3}), ("send", {"template": sms_template().pk}), ("exit", {}))
    assert _run_one(chain, ctx.member, ctx.happen).exit_reason == "exit:3"
    assert sent() == []


def _exit(ctx):
    chain = make_chain(("exit", {}), ("send", {"template": sms_template().pk}))
    entry = _run_one(chain, ctx.member, ctx.happen)
    assert (entry.state, entry.exit_reason) == (EntryState.EXITED, "exit:1")
    assert sent() == []


def _send(ctx):
    chain = make_chain(("send", {"template": sms_template("{{ first_name }}: {{ event.code }}").pk}))
    ctx.happen("registration_completed", ctx.member, code="WELCOME")
    chains_advance()
    dispatch_batch(gateway=ctx.sms)
    (message,) = sent()
    assert message_content(message) == {"text": "Анна: WELCOME"} and message.origin_id == chain.steps.get().pk


def _bonus(ctx):
    chain = make_chain(("bonus", {"amount": "150", "lifetime_days": 30}))
    _run_one(chain, ctx.member, ctx.happen)
    chains_advance()
    account = BonusAccount.objects.get(member=ctx.member)
    assert account.available == Decimal("150")
    assert account.lots.get().expires_at == NOON + 30 * DAY


def _audience(ctx):
    audience = TargetAudience.objects.create(name="Chain members")
    chain = make_chain(("audience", {"audience": audience.pk, "action": "add"}))
    _run_one(chain, ctx.member, ctx.happen)
    assert AudienceMember.objects.filter(audience=audience, member=ctx.member).exists()
    leaving = make_chain(("audience", {"audience": audience.pk, "action": "remove"}), turn_on="website_visit")
    _run_one(leaving, ctx.member, ctx.happen, event="website_visit")
    assert not AudienceMember.objects.filter(audience=audience, member=ctx.member).exists()


KIND_CASES = {
    # key: (valid params, a refused parameter and its value, behaviour)
    "wait": ({"days": 1}, ("days", -1), _wait),
    "wait_until": ({"time": "09:30"}, ("time", "25:00"), _wait_until),
    "wait_no_purchase": ({"days": 14}, ("days", 0), _wait_no_purchase),
    "condition": ({"test": "purchase"}, ("test", "telepathy"), _condition),
    "goto": ({"step": 2}, ("step", 0), _goto),
    "exit": ({}, None, _exit),
    "send": (lambda: {"template": sms_template().pk}, ("template", 999999), _send),
    "bonus": ({"amount": "10"}, ("amount", "0"), _bonus),
    "audience": (
        lambda: {"audience": TargetAudience.objects.create(name="A").pk},
        ("action", "keep"),
        _audience,
    ),
}


def test_every_registered_step_kind_has_a_case():
    assert {cls.key for cls in step_kinds} == set(KIND_CASES)


class _Ctx:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.mark.parametrize("key", list(KIND_CASES))
def test_step_kind(key, noon, sms, make_member, happen, buy, currency):
    valid, refused, behaviour = KIND_CASES[key]
    cls = step_kinds.get(key)
    # a label
    assert str(cls.label)
    # valid parameters are stored in their JSON form
    params = valid() if callable(valid) else valid
    stored = step_validate(key, params)
    assert step_validate(key, stored) == stored
    # a wrong parameter is refused with an error naming it
    if refused is not None:
        name, value = refused
        with pytest.raises(ValidationError) as caught:
            step_validate(key, {**params, name: value})
        assert name in caught.value.message_dict
    # and it does what it says
    behaviour(_Ctx(noon=noon, sms=sms, member=make_member(), happen=happen, buy=buy))


def test_condition_parameters_that_depend_on_the_test_are_named(db):
    with pytest.raises(ValidationError) as caught:
        step_validate("condition", {"test": "event"})
    assert list(caught.value.message_dict) == ["event_type"]
    with pytest.raises(ValidationError) as caught:
        step_validate("condition", {"test": "purchase", "on_false": "goto"})
    assert list(caught.value.message_dict) == ["goto_step"]
    with pytest.raises(ValidationError) as caught:
        step_validate("wait", {})
    assert list(caught.value.message_dict) == ["days"]


def test_a_condition_on_an_event_since_entering(noon, make_member, happen):
    chain = make_chain(
        ("wait", {"days": 1}),
        ("condition", {"test": "event", "event_type": "website_visit", "on_false": "exit"}),
        ("wait", {"days": 1}),
    )
    visitor, absent = make_member(), make_member()
    happen("website_visit", visitor)  # before entering: does not count
    for member in (visitor, absent):
        happen("registration_completed", member)
    noon.shift(dt.timedelta(hours=1))
    happen("website_visit", visitor)
    noon.shift(DAY)
    chains_advance()
    assert entry_of(chain, visitor).step == 3
    left = ChainEntry.objects.get(chain=chain, member=absent)
    assert (left.state, left.exit_reason) == (EntryState.EXITED, "condition:2")


@pytest.mark.parametrize("tz", ["Europe/Moscow", "Asia/Vladivostok"])
def test_wait_until_is_the_members_local_time(tz, make_member, happen, time_machine):
    time_machine.move_to(NOON, tick=False)
    chain = make_chain(("wait_until", {"time": "10:00"}))
    member = make_member(time_zone=tz)
    happen("registration_completed", member)
    chains_advance()
    due = entry_of(chain, member).due_at.astimezone(ZoneInfo(tz))
    assert (due.date(), due.time()) == (dt.date(2026, 11, 24), dt.time(10, 0))


# --- PostgreSQL: real parallel connections -------------------------------------------------------
def _in_threads(n, fn):
    from django.db import connection as thread_connection

    barrier = threading.Barrier(n)
    outcomes, lock = [], threading.Lock()

    def worker(i):
        try:
            barrier.wait()
            result = fn(i)
        except Exception as exc:  # noqa: BLE001 - the outcome is what we assert on
            result = exc
        finally:
            thread_connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_starts_of_one_member_leave_one_pass(make_member):
    # given: a chain one may enter again after leaving it, and eight purchases at once
    chain = make_chain(("wait", {"days": 1}), turn_on="purchase_completed", reentry="after_exit")
    member = make_member()
    events = [event_record(event_type="purchase_completed", member=member) for _i in range(8)]
    # when
    outcomes = _in_threads(
        8, lambda i: chain_services.chain_entries_start(event=events[i], chain_ids=[chain.pk])
    )
    # then
    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert ChainEntry.objects.filter(chain=chain, member=member).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_runs_take_each_member_once(sms, make_member, happen, currency):
    # given: forty members due at a bonus step followed by a message
    chain = make_chain(("bonus", {"amount": "10"}), ("send", {"template": sms_template().pk}))
    for _i in range(40):
        happen("registration_completed", make_member())
    # when: four runs at once, in chunks of five
    outcomes = _in_threads(4, lambda i: chains_advance(chunk_size=5))
    # then: every member passed each step once
    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert sum(o.get("processed", 0) for o in outcomes) == 80
    assert sum(o.get("bonuses", 0) for o in outcomes) == 40
    assert len(sent()) == 40
    assert set(ChainEntry.objects.filter(chain=chain).values_list("state", flat=True)) == {
        EntryState.FINISHED
    }
