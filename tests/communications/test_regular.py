"""Regular notifications: birthday greetings with bonuses, burnout and activation notices,
each once per member and occasion, in the member's time zone and preferred channel."""

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from communications import tasks
from communications.models import DeviceToken, Message, MessageTemplate, Origin, Purpose, RegularTask, Status
from communications.services import regular
from communications.services.delivery import dispatch_batch
from communications.services.rendering import message_content
from communications.templating import template_errors
from loyalty.models import BonusAccount, BonusOperation, Currency, LedgerEntry, LotRemainder, SourceType
from loyalty.services import ledger

pytestmark = pytest.mark.django_db

TEXTS = {
    "birthday": (
        "Happy birthday, {{ first_name }}!"
        "{% if event.amount %} {{ event.amount }} bonuses are yours.{% endif %}"
    ),
    "burnout": "{{ first_name }}, {{ event.amount }} bonuses will expire on {{ event.date }}.",
    "activation": "{{ first_name }}, {{ event.amount }} bonuses will activate on {{ event.date }}.",
}
OFFER = ledger.Source(type=SourceType.OFFER, id="1")


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.fixture
def gateways(make_gateway):
    return {channel: make_gateway(f"file_{channel}") for channel in ("push", "sms", "email")}


@pytest.fixture
def set_up(gateways):
    def make(kind: str, *, channels=("sms", "email"), **fields) -> RegularTask:
        task = RegularTask.objects.get(kind=kind)
        for name, value in {"enabled": True, "channels": list(channels), **fields}.items():
            setattr(task, name, value)
        task.save()
        task.templates.set(
            MessageTemplate.objects.create(
                name=f"{kind} {channel}", channel=channel, subject="News", title="News", text=TEXTS[kind]
            )
            for channel in channels
        )
        return task

    return make


def run(kind: str, when: dt.datetime) -> dict:
    with time_machine.travel(when, tick=False):
        return regular.regular_run(kinds=[kind])[kind]


def sent_texts(member, gateway) -> list[str]:
    dispatch_batch(gateway=gateway)
    return [
        message_content(m).get("text") or message_content(m).get("body")
        for m in Message.objects.filter(member=member).order_by("pk")
    ]


def accrue(member, amount, *, at, expires_at=None, activates_at=None, currency=None):
    account = ledger.account_get_or_create(member=member, currency=currency)
    return ledger.bonus_accrue(
        account=account, amount=amount, source=OFFER, at=at, expires_at=expires_at, activates_at=activates_at
    )


# --- birthday -------------------------------------------------------------------------------------


def test_birthday_greeting_goes_out_once_when_the_members_morning_comes(set_up, make_member, gateways):
    # given a Moscow member born on 23 November and the greeting at 10:00 local
    set_up("birthday", send_time=dt.time(10))
    member = make_member(first_name="Olga", birth_date=dt.date(1990, 11, 23))
    make_member(birth_date=dt.date(1990, 11, 24))
    # when the task runs before and at 10:00 Moscow time, and again a quarter later
    early = run("birthday", utc(2026, 11, 23, 6, 45))
    on_time = run("birthday", utc(2026, 11, 23, 7, 0))
    again = run("birthday", utc(2026, 11, 23, 7, 15))
    # then one greeting was queued, by SMS, and it goes out
    assert early["found"] == 0 and early["queued"] == {}
    assert (on_time["found"], on_time["new"], on_time["queued"]) == (1, 1, {"sms": 1})
    assert (again["found"], again["new"], again["queued"]) == (1, 0, {})
    message = Message.objects.get()
    assert (message.member, message.origin, message.occurrence) == (member, Origin.REGULAR, "2026")
    assert message.purpose == Purpose.MARKETING
    with time_machine.travel(utc(2026, 11, 23, 7, 20), tick=False):
        assert sent_texts(member, gateways["sms"]) == ["Happy birthday, Olga!"]
    message.refresh_from_db()
    assert message.status == Status.DELIVERED


