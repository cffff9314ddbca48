"""The delivery pipeline on the embedded default (file gateways): statuses, idempotency,
the contact budget, leases, retries and cascades."""

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings

from communications import status as lifecycle
from communications.models import ChannelPolicy, Message, Origin, Purpose, Status, Suppression
from communications.services import delivery
from communications.services.delivery import dispatch_batch, message_send
from gateways.models import Cascade, CascadeStep
from tests.communications.conftest import NOON

pytestmark = pytest.mark.django_db


def statuses(message):
    return list(message.history.values_list("status", flat=True))


def test_a_message_goes_through_the_file_gateway_with_its_whole_history(noon, make_gateway, make_member):
    # given
    gateway = make_gateway("file_sms", price="1.5")
    member = make_member()
    message = message_send(
        member=member, channel="sms", content={"text": "Привет"}, origin=Origin.MAILING, origin_id=7
    )
    # when
    report = dispatch_batch(gateway=gateway)
    # then
    message.refresh_from_db()
    assert report.sent == 1 and message.status == Status.DELIVERED
    assert statuses(message) == ["created", "queued", "sending", "sent", "delivered"]
    assert message.cost == 1.5 and message.sent_at == NOON and message.address == member.phone
    written = Path(settings.OUTBOX_DIR, "sms", message.provider_message_id).read_text()
    assert "Привет" in written and member.phone in written


def test_one_message_per_member_per_occurrence(make_gateway, make_member):
    make_gateway("file_sms")
    member = make_member()
    first = message_send(
        member=member, channel="sms", content={"text": "a"}, origin=Origin.MAILING, origin_id=1
    )
    again = message_send(
        member=member, channel="sms", content={"text": "a"}, origin=Origin.MAILING, origin_id=1
    )
    other = message_send(
        member=member,
        channel="sms",
        content={"text": "a"},
        origin=Origin.CHAIN,
        origin_id=1,
        occurrence="2026-11",
    )
    assert again.pk == first.pk and other.pk != first.pk
    assert Message.objects.filter(member=member).count() == 2


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("queued", "sending", True),
        ("sending", "failed_temporary", True),
        ("failed_temporary", "sending", True),
        ("sent", "delivered", True),
        ("delivered", "clicked", True),
        ("clicked", "opened", False),
        ("opened", "delivered", False),
        ("delivered", "sent", False),
        ("sent", "undeliverable", True),
        ("delivered", "failed", False),
        ("failed", "sent", False),
        ("suppressed", "queued", False),
    ],
)
def test_statuses_only_move_forward(old, new, allowed):
    assert lifecycle.can_move(old, new) is allowed


def test_marketing_needs_consent_but_a_login_code_does_not(noon, make_gateway, make_member):
    gateway = make_gateway("file_sms")
    member = make_member(consents=())
    promo = message_send(
        member=member, channel="sms", content={"text": "Sale"}, origin=Origin.MAILING, origin_id=1
    )
    code = message_send(
        member=member,
        channel="sms",
        content={"text": "Code 1234"},
        origin=Origin.TRANSACTIONAL,
        purpose=Purpose.TRANSACTIONAL,
        occurrence="login-1",
    )
    dispatch_batch(gateway=gateway)
    promo.refresh_from_db()
    code.refresh_from_db()
    assert promo.status == Status.SUPPRESSED and promo.reason == "no consent"
    assert code.status == Status.DELIVERED


def test_quiet_hours_defer_to_the_members_morning_and_exempt_login_codes(
    make_gateway, make_member, time_machine
):
    # given: 23:30 in Yekaterinburg (UTC+5) is 18:30 UTC
    time_machine.move_to(dt.datetime(2026, 11, 23, 18, 30, tzinfo=dt.UTC), tick=False)
    gateway = make_gateway("file_sms")
    late = make_member(time_zone="Asia/Yekaterinburg")
    moscow = make_member(time_zone="Europe/Moscow")  # 21:30 there: quiet too
    kaliningrad = make_member(time_zone="Europe/Kaliningrad")  # 20:30: not yet quiet
    messages = {
        m: message_send(member=m, channel="sms", content={"text": "x"}, origin=Origin.MAILING, origin_id=3)
        for m in (late, moscow, kaliningrad)
    }
    code = message_send(
        member=late,
        channel="sms",
        content={"text": "1234"},
        origin=Origin.TRANSACTIONAL,
        purpose=Purpose.TRANSACTIONAL,
    )
    # when
    report = dispatch_batch(gateway=gateway)
    # then
    for m in messages.values():
        m.refresh_from_db()
    code.refresh_from_db()
    assert report.deferred == 2
    assert messages[late].status == Status.QUEUED
    assert messages[late].next_attempt_at == dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)  # 09:00 local
    assert messages[moscow].next_attempt_at == dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC)
    assert messages[kaliningrad].status == Status.DELIVERED and code.status == Status.DELIVERED
    # and in the morning they go out, once
    time_machine.move_to(dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC), tick=False)
    dispatch_batch(gateway=gateway)
    for m in messages.values():
        m.refresh_from_db()
        assert m.status == Status.DELIVERED, (
            m.address,
            m.next_attempt_at,
            list(m.history.values_list("status", "reason", "at")),
        )
    assert Message.objects.filter(status=Status.DELIVERED).count() == 4


