"""Mass mailings: preliminary cost, set-wise preparation, rendering at send time, pause /
resume / cancel, local send times, the report and the calendar."""

import datetime as dt
import email
import email.policy
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.exceptions import ValidationError

from communications.models import (
    CategoryOptOut,
    Mailing,
    MailingCategory,
    MailingStatus,
    Message,
    MessageTemplate,
    Origin,
    Status,
    Suppression,
)
from communications.services.delivery import dispatch_batch
from communications.services.mailings import (
    PAUSED_UNTIL,
    mailing_calendar,
    mailing_cancel,
    mailing_estimate,
    mailing_launch,
    mailing_pause,
    mailing_prepare,
    mailing_report,
    mailing_resume,
    mailings_start_due,
)
from loyalty.services.members import consent_set
from segments.models import AudienceMember, GlobalControlGroup, TargetAudience

pytestmark = pytest.mark.django_db


@pytest.fixture
def audience(db):
    return TargetAudience.objects.create(name="VIP")


@pytest.fixture
def sms_template(db):
    return MessageTemplate.objects.create(
        name="Autumn", channel="sms", text="{{ first_name }}, your balance is {{ balance }}."
    )


@pytest.fixture(autouse=True)
def tasks_inline(monkeypatch):
    """Preparation runs in the test's process; dispatch tasks are recorded, not started
    (the tests run the dispatcher themselves)."""
    from communications import tasks

    started: list[int] = []
    monkeypatch.setattr(tasks.mailing_prepare, "delay", lambda pk: tasks.mailing_prepare(pk))
    monkeypatch.setattr(tasks.dispatch, "delay", started.append)
    return started


@pytest.fixture
def launch(django_capture_on_commit_callbacks):
    def run(mailing):
        with django_capture_on_commit_callbacks(execute=True):
            return mailing_launch(mailing=mailing)

    return run


def fill(audience, members):
    AudienceMember.objects.bulk_create([AudienceMember(audience=audience, member=m) for m in members])


def make_mailing(audience, template, **fields):
    fields.setdefault("channel", template.channel)
    return Mailing.objects.create(name="Autumn sale", template=template, audience=audience, **fields)


def test_the_estimate_counts_reachable_members_and_prices_sms_segments(
    noon, make_gateway, make_member, audience, sms_template
):
    # given: five members; one without consent, one suppressed, one opted out of the category
    make_gateway("file_sms", price="2", price_unit="segment")
    members = [make_member(first_name="Анна") for _ in range(5)]
    consent_set(member=members[0], channel="sms", granted=False, source="test")
    Suppression.objects.create(channel="sms", address=members[1].phone, reason="manual")
    news = MailingCategory.objects.create(code="news", name="News")
    CategoryOptOut.objects.create(member=members[2], category=news)
    fill(audience, members)
    sms_template.text = (
        "{{ first_name }}, " + "осень " * 30
    )  # 186 Cyrillic characters: three UCS-2 segments of 67
    sms_template.save()
    mailing = make_mailing(audience, sms_template, category=news)
    # when
    estimate = mailing_estimate(mailing=mailing)
    # then
    assert estimate["audience"] == 5 and estimate["reachable"] == 2 and estimate["unreachable"] == 3
    assert Decimal(estimate["segments"]) == 3
    assert Decimal(estimate["cost"]) == Decimal("12.00")  # 2 members × 3 segments × 2


def test_a_launched_mailing_writes_one_message_per_reachable_member_and_renders_at_send(
    launch, noon, make_gateway, make_member, audience, sms_template
):
    # given
    gateway = make_gateway("file_sms")
    members = [make_member(first_name=f"Member{i}") for i in range(3)]
    no_phone = make_member(phone="")
    fill(audience, [*members, no_phone])
    mailing = make_mailing(audience, sms_template)
    # when
    launch(mailing)
    mailing.refresh_from_db()
    # then: prepared on commit (tasks run eagerly in tests), rendered only when sent
    assert mailing.status == MailingStatus.SENDING and mailing.prepared_count == 3
    assert mailing.audience_count == 4 and mailing.excluded_count == 1
    queued = Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk)
    assert all(m.content == {} and m.render["template"] == sms_template.pk for m in queued)
    dispatch_batch(gateway=gateway)
    sent = {m.member_id: m for m in queued.all()}
    for member in members:
        message = sent[member.pk]
        assert message.status == Status.DELIVERED
        text = Path(settings.OUTBOX_DIR, "sms", message.provider_message_id).read_text()
        assert f"{member.first_name}, your balance is 0." in text