def test_greeting_days_before_the_birthday_names_the_day(set_up, make_member, gateways):
    set_up("birthday", days_before=3, send_time=dt.time(10))
    day_text = "See you on {{ event.date }}, in {{ event.days }} days!"
    MessageTemplate.objects.filter(channel="sms").update(text=day_text)
    ahead = make_member(birth_date=dt.date(1985, 11, 26))
    today = make_member(birth_date=dt.date(1985, 11, 23))
    figures = run("birthday", utc(2026, 11, 23, 8, 0))
    assert figures["found"] == 1
    with time_machine.travel(utc(2026, 11, 23, 8, 5), tick=False):
        assert sent_texts(ahead, gateways["sms"]) == ["See you on 26 Nov 2026, in 3 days!"]
    assert not Message.objects.filter(member=today).exists()


def test_members_are_greeted_in_their_own_time_zone(set_up, make_member):
    # given two members born on 24 November, in Vladivostok (UTC+10) and Kaliningrad (UTC+2)
    set_up("birthday", send_time=dt.time(10))
    east = make_member(time_zone="Asia/Vladivostok", birth_date=dt.date(1991, 11, 24))
    west = make_member(time_zone="Europe/Kaliningrad", birth_date=dt.date(1992, 11, 24))
    # when the task runs at 23:30 UTC on the 23rd (09:30 on the 24th in Vladivostok) and at 00:30
    run("birthday", utc(2026, 11, 23, 23, 30))
    assert not Message.objects.exists()
    run("birthday", utc(2026, 11, 24, 0, 30))
    # then only the Vladivostok member has a greeting (it is 02:30 in Kaliningrad)
    assert list(Message.objects.values_list("member", flat=True)) == [east.pk]
    # and the other gets hers at 10:00 her time
    run("birthday", utc(2026, 11, 24, 7, 45))
    assert Message.objects.count() == 1
    run("birthday", utc(2026, 11, 24, 8, 0))
    assert sorted(Message.objects.values_list("member", "occurrence")) == [
        (east.pk, "2026"),
        (west.pk, "2026"),
    ]


def test_a_29_february_birthday_is_greeted_on_28_february_in_other_years(set_up, make_member):
    set_up("birthday", send_time=dt.time(9))
    leapling = make_member(birth_date=dt.date(2000, 2, 29))
    late_feb = make_member(birth_date=dt.date(2001, 2, 28))
    # 2027 is not a leap year: both on the 28th, nobody on 1 March
    assert run("birthday", utc(2027, 2, 28, 6, 0))["found"] == 2
    assert run("birthday", utc(2027, 3, 1, 6, 0))["found"] == 0
    # 2028 is: each on their own day
    assert run("birthday", utc(2028, 2, 28, 6, 0))["found"] == 1
    assert run("birthday", utc(2028, 2, 29, 6, 0))["found"] == 1
    assert sorted(Message.objects.values_list("member", "occurrence")) == sorted(
        [(leapling.pk, "2027"), (late_feb.pk, "2027"), (late_feb.pk, "2028"), (leapling.pk, "2028")]
    )


def test_birthday_bonuses_are_accrued_once_a_year_even_to_members_out_of_reach(set_up, make_member):
    # given 500 bonuses for 30 days with the greeting
    task = set_up("birthday", send_time=dt.time(10), bonus_amount=Decimal(500), bonus_lifetime_days=30)
    reachable = make_member(birth_date=dt.date(1980, 5, 10))
    silent = make_member(birth_date=dt.date(1981, 5, 10), consents=())
    # when the task runs three times on the day and again next year
    for minute in (0, 15, 30):
        figures = run("birthday", utc(2026, 5, 10, 7, minute))
        assert figures["accrued"] == (2 if minute == 0 else 0)
    run("birthday", utc(2027, 5, 10, 7, 0))
    # then each got 500 a year, in lots that expire after 30 days
    for member in (reachable, silent):
        account = BonusAccount.objects.get(member=member)
        assert account.available == Decimal(1000)
        ops = BonusOperation.objects.filter(account=account).order_by("created_at")
        assert [op.idempotency_key for op in ops] == [
            f"birthday:2026:{member.pk}",
            f"birthday:2027:{member.pk}",
        ]
        assert {op.source_type for op in ops} == {SourceType.REGULAR_TASK} and ops[0].source_id == str(
            task.pk
        )
        lot = account.lots.order_by("created_at").first()
        assert lot.expires_at == utc(2026, 6, 9, 7, 0)
    # and only the reachable one was greeted, once a year
    assert list(Message.objects.values_list("member", "occurrence").order_by("occurrence")) == [
        (reachable.pk, "2026"),
        (reachable.pk, "2027"),
    ]


