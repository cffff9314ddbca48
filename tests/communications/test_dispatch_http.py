"""The pipeline against a local HTTP SMS provider: callbacks back through the endpoint,
and a faulty provider (5xx, timeouts, 429) that every message survives exactly once."""

import datetime as dt
import json
import random
import threading
from collections import Counter

import pytest

from communications.models import Message, Origin, Status
from communications.services.delivery import dispatch_batch, message_send
from gateways.providers import providers
from gateways.providers.devino import DevinoSms
from tests.communications.conftest import NOON
from tests.gateways.peers import HttpPeer, PeerResponse

pytestmark = pytest.mark.django_db


class DedupingDevinoSms(DevinoSms):
    """Devino's protocol on a provider account that discards repeated ``options.ref``."""

    key = "test_deduping_sms"
    deduplicates = True


@pytest.fixture
def deduping_provider():
    providers.register(DedupingDevinoSms)
    yield DedupingDevinoSms.key
    providers._providers.pop(DedupingDevinoSms.key)


class FaultyProvider:
    """Answers like api.devino.online, but 30 % of requests get a 503, 10 % are processed
    and then answered too late (the client times out), 10 % get a 429 with Retry-After.
    Records every delivery by message ref; with ``dedupe`` a repeated ref is not
    delivered again (its original id is answered)."""

    def __init__(self, *, dedupe: bool, seed: int = 7):
        self.dedupe = dedupe
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.delivered: Counter = Counter()
        self.ids: dict[str, str] = {}
        self.peer = HttpPeer(self.handle)

    def handle(self, request):
        with self.lock:
            roll = self.random.random()
        if roll < 0.30:
            return PeerResponse(503, "overloaded")
        if roll < 0.40:
            return PeerResponse(429, "slow down", {"Retry-After": "1"})
        result = []
        with self.lock:
            for message in request.json()["messages"]:
                ref = message["options"]["ref"]
                if not (self.dedupe and ref in self.ids):
                    self.delivered[ref] += 1
                    self.ids[ref] = str(len(self.ids) + 1000)
                result.append({"code": "OK", "messageId": self.ids[ref], "segmentsId": [self.ids[ref]]})
        delay = 0.4 if roll < 0.50 else 0.0  # processed, but the answer comes after the client gave up
        return PeerResponse(200, {"result": result}, delay=delay)


def _drain(gateway, time_machine, passes=60):
    now = NOON
    for _ in range(passes):
        while dispatch_batch(gateway=gateway, limit=10).claimed:
            pass
        if not Message.objects.filter(
            status__in=[Status.QUEUED, Status.FAILED_TEMPORARY, Status.SENDING]
        ).exists():
            return
        now += dt.timedelta(hours=2)  # past any backoff
        time_machine.move_to(now, tick=False)
    raise AssertionError("messages still pending")


@pytest.mark.parametrize("dedupe", [True, False], ids=["provider-deduplicates", "provider-does-not"])
def test_every_message_ends_final_and_only_flagged_ones_may_repeat(
    dedupe, deduping_provider, make_gateway, make_member, time_machine
):
    # given
    time_machine.move_to(NOON, tick=False)
    provider = FaultyProvider(dedupe=dedupe)
    members = [make_member() for _ in range(120)]
    with provider.peer as peer:
        gateway = make_gateway(
            deduping_provider if dedupe else "devino_sms",
            config={"base_url": peer.url, "api_key": "k", "timeout": 0.25},
            rate_limit=100000,
            max_attempts=30,
        )
        for m in members:
            message_send(member=m, channel="sms", content={"text": "hi"}, origin=Origin.MAILING, origin_id=1)
        # when
        _drain(gateway, time_machine)
    # then: every message final, sent, once per member
    messages = list(Message.objects.all())
    assert len(messages) == 120 and {m.status for m in messages} == {Status.SENT}
    assert sum(1 for m in messages if m.attempts > 1) > 20  # the faults really happened
    refs = {str(m.ref) for m in messages}
    assert set(provider.delivered) == refs
    repeated = {ref for ref, n in provider.delivered.items() if n > 1}
    flagged = {str(m.ref) for m in messages if m.possible_duplicate}
    if dedupe:
        assert repeated == set() and flagged == set()
    else:
        assert repeated and repeated <= flagged  # every real duplicate is reported