def test_frequency_cap_counts_marketing_a_day(noon, make_gateway, make_member):
    ChannelPolicy.objects.filter(channel="sms").update(daily_cap=2)
    gateway = make_gateway("file_sms")
    member = make_member()
    sent = [
        message_send(
            member=member, channel="sms", content={"text": str(i)}, origin=Origin.MAILING, origin_id=i
        )
        for i in range(3)
    ]
    service = message_send(
        member=member,
        channel="sms",
        content={"text": "s"},
        origin=Origin.REGULAR,
        purpose=Purpose.SERVICE,
        origin_id=9,
    )
    dispatch_batch(gateway=gateway)
    got = {m.pk: Message.objects.get(pk=m.pk) for m in [*sent, service]}
    assert [got[m.pk].status for m in sent].count(Status.DELIVERED) == 2
    assert [got[m.pk].reason for m in sent].count("frequency cap") == 1
    assert got[service.pk].status == Status.DELIVERED


def test_suppression_list_and_invalid_contacts(noon, make_gateway, make_member):
    gateway = make_gateway("file_email")
    bounced = make_member()
    unsubscribed = make_member()
    invalid = make_member(email_status="invalid")
    Suppression.objects.create(channel="email", address=bounced.email, reason="hard_bounce")
    Suppression.objects.create(channel="email", address=unsubscribed.email, reason="unsubscribed")
    content = {"subject": "s", "text": "t"}
    promo = {
        m: message_send(member=m, channel="email", content=content, origin=Origin.MAILING, origin_id=5)
        for m in (bounced, unsubscribed, invalid)
    }
    receipt = message_send(
        member=unsubscribed,
        channel="email",
        content=content,
        origin=Origin.TRANSACTIONAL,
        purpose=Purpose.TRANSACTIONAL,
    )
    dispatch_batch(gateway=gateway)
    for m in promo.values():
        m.refresh_from_db()
        assert m.status == Status.SUPPRESSED
    receipt.refresh_from_db()
    assert receipt.status == Status.DELIVERED  # an unsubscribe stops marketing, not account mail


def test_a_dead_workers_lease_runs_out_and_the_message_goes_once(make_gateway, make_member, time_machine):
    # given: a worker claimed a batch and died before sending
    time_machine.move_to(NOON, tick=False)
    gateway = make_gateway("file_sms")
    message = message_send(
        member=make_member(), channel="sms", content={"text": "x"}, origin=Origin.MAILING, origin_id=1
    )
    token, rows = delivery._claim(gateway, 100, NOON)
    assert [r["id"] for r in rows] == [message.pk]
    # when: another worker looks before the lease ends, then after
    assert dispatch_batch(gateway=gateway).claimed == 0
    time_machine.move_to(NOON + delivery.lease() + dt.timedelta(seconds=1), tick=False)
    report = dispatch_batch(gateway=gateway)
    # then
    message.refresh_from_db()
    assert report.sent == 1 and message.status == Status.DELIVERED and message.attempts == 2
    assert not message.possible_duplicate  # the file gateway deduplicates by ref
    assert len(list(Path(settings.OUTBOX_DIR, "sms").iterdir())) == 1
    # and the dead worker's late result changes nothing
    assert delivery._transition([message.pk], Status.SENT, "", NOON, lease_token=token) == []


def test_cascade_falls_back_when_a_step_cannot_reach_the_member(noon, make_gateway, make_member):
    # given: Viber then SMS; the member has no Viber consent
    viber = make_gateway("file_viber")
    sms = make_gateway("file_sms")
    cascade = Cascade.objects.create(name="Viber, then SMS")
    CascadeStep.objects.create(cascade=cascade, order=0, channel="viber", gateway=viber, wait_minutes=30)
    CascadeStep.objects.create(cascade=cascade, order=1, channel="sms", gateway=sms)
    member = make_member(consents=("sms",))
    first = message_send(
        member=member,
        channel="viber",
        content={"text": "Viber text", "image": "https://i/x.png"},
        fallback_content={"sms": {"text": "SMS text"}},
        cascade=cascade,
        origin=Origin.MAILING,
        origin_id=4,
    )
    # when
    dispatch_batch(gateway=viber)
    dispatch_batch(gateway=sms)
    # then: one communication, two attempts, the content reached the member once
    attempts = list(Message.objects.filter(communication=first.communication).order_by("cascade_step"))
    assert [(m.channel, m.status) for m in attempts] == [
        ("viber", Status.SUPPRESSED),
        ("sms", Status.DELIVERED),
    ]
    assert attempts[1].content == {"text": "SMS text"}