def test_greeting_names_the_birthday_bonuses(set_up, make_member, gateways):
    set_up("birthday", send_time=dt.time(10), bonus_amount=Decimal("250.50"))
    member = make_member(first_name="Ivan", birth_date=dt.date(1970, 1, 15))
    run("birthday", utc(2026, 1, 15, 7, 0))
    with time_machine.travel(utc(2026, 1, 15, 7, 1), tick=False):
        assert sent_texts(member, gateways["sms"]) == ["Happy birthday, Ivan! 250.5 bonuses are yours."]


def test_a_run_that_crashes_midway_leaves_nothing_and_the_rerun_does_everything_once(
    set_up, make_member, monkeypatch
):
    # given members reachable by SMS and by email only, and birthday bonuses
    set_up("birthday", send_time=dt.time(10), bonus_amount=Decimal(100))
    by_sms = make_member(birth_date=dt.date(1990, 7, 1))
    by_email = make_member(birth_date=dt.date(1990, 7, 1), consents=("email",))
    queue = regular.messages_queue
    calls = []

    def crash_on_email(**kwargs):
        calls.append(kwargs["channel"])
        if kwargs["channel"] == "email":
            raise ConnectionError("the database went away")
        return queue(**kwargs)

    # when the run crashes after the SMS were queued
    monkeypatch.setattr(regular, "messages_queue", crash_on_email)
    with pytest.raises(ConnectionError):
        run("birthday", utc(2026, 7, 1, 7, 0))
    assert calls == ["sms", "email"]
    # then nothing of it stayed
    assert not Message.objects.exists() and not BonusOperation.objects.exists()
    # and the rerun, and another, greet and accrue exactly once per member
    monkeypatch.setattr(regular, "messages_queue", queue)
    run("birthday", utc(2026, 7, 1, 7, 15))
    run("birthday", utc(2026, 7, 1, 7, 30))
    assert sorted(Message.objects.values_list("member", "channel")) == sorted(
        [(by_sms.pk, "sms"), (by_email.pk, "email")]
    )
    assert BonusOperation.objects.count() == 2
    for member in (by_sms, by_email):
        assert BonusAccount.objects.get(member=member).available == 100


def test_blocked_members_are_neither_greeted_nor_given_bonuses(set_up, make_member):
    set_up("birthday", send_time=dt.time(10), bonus_amount=Decimal(100))
    make_member(birth_date=dt.date(1990, 7, 1), state="blocked")
    figures = run("birthday", utc(2026, 7, 1, 7, 0))
    assert (figures["found"], figures["accrued"]) == (0, 0)
    assert not Message.objects.exists() and not BonusAccount.objects.exists()


# --- burnout and activation -----------------------------------------------------------------------