def test_preparing_twice_writes_nothing_new(launch, noon, make_gateway, make_member, audience, sms_template):
    make_gateway("file_sms")
    fill(audience, [make_member() for _ in range(3)])
    mailing = make_mailing(audience, sms_template)
    launch(mailing)
    Mailing.objects.filter(pk=mailing.pk).update(status=MailingStatus.PREPARING)
    # when: a crashed worker's task runs again
    mailing_prepare(mailing=mailing)
    # then
    assert Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk).count() == 3


def test_control_groups_are_held_out(launch, noon, make_gateway, make_member, audience, sms_template):
    make_gateway("file_sms")
    fill(audience, [make_member() for _ in range(40)])
    GlobalControlGroup.objects.update_or_create(
        pk=1, defaults={"enabled": True, "share_percent": 10, "salt": 3}
    )
    mailing = make_mailing(audience, sms_template, control_share=Decimal(25))
    estimate = mailing_estimate(mailing=mailing)
    launch(mailing)
    mailing.refresh_from_db()
    # then: the estimate and the preparation agree, and nobody held out gets a message
    from segments.control import in_control_group, in_global_control_group

    held = [
        m.pk
        for m in [a.member for a in AudienceMember.objects.filter(audience=audience)]
        if in_control_group(m.pk, salt=mailing.pk, share_percent=25) or in_global_control_group(m.pk)
    ]
    assert held and estimate["control"] == len(held) == mailing.control_count
    assert mailing.prepared_count == 40 - len(held)
    assert not Message.objects.filter(origin=Origin.MAILING, member_id__in=held).exists()


def test_pause_and_resume_never_send_a_member_twice(
    launch, noon, make_gateway, make_member, audience, sms_template
):
    # given: a mailing half sent
    gateway = make_gateway("file_sms")
    fill(audience, [make_member() for _ in range(6)])
    mailing = make_mailing(audience, sms_template)
    launch(mailing)
    dispatch_batch(gateway=gateway, limit=3)
    # when
    waiting = mailing_pause(mailing=mailing)
    paused_run = dispatch_batch(gateway=gateway)
    mailing_resume(mailing=mailing)
    dispatch_batch(gateway=gateway)
    # then
    messages = Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk)
    assert waiting == 3 and paused_run.claimed == 0
    assert messages.filter(status=Status.DELIVERED).count() == 6
    assert messages.values("member_id").distinct().count() == 6
    assert not messages.filter(next_attempt_at=PAUSED_UNTIL).exists()


def test_cancel_stops_what_has_not_been_sent(launch, noon, make_gateway, make_member, audience, sms_template):
    gateway = make_gateway("file_sms")
    fill(audience, [make_member() for _ in range(4)])
    mailing = make_mailing(audience, sms_template)
    launch(mailing)
    dispatch_batch(gateway=gateway, limit=1)
    cancelled = mailing_cancel(mailing=mailing)
    report = mailing_report(mailing)
    assert cancelled == 3 and report["sent"] == 1 and report["by_status"]["cancelled"] == 3


def test_a_mailing_at_a_local_time_reaches_each_zone_at_its_own_ten_o_clock(
    launch, make_gateway, make_member, audience, sms_template
):
    # given: members in Kaliningrad (UTC+2) and Vladivostok (UTC+10)
    gateway = make_gateway("file_sms")
    west = make_member(time_zone="Europe/Kaliningrad")
    east = make_member(time_zone="Asia/Vladivostok")
    fill(audience, [west, east])
    mailing = make_mailing(
        audience, sms_template, schedule="local", local_date=dt.date(2026, 11, 24), local_time=dt.time(10)
    )
    with time_machine.travel(dt.datetime(2026, 11, 23, 20, 0, tzinfo=dt.UTC), tick=False) as clock:
        launch(mailing)
        assert Mailing.objects.get(pk=mailing.pk).status == MailingStatus.SCHEDULED
        # when: 00:00 UTC is 10:00 in Vladivostok
        clock.move_to(dt.datetime(2026, 11, 24, 0, 0, tzinfo=dt.UTC))
        mailings_start_due()
        dispatch_batch(gateway=gateway)
        first = set(Message.objects.filter(status=Status.DELIVERED).values_list("member_id", flat=True))
        # 08:00 UTC is 10:00 in Kaliningrad
        clock.move_to(dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC))
        dispatch_batch(gateway=gateway)
        second = set(Message.objects.filter(status=Status.DELIVERED).values_list("member_id", flat=True))
        mailings_start_due()
    # then
    assert first == {east.pk} and second == {east.pk, west.pk}
    assert Mailing.objects.get(pk=mailing.pk).status == MailingStatus.DONE