def test_callbacks_move_statuses_forward_only_and_idempotently(noon, client, make_gateway, make_member):
    # given: a message sent through the provider
    ids = iter(range(500, 600))
    with HttpPeer(
        lambda r: PeerResponse(
            200, {"result": [{"code": "OK", "messageId": str(next(ids))} for _m in r.json()["messages"]]}
        )
    ) as peer:
        gateway = make_gateway("devino_sms", config={"base_url": peer.url, "api_key": "k"})
        message = message_send(
            member=make_member(), channel="sms", content={"text": "hi"}, origin=Origin.MAILING
        )
        dispatch_batch(gateway=gateway)
    message.refresh_from_db()
    assert message.status == Status.SENT and message.provider_message_id == "500"
    sent = json.loads(peer.requests[0].body)["messages"][0]
    url = f"/gateways/callback/{gateway.pk}/{gateway.webhook_token}/"
    assert sent["callbackUrl"].endswith(url)

    def post(status):
        body = json.dumps([{"messageId": "500", "status": status}])
        return client.post(url, body, content_type="application/json")

    # when: clicked arrives before delivered, then delivered twice
    assert post("CLICKED").status_code == 200
    assert post("DELIVERED").status_code == 200
    assert post("DELIVERED").status_code == 200
    # then
    message.refresh_from_db()
    assert message.status == Status.CLICKED and message.delivered_at and message.clicked_at
    history = list(message.history.values_list("status", flat=True))
    assert history == ["created", "queued", "sending", "sent", "delivered", "opened", "clicked"]
    # and a forged callback is not accepted
    assert (
        client.post(
            f"/gateways/callback/{gateway.pk}/wrong/", "[]", content_type="application/json"
        ).status_code
        == 404
    )


def test_undelivered_callback_fails_the_message(noon, client, make_gateway, make_member):
    with HttpPeer(lambda r: PeerResponse(200, {"result": [{"code": "OK", "messageId": "77"}]})) as peer:
        gateway = make_gateway("devino_sms", config={"base_url": peer.url, "api_key": "k"})
        message = message_send(
            member=make_member(), channel="sms", content={"text": "hi"}, origin=Origin.MAILING
        )
        dispatch_batch(gateway=gateway)
    url = f"/gateways/callback/{gateway.pk}/{gateway.webhook_token}/"
    client.post(
        url,
        json.dumps({"messageId": "77", "status": "UNDELIVERED", "errorCode": "ABSENT"}),
        content_type="application/json",
    )
    client.post(url, json.dumps({"messageId": "77", "status": "DELIVERED"}), content_type="application/json")
    message.refresh_from_db()
    assert message.status == Status.UNDELIVERABLE and message.reason == "ABSENT"


def test_retries_give_up_after_the_gateways_attempts(make_gateway, make_member, time_machine):
    time_machine.move_to(NOON, tick=False)
    with HttpPeer(lambda r: PeerResponse(503, "down")) as peer:
        gateway = make_gateway("devino_sms", config={"base_url": peer.url, "api_key": "k"}, max_attempts=3)
        message = message_send(
            member=make_member(), channel="sms", content={"text": "hi"}, origin=Origin.MAILING
        )
        waits = []
        for _ in range(3):
            dispatch_batch(gateway=gateway)
            message.refresh_from_db()
            if message.status == Status.FAILED_TEMPORARY:
                waits.append((message.next_attempt_at - dt.datetime.now(dt.UTC)).total_seconds())
                time_machine.move_to(message.next_attempt_at, tick=False)
    assert message.status == Status.FAILED and "gave up after 3 attempts" in message.reason
    assert len(waits) == 2 and 15 <= waits[0] <= 45 and 30 <= waits[1] <= 90  # exponential, jittered


def test_a_delivery_callback_that_overtakes_the_send_answer_still_counts(
    noon, client, make_gateway, make_member
):
    # given a message claimed and sent, whose provider calls back before the answer is written
    from communications.services import delivery
    from gateways.providers import Lifecycle, Outcome, SendResult, StatusUpdate

    with HttpPeer(lambda r: PeerResponse(200, {"result": []})) as peer:
        gateway = make_gateway("devino_sms", config={"base_url": peer.url, "api_key": "k"}, price="1.2")
    message = message_send(member=make_member(), channel="sms", content={"text": "hi"}, origin=Origin.MAILING)
    token, rows = delivery._claim(gateway, 10, NOON)
    delivery.status_updates_apply(
        gateway=gateway, updates=[StatusUpdate("777", Lifecycle.DELIVERED, ref=str(message.ref))]
    )
    # when the send's own answer arrives
    report = delivery.DispatchReport()
    adapter = delivery.gateway_provider(gateway)
    delivery._results_apply(
        gateway,
        adapter,
        {r["id"]: r for r in rows},
        [SendResult(message.pk, Outcome.ACCEPTED, provider_message_id="777")],
        token,
        NOON,
        report,
    )
    # then the message stays delivered and keeps its provider id and cost
    message.refresh_from_db()
    assert message.status == Status.DELIVERED and message.provider_message_id == "777"
    assert str(message.cost) == "1.2000"
    assert list(message.history.values_list("status", flat=True)) == [
        "created",
        "queued",
        "sending",
        "delivered",
    ]