def test_burnout_notice_names_what_the_lots_hold_and_each_expiry_once(set_up, make_member, gateways):
    # given lots of 100 expiring in 3 days, 50 in 5 days and 70 in 20 days (Moscow, UTC+3)
    set_up("burnout", days_before=7, send_time=dt.time(10))
    member = make_member()
    t0 = utc(2026, 11, 20, 9, 0)
    accrue(member, 100, at=t0, expires_at=utc(2026, 11, 26, 12, 0))
    accrue(member, 50, at=t0, expires_at=utc(2026, 11, 28, 12, 0))
    accrue(member, 70, at=t0, expires_at=utc(2026, 12, 13, 12, 0))
    # when the task runs on 23 November, twice
    figures = run("burnout", utc(2026, 11, 23, 7, 0))
    run("burnout", utc(2026, 11, 23, 9, 0))
    # then one notice names the 150 expiring within the week and the first date
    assert figures["queued"] == {"sms": 1}
    message = Message.objects.get()
    assert (message.occurrence, message.purpose) == ("2026-11-26", Purpose.SERVICE)
    with time_machine.travel(utc(2026, 11, 23, 9, 1), tick=False):
        assert sent_texts(member, gateways["sms"]) == ["Анна, 150 bonuses will expire on 26 Nov 2026."]
    assert message.render["event"]["days"] == 3
    # and after the first lot burned, the next expiry date is announced once more
    ledger.bonuses_expire(now=utc(2026, 11, 26, 12, 0))
    run("burnout", utc(2026, 11, 27, 7, 0))
    run("burnout", utc(2026, 11, 27, 8, 0))
    latest = Message.objects.order_by("-pk").first()
    assert Message.objects.count() == 2 and latest.occurrence == "2026-11-28"
    assert latest.render["event"]["amount"] == "50" and latest.render["event"]["days"] == 1


def test_burnout_notice_counts_what_is_left_after_spending(set_up, make_member):
    set_up("burnout", days_before=7, send_time=dt.time(10))
    spent_all, spent_some = make_member(), make_member()
    for member in (spent_all, spent_some):
        accrue(member, 100, at=utc(2026, 11, 1, 9, 0), expires_at=utc(2026, 11, 25, 21, 0))
    spend = BonusAccount.objects.get(member=spent_all)
    ledger.bonus_spend(account=spend, amount=100, source=OFFER, at=utc(2026, 11, 22, 9, 0))
    ledger.bonus_spend(
        account=BonusAccount.objects.get(member=spent_some),
        amount=60,
        source=OFFER,
        at=utc(2026, 11, 22, 9, 0),
    )
    figures = run("burnout", utc(2026, 11, 23, 7, 0))
    assert figures["found"] == 1
    message = Message.objects.get()
    assert message.member == spent_some and message.render["event"]["amount"] == "40"
    # the local date: 21:00 UTC on the 25th is already the 26th in Moscow
    assert message.occurrence == "2026-11-26"


def test_notices_need_the_minimum_amount_in_the_chosen_currency(set_up, make_member):
    gift = Currency.objects.create(code="gift", name="Gift points")
    set_up("burnout", days_before=7, send_time=dt.time(10), min_amount=Decimal(100), currency=gift)
    few, enough, other_currency = make_member(), make_member(), make_member()
    expires = utc(2026, 11, 25, 12, 0)
    accrue(few, 80, at=utc(2026, 11, 1), expires_at=expires, currency=gift)
    accrue(enough, 60, at=utc(2026, 11, 1), expires_at=expires, currency=gift)
    accrue(enough, 40, at=utc(2026, 11, 2), expires_at=utc(2026, 11, 24, 12, 0), currency=gift)
    accrue(other_currency, 500, at=utc(2026, 11, 1), expires_at=expires)
    run("burnout", utc(2026, 11, 23, 7, 0))
    message = Message.objects.get()
    assert message.member == enough
    assert message.render["event"]["amount"] == "100" and message.occurrence == "2026-11-24"