def test_cascade_falls_back_when_a_step_is_not_delivered_in_time(make_gateway, make_member, time_machine):
    time_machine.move_to(NOON, tick=False)
    push = make_gateway("console_push")
    sms = make_gateway("file_sms")
    cascade = Cascade.objects.create(name="Push, then SMS")
    CascadeStep.objects.create(cascade=cascade, order=0, channel="push", gateway=push, wait_minutes=10)
    CascadeStep.objects.create(cascade=cascade, order=1, channel="sms", gateway=sms)
    member = make_member()
    member.device_tokens.create(app="shop.app", platform="android", token="tok-1")
    first = message_send(
        member=member,
        channel="push",
        content={"title": "t", "body": "b"},
        cascade=cascade,
        origin=Origin.MAILING,
        origin_id=8,
    )
    dispatch_batch(gateway=push)
    # the console gateway reports delivery at once; pretend the push only got to "sent"
    Message.objects.filter(pk=first.pk).update(status=Status.SENT)
    first.refresh_from_db()
    assert first.step_deadline == NOON + dt.timedelta(minutes=10)
    assert delivery.fallbacks_due() == 0
    time_machine.move_to(NOON + dt.timedelta(minutes=11), tick=False)
    assert delivery.fallbacks_due() == 1
    assert delivery.fallbacks_due() == 0  # once
    dispatch_batch(gateway=sms)
    assert Message.objects.get(communication=first.communication, cascade_step=1).status == Status.DELIVERED


def test_without_a_gateway_the_message_fails_with_a_reason(make_member):
    message = message_send(
        member=make_member(), channel="viber", content={"text": "x"}, origin=Origin.MAILING
    )
    message.refresh_from_db()
    assert message.status == Status.FAILED and "gateway" in message.reason


def test_expired_messages_are_not_sent(noon, make_gateway, make_member):
    gateway = make_gateway("file_sms")
    message = message_send(
        member=make_member(),
        channel="sms",
        content={"text": "x"},
        origin=Origin.MAILING,
        expires_at=NOON - dt.timedelta(minutes=1),
    )
    dispatch_batch(gateway=gateway)
    message.refresh_from_db()
    assert message.status == Status.EXPIRED


def test_a_push_token_the_provider_calls_invalid_is_retired(noon, make_gateway, make_member, monkeypatch):
    from gateways.providers import Outcome, SendResult
    from gateways.providers.files import FileProvider

    # given a provider that answers "unregistered" for one token
    def send(self, batch):
        return [
            SendResult(m.id, Outcome.PERMANENT, reason="UNREGISTERED", retire_address=True)
            if m.to == "dead-token"
            else SendResult(m.id, Outcome.ACCEPTED)
            for m in batch
        ]

    gateway = make_gateway("file_push")
    monkeypatch.setattr(FileProvider, "send", send)
    alive, dead = make_member(), make_member()
    alive.device_tokens.create(app="club.app", platform="android", token="live-token")
    dead.device_tokens.create(app="club.app", platform="android", token="dead-token")
    for m in (alive, dead):
        message_send(
            member=m, channel="push", content={"title": "t", "body": "b"}, origin=Origin.MAILING, origin_id=1
        )
    # when
    dispatch_batch(gateway=gateway)
    # then
    token = dead.device_tokens.get()
    assert token.active is False and token.retired_reason == "UNREGISTERED"
    assert alive.device_tokens.get().active is True
    assert Message.objects.get(member=dead).status == Status.FAILED
    # and the next push to that member has no token to go to
    message = message_send(
        member=dead, channel="push", content={"title": "t"}, origin=Origin.MAILING, origin_id=2
    )
    dispatch_batch(gateway=gateway)
    message.refresh_from_db()
    assert message.status == Status.SUPPRESSED and message.reason == "no contact on this channel"


def test_only_messages_that_have_not_left_can_be_cancelled(noon, make_gateway, make_member):
    gateway = make_gateway("file_sms")
    sent = message_send(
        member=make_member(), channel="sms", content={"text": "a"}, origin=Origin.MAILING, origin_id=1
    )
    dispatch_batch(gateway=gateway)
    waiting = message_send(
        member=make_member(), channel="sms", content={"text": "b"}, origin=Origin.MAILING, origin_id=1
    )
    assert delivery.messages_cancel(ids=[sent.pk, waiting.pk]) == 1
    assert Message.objects.get(pk=sent.pk).status == Status.DELIVERED
    assert Message.objects.get(pk=waiting.pk).status == Status.CANCELLED