def test_a_mailing_without_an_audience_is_refused_on_its_field(make_gateway, sms_template):
    make_gateway("file_sms")
    mailing = Mailing.objects.create(name="x", channel="sms", template=sms_template)
    with pytest.raises(ValidationError) as info:
        mailing_launch(mailing=mailing)
    assert "audience" in info.value.message_dict


def test_a_template_of_another_channel_is_refused(make_gateway, audience, sms_template):
    make_gateway("file_email")
    mailing = make_mailing(audience, sms_template, channel="email")
    with pytest.raises(ValidationError) as info:
        mailing_estimate(mailing=mailing)
    assert "template" in info.value.message_dict


def test_the_report_counts_statuses_reasons_and_cost(
    launch, noon, make_gateway, make_member, audience, sms_template
):
    gateway = make_gateway("file_sms", price="1.5")
    members = [make_member() for _ in range(3)]
    fill(audience, members)
    mailing = make_mailing(audience, sms_template)
    launch(mailing)
    Suppression.objects.create(channel="sms", address=members[0].phone, reason="manual")
    dispatch_batch(gateway=gateway)
    report = mailing_report(mailing)
    assert report["sent"] == 2 and report["delivered"] == 2 and report["failed"] == 1
    assert report["cost"] == Decimal("3.0") and report["progress"] == 100
    assert report["reasons"][0]["status"] == "suppressed"
    assert report["timeline"][0][1] == {"sent": 2, "delivered": 2}


def test_the_calendar_shows_planned_and_sent_mailings_by_day(
    launch, noon, make_gateway, make_member, audience, sms_template
):
    make_gateway("file_sms")
    fill(audience, [make_member()])
    sent = make_mailing(audience, sms_template)
    launch(sent)
    planned = make_mailing(
        audience, sms_template, schedule="at", send_at=dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
    )
    mailing_estimate(mailing=planned)
    launch(planned)
    days = mailing_calendar(year=2026, month=11)
    assert [(e["mailing"].pk, e["volume"], e["planned"]) for e in days[dt.date(2026, 11, 23)]] == [
        (sent.pk, 1, False)
    ]
    assert [(e["mailing"].pk, e["planned"]) for e in days[dt.date(2026, 11, 28)]] == [(planned.pk, True)]


def test_an_email_mailing_carries_subject_preheader_and_unsubscribe_link(
    launch, noon, make_gateway, make_member, audience
):
    gateway = make_gateway("file_email")
    member = make_member(first_name="Olga", middle_name="Ivanovna", gender="female")
    fill(audience, [member])
    template = MessageTemplate.objects.create(
        name="News",
        channel="email",
        subject="{{ first_name }}, news",
        preheader="Only this week",
        html=(
            "<html><body><p>{{ salutation }}!</p>"
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>'
        ),
        text="{{ salutation }}!",
    )
    mailing = make_mailing(audience, template)
    launch(mailing)
    dispatch_batch(gateway=gateway)
    message = Message.objects.get(origin=Origin.MAILING, origin_id=mailing.pk)
    raw = Path(settings.OUTBOX_DIR, "email", message.provider_message_id).read_bytes()
    eml = email.message_from_bytes(raw, policy=email.policy.default)
    html = eml.get_body(("html",)).get_content()
    assert message.status == Status.DELIVERED and eml["Subject"] == "Olga, news"
    assert "Only this week" in html and f"/m/u/{message.ref}/" in html
    assert "Dear Olga Ivanovna!" in eml.get_body(("plain",)).get_content()


# --- recipients: messages written a chunk at a time ------------------------------------------
@pytest.fixture
def small_chunks(monkeypatch):
    from communications.services import mailings

    monkeypatch.setattr(mailings, "RELEASE_CHUNK", 2)