def test_activation_notice_names_the_pending_bonuses_due_within_the_days(set_up, make_member, gateways):
    set_up("activation", days_before=1, send_time=dt.time(12))
    soon, later = make_member(), make_member()
    t0 = utc(2026, 11, 20, 9, 0)
    accrue(soon, Decimal("35.5"), at=t0, activates_at=utc(2026, 11, 24, 6, 0))
    accrue(soon, 20, at=t0, activates_at=utc(2026, 11, 24, 8, 0))
    accrue(later, 80, at=t0, activates_at=utc(2026, 11, 27, 6, 0))
    figures = run("activation", utc(2026, 11, 23, 9, 0))
    assert (figures["found"], figures["queued"]) == (1, {"sms": 1})
    with time_machine.travel(utc(2026, 11, 23, 9, 1), tick=False):
        assert sent_texts(soon, gateways["sms"]) == ["Анна, 55.5 bonuses will activate on 24 Nov 2026."]
    # once they are active there is nothing more to announce
    ledger.bonuses_activate(now=utc(2026, 11, 24, 8, 0))
    run("activation", utc(2026, 11, 24, 9, 0))
    assert Message.objects.count() == 1


# --- channels, quiet hours, the command ------------------------------------------------------------


def test_each_member_gets_the_first_channel_they_can_be_reached_on(set_up, make_member):
    # given push, then SMS, then email
    set_up("birthday", channels=("push", "sms", "email"), send_time=dt.time(10))
    born = {"birth_date": dt.date(1990, 3, 3)}
    app_user = make_member(**born)
    DeviceToken.objects.create(member=app_user, app="club", platform="android", token="tok-1")
    no_app = make_member(**born)
    no_sms_consent = make_member(consents=("email", "push"), **born)
    nothing = make_member(consents=(), **born)
    # when
    figures = run("birthday", utc(2026, 3, 3, 7, 0))
    # then
    assert dict(Message.objects.values_list("member", "channel")) == {
        app_user.pk: "push",
        no_app.pk: "sms",
        no_sms_consent.pk: "email",
    }
    assert (figures["found"], figures["new"]) == (4, 4)
    assert figures["queued"] == {"push": 1, "sms": 1, "email": 1}
    assert not Message.objects.filter(member=nothing).exists()
    # and a member who became reachable on a better channel is not greeted twice
    DeviceToken.objects.create(member=no_app, app="club", platform="android", token="tok-2")
    again = run("birthday", utc(2026, 3, 3, 8, 0))
    assert again["new"] == 1  # the one who cannot be reached is still waiting
    assert sum(again["queued"].values()) == 0 and Message.objects.count() == 3


def test_channels_without_a_template_or_a_gateway_are_passed_over(set_up, make_member, gateways):
    task = set_up("birthday", channels=("sms", "email"), send_time=dt.time(10))
    task.channels = ["viber", "sms", "email"]
    task.save()
    gateways["sms"].enabled = False
    gateways["sms"].save()
    make_member(birth_date=dt.date(1990, 3, 3))
    figures = run("birthday", utc(2026, 3, 3, 7, 0))
    assert figures["left_out"] == {"viber": "no template", "sms": "no gateway"}
    assert figures["queued"] == {"email": 1}


def test_a_greeting_in_quiet_hours_waits_for_each_members_morning(set_up, make_member, gateways):
    # given the greeting at 08:00 local, inside the SMS quiet hours (21:00-09:00)
    set_up("birthday", send_time=dt.time(8))
    east = make_member(time_zone="Asia/Vladivostok", birth_date=dt.date(1990, 11, 24))
    west = make_member(time_zone="Europe/Moscow", birth_date=dt.date(1990, 11, 24))
    sms = gateways["sms"]
    # when it is 08:30 in Vladivostok
    with time_machine.travel(utc(2026, 11, 23, 22, 30), tick=False):
        regular.regular_run()
        report = dispatch_batch(gateway=sms)
    # then the greeting is deferred to 09:00 there, not dropped
    first = Message.objects.get(member=east)
    assert report.deferred == 1 and first.status == Status.QUEUED
    assert first.next_attempt_at == utc(2026, 11, 23, 23, 0)
    # and at 08:30 in Moscow the Vladivostok one goes, the Moscow one waits for 09:00 Moscow
    with time_machine.travel(utc(2026, 11, 24, 5, 30), tick=False):
        regular.regular_run()
        dispatch_batch(gateway=sms)
    first.refresh_from_db()
    second = Message.objects.get(member=west)
    assert first.status == Status.DELIVERED
    assert second.status == Status.QUEUED and second.next_attempt_at == utc(2026, 11, 24, 6, 0)
    with time_machine.travel(utc(2026, 11, 24, 6, 0), tick=False):
        dispatch_batch(gateway=sms)
    second.refresh_from_db()
    assert second.status == Status.DELIVERED


def test_runs_record_their_figures_and_skip_what_is_switched_off(set_up, make_member):
    task = set_up("birthday", send_time=dt.time(10))
    make_member(birth_date=dt.date(1990, 3, 3))
    with time_machine.travel(utc(2026, 3, 3, 7, 0), tick=False):
        assert set(tasks.regular_run()) == {"birthday"}  # the beat task runs the enabled ones
    task.refresh_from_db()
    assert task.last_run_at == utc(2026, 3, 3, 7, 0)
    assert task.last_run["found"] == 1 and task.last_run["queued"] == {"sms": 1}
    task.enabled = False
    task.save()
    with time_machine.travel(utc(2026, 3, 3, 8, 0), tick=False):
        assert regular.regular_run() == {}
        assert regular.regular_run(kinds=["birthday"]) == {"birthday": {"skipped": "disabled"}}


def test_the_command_runs_a_notification_now_and_prints_its_figures(set_up, make_member):
    set_up("birthday", send_time=dt.time(10), bonus_amount=Decimal(50))
    set_up("burnout", send_time=dt.time(10))
    make_member(birth_date=dt.date(1990, 3, 3))
    out = StringIO()
    call_command("run_regular_task", "birthday", "--now", "2026-03-03T10:30:00+03:00", stdout=out)
    assert out.getvalue().strip() == "birthday: zones due 2, found 1, new 1, queued sms 1, accrued 1"
    out = StringIO()
    call_command("run_regular_task", "--all", "--now", "2026-03-03T10:45:00+03:00", stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["birthday", "burnout"]
    assert "found 1, new 0, queued 0, accrued 0" in lines[0]
    with pytest.raises(CommandError):
        call_command("run_regular_task", "anniversary")
    with pytest.raises(CommandError):
        call_command("run_regular_task")


def test_notice_event_is_valid_json_for_every_member(set_up, make_member):
    set_up("burnout", days_before=2, send_time=dt.time(10))
    members = [make_member(time_zone=zone) for zone in ("Europe/Moscow", "Asia/Vladivostok", "", "Mars/Base")]
    for member in members:
        accrue(member, Decimal("10.25"), at=utc(2026, 11, 1), expires_at=utc(2026, 11, 24, 12, 0))
    figures = run("burnout", utc(2026, 11, 23, 9, 0))
    assert figures["found"] == 4
    events = {m.member_id: m.render["event"] for m in Message.objects.all()}
    assert events[members[1].pk] == {"amount": "10.25", "date": "24 Nov 2026", "days": 1}
    # members without a known zone count in the program's zone
    assert (
        events[members[2].pk]
        == events[members[3].pk]
        == {"amount": "10.25", "date": "24 Nov 2026", "days": 1}
    )
    assert LotRemainder.objects.count() == 4 and LedgerEntry.objects.count() == 4
    assert json.dumps(events)


# --- the back office ----------------------------------------------------------------------------


def burnout_form(task, **changes) -> dict:
    data = {
        "enabled": "on",
        "send_time": "11:00",
        "days_before": "5",
        "min_amount": "10",
        "currency": "",
        "channel_1": "email",
        "channel_2": "sms",
        "channel_3": "",
        "channel_4": "",
        "channel_5": "",
        "templates": [t.pk for t in task.templates.all()],
        "category": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_three_notifications_are_set_up_once_and_edited_in_place(admin_client, set_up):
    # given
    task = set_up("burnout", channels=("sms", "email"))
    # then the list has the three, and nothing can be added or deleted
    page = admin_client.get("/admin/communications/regulartask/")
    assert page.status_code == 200
    assert page.content.decode().count("/change/") >= 3
    assert admin_client.get("/admin/communications/regulartask/add/").status_code == 403
    assert admin_client.get(f"/admin/communications/regulartask/{task.pk}/delete/").status_code == 403
    # when the order of the channels and the days are changed
    url = f"/admin/communications/regulartask/{task.pk}/change/"
    assert "Save and run now" in admin_client.get(url).content.decode()
    response = admin_client.post(url, burnout_form(task))
    # then
    assert response.status_code == 302, response.content.decode()[:3000]
    task.refresh_from_db()
    assert (task.channels, task.days_before, task.send_time) == (["email", "sms"], 5, dt.time(11))


def test_templates_must_match_the_chosen_channels(admin_client, set_up):
    task = set_up("burnout", channels=("sms", "email"))
    url = f"/admin/communications/regulartask/{task.pk}/change/"
    push = MessageTemplate.objects.create(name="Push", channel="push", title="t", text="x")
    response = admin_client.post(url, burnout_form(task, channel_2=""))
    assert response.status_code == 200
    assert "is for SMS, which is not among the channels" in response.content.decode()
    response = admin_client.post(url, burnout_form(task, channel_2="email"))
    assert "is chosen twice" in response.content.decode()
    extra = list(task.templates.values_list("pk", flat=True)) + [push.pk]
    response = admin_client.post(url, burnout_form(task, templates=extra, channel_3="push"))
    assert response.status_code == 302
    response = admin_client.post(url, burnout_form(task, templates=[], channel_3="push"))
    assert "choose a channel and a template" in response.content.decode()


def test_run_now_from_the_form_and_the_list_shows_the_figures(admin_client, set_up, make_member):
    task = set_up("burnout", channels=("sms", "email"), send_time=dt.time(0))
    member = make_member()
    accrue(member, 30, at=utc(2026, 11, 1), expires_at=utc(2026, 11, 25, 12, 0))
    url = f"/admin/communications/regulartask/{task.pk}/change/"
    with time_machine.travel(utc(2026, 11, 23, 9, 0), tick=False):
        response = admin_client.post(url, burnout_form(task, _run_now="1", send_time="00:00"), follow=True)
        page = response.content.decode()
        assert "members concerned: 1" in page and "messages queued: Email: 1" in page
        assert Message.objects.filter(member=member, channel="email").count() == 1
        response = admin_client.post(
            "/admin/communications/regulartask/",
            {"action": "run_now", "_selected_action": [task.pk]},
            follow=True,
        )
        assert "of them not notified before: 0" in response.content.decode()
    assert Message.objects.count() == 1
    task.refresh_from_db()
    assert task.last_run["found"] == 1


def test_demo_seed_switches_the_notifications_on_with_valid_templates(make_member, gateways):
    # given
    out = StringIO()
    call_command("seed_demo_regular", stdout=out)
    call_command("seed_demo_regular", stdout=out)
    # then the three are on, each with an SMS and an email template, added once
    assert MessageTemplate.objects.count() == 6
    for task in RegularTask.objects.all():
        assert task.enabled and sorted(task.templates.values_list("channel", flat=True)) == ["email", "sms"]
        for template in task.templates.all():
            assert all(not template_errors(part) for part in template.parts().values())
    # and a birthday greets with the demo bonuses
    member = make_member(first_name="Olga", gender="female", birth_date=dt.date(1990, 3, 3))
    run("birthday", utc(2026, 3, 3, 7, 0))
    with time_machine.travel(utc(2026, 3, 3, 7, 1), tick=False):
        assert sent_texts(member, gateways["sms"]) == [
            "Dear Olga, happy birthday! 200 bonuses are waiting for you until 2 Apr 2026."
        ]