def test_a_large_mailing_writes_recipients_and_its_messages_a_chunk_at_a_time(
    launch, noon, small_chunks, tasks_inline, make_gateway, make_member, audience, sms_template
):
    from communications.models import MailingRecipient

    # given: seven members, messages written two at a time, sent three at a time
    gateway = make_gateway("file_sms")
    members = [make_member() for _ in range(7)]
    fill(audience, members)
    mailing = make_mailing(audience, sms_template)
    # when: launched, the recipients are written and the first chunk of messages
    launch(mailing)
    mailing.refresh_from_db()
    messages = Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk)
    assert mailing.prepared_count == 7 and messages.count() == 2
    assert MailingRecipient.objects.filter(mailing=mailing).count() == 5
    assert mailing_report(mailing)["waiting"] == 7
    # and each dispatch batch writes the next messages before it claims
    runs = 0
    while dispatch_batch(gateway=gateway, limit=3).claimed:
        runs += 1
    mailings_start_due()
    # then: everyone got exactly one message and the mailing is done; the dispatcher
    # started once, at the launch (its own releases start no more of it)
    assert tasks_inline == [gateway.pk]
    assert runs >= 3 and messages.filter(status=Status.DELIVERED).count() == 7
    assert sorted(messages.values_list("member_id", flat=True)) == sorted(m.pk for m in members)
    assert not MailingRecipient.objects.filter(mailing=mailing).exists()
    mailing.refresh_from_db()
    assert mailing.status == MailingStatus.DONE and mailing_report(mailing)["progress"] == 100


def test_a_recipient_who_withdrew_consent_before_their_message_was_written_gets_none(
    launch, noon, small_chunks, make_gateway, make_member, audience, sms_template
):
    gateway = make_gateway("file_sms")
    members = [make_member() for _ in range(4)]
    fill(audience, members)
    mailing = make_mailing(audience, sms_template)
    launch(mailing)
    written = set(Message.objects.filter(origin_id=mailing.pk).values_list("member_id", flat=True))
    late = next(m for m in members if m.pk not in written)
    # when: a member still waiting withdraws consent, then the rest is sent
    consent_set(member=late, channel="sms", granted=False, source="test")
    while dispatch_batch(gateway=gateway).claimed:
        pass
    # then
    mailing.refresh_from_db()
    assert not Message.objects.filter(origin_id=mailing.pk, member=late).exists()
    assert mailing.prepared_count == 3 and mailing.excluded_count == 1
    assert Message.objects.filter(origin_id=mailing.pk, status=Status.DELIVERED).count() == 3


def test_pausing_stops_writing_messages_and_cancelling_drops_the_recipients_left(
    launch, noon, small_chunks, make_gateway, make_member, audience, sms_template
):
    from communications.models import MailingRecipient

    gateway = make_gateway("file_sms")
    fill(audience, [make_member() for _ in range(6)])
    mailing = make_mailing(audience, sms_template)
    launch(mailing)
    # when paused: nothing is written or sent
    assert mailing_pause(mailing=mailing) == 6
    assert dispatch_batch(gateway=gateway).claimed == 0
    assert Message.objects.filter(origin_id=mailing.pk).count() == 2
    # when resumed and one batch goes out, then cancelled
    mailing_resume(mailing=mailing)
    dispatch_batch(gateway=gateway, limit=1)
    cancelled = mailing_cancel(mailing=mailing)
    # then: one sent, the rest cancelled or never written
    messages = Message.objects.filter(origin_id=mailing.pk)
    assert messages.filter(status=Status.DELIVERED).count() == 1 and cancelled == 5
    assert not MailingRecipient.objects.filter(mailing=mailing).exists()
    assert dispatch_batch(gateway=gateway).claimed == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_releases_write_each_recipient_once(
    monkeypatch, make_gateway, make_member, audience, sms_template
):
    import threading

    from django.db import connection as thread_connection

    from communications.models import MailingRecipient
    from communications.services import mailings
    from communications.services.mailings import mailing_release

    # given: a prepared mailing of forty recipients whose messages are not written yet
    monkeypatch.setattr(mailings, "RELEASE_CHUNK", 0)
    make_gateway("file_sms")
    fill(audience, [make_member() for _ in range(40)])
    mailing = make_mailing(audience, sms_template)
    mailing_launch(mailing=mailing)  # prepared after commit, in this process
    assert MailingRecipient.objects.filter(mailing=mailing).count() == 40
    mailing.refresh_from_db()
    # when: four releases at once, five at a time, until none is left
    barrier = threading.Barrier(4)
    errors = []

    def release():
        try:
            barrier.wait()
            while mailing_release(mailing=mailing, limit=5):
                pass
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=release) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # then: forty messages, one per member
    messages = Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk)
    assert not errors and messages.count() == 40
    assert messages.values("member_id").distinct().count() == 40
    assert not MailingRecipient.objects.filter(mailing=mailing).exists()
