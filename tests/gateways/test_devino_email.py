"""Devino Telecom e-mail (HTTP API v2) against a local peer that answers as the API
documentation describes; then events back through the callback and states by polling."""

import base64
import json
import re

import pytest

from gateways.providers import CallbackRejected, Lifecycle, Outcome
from tests.gateways.peers import HttpPeer, PeerResponse

CREDENTIALS = "Basic " + base64.b64encode(b"club:s3cret").decode()
SETTINGS = {"login": "club", "password": "s3cret"}
SENDER = "Клуб «Магазин» <club@shop.example>"


def devino_email_peer(refuse: dict[str, PeerResponse] | None = None, states: dict[str, str] | None = None):
    """``POST /email/v2/messages`` answers 201 with one result per recipient; ``refuse``
    maps a recipient address to another answer. ``GET /email/v2/messages/{id},{id}``
    answers the ``states`` of the known ids."""
    refuse = refuse or {}
    states = states or {}
    counter = iter(range(1, 10**6))

    def handle(request):
        if request.headers.get("authorization") != CREDENTIALS:
            return PeerResponse(401, {"Code": "unauthorized", "Description": "invalid credentials"})
        if request.headers.get("accept") != "*/*":
            return PeerResponse(406, {"Code": "validation_error", "Description": "Accept */* expected"})
        if request.method == "GET":
            ids = request.path.removeprefix("/email/v2/messages/").split(",")
            result = [
                {"MessageId": i, "Email": "x@mail.example", "State": states[i]} for i in ids if i in states
            ]
            return PeerResponse(200, {"Result": result, "Code": "ok", "Description": "ok"})
        body = request.json()
        address = body["Recipients"][0]["Address"]
        if address in refuse:
            return refuse[address]
        result = [
            {"Index": i, "Address": r["Address"], "MessageId": f"Mdz{next(counter):08d}", "Code": "ok"}
            for i, r in enumerate(body["Recipients"])
        ]
        return PeerResponse(201, {"Result": result, "Code": "ok", "Description": "ok"})

    return HttpPeer(handle)


def callback(rf, events):
    return rf.post("/cb/", data=json.dumps({"messageEventDtos": events}), content_type="application/json")


def test_marketing_email_goes_out_with_an_unsubscribe_link_and_events_come_back(make_adapter, outgoing, rf):
    # given: a marketing message whose template forgot the unsubscribe link
    with devino_email_peer() as peer:
        adapter = make_adapter("devino_email", {"base_url": peer.url, **SETTINGS}, sender=SENDER)
        message = outgoing(
            "email",
            "anna@mail.example",
            {
                "subject": "Бонусы сгорают завтра",
                "text": "Здравствуйте, Анна!",
                "html": "<html><body><p>Здравствуйте, Анна!</p></body></html>",
            },
            marketing=True,
            unsubscribe_url="https://club.shop.example/u/opaque-token",
        )
        # when
        (result,) = adapter.send([message])
    # then: one documented request, authenticated, carrying our ref as the recipient id
    (request,) = peer.requests
    assert request.method == "POST" and request.path == "/email/v2/messages"
    body = request.json()
    assert body["Sender"] == {"Address": "club@shop.example", "Name": "Клуб «Магазин»"}
    assert body["Recipients"] == [
        {"Address": "anna@mail.example", "RecipientId": message.ref.replace("-", "")}
    ]
    assert len(body["Recipients"][0]["RecipientId"]) == 32
    assert body["Subject"] == "Бонусы сгорают завтра"
    # the unsubscribe link Devino insists on was added to both bodies
    assert re.search(
        r'<a href="https://club.shop.example/u/opaque-token">[^<]+</a></p></body>', body["Body"]["Html"]
    )
    assert body["Body"]["PlainText"].startswith("Здравствуйте, Анна!")
    assert "https://club.shop.example/u/opaque-token" in body["Body"]["PlainText"]
    assert result.outcome == Outcome.ACCEPTED and result.status == Lifecycle.QUEUED
    assert result.provider_message_id == "Mdz00000001"
    # and the events Devino posts later become status updates
    pid = result.provider_message_id
    request = callback(
        rf,
        [
            {"messageId": pid, "event": "DELIVERED", "dateTime": "2026-11-23T10:00:00", "url": None},
            {"messageId": pid, "event": "OPENED", "dateTime": "2026-11-23T10:05:00.7943021"},
            {"messageId": pid, "event": "CLICKED", "url": "https://shop.example/sale", "dateTime": None},
            {"messageId": "Mdz99", "event": "BOUNCED", "isHardbounce": True, "reason": "bad-mailbox"},
        ],
    )
    delivered, opened, clicked, bounced = adapter.parse_callback(request)
    assert (delivered.provider_message_id, delivered.status) == (pid, Lifecycle.DELIVERED)
    assert delivered.at.isoformat() == "2026-11-23T10:00:00+00:00"
    assert opened.status == Lifecycle.OPENED
    assert clicked.status == Lifecycle.CLICKED and clicked.url == "https://shop.example/sale"
    assert bounced.status == Lifecycle.FAILED and bounced.suppress_address and bounced.reason == "bad-mailbox"


def test_transactional_mail_and_mail_that_has_its_link_are_sent_as_written(make_adapter, outgoing):
    # given
    with devino_email_peer() as peer:
        adapter = make_adapter("devino_email", {"base_url": peer.url, **SETTINGS}, sender="club@shop.example")
        receipt = outgoing(
            "email", "anna@mail.example", {"subject": "Чек", "text": "Покупка 500 ₽", "html": ""}
        )
        newsletter = outgoing(
            "email",
            "ivan@mail.example",
            {"subject": "Акция", "html": '<p>Акция! <a href="https://u.example/t">Отписаться</a></p>'},
            marketing=True,
            unsubscribe_url="https://u.example/t",
        )
        # when
        results = adapter.send([receipt, newsletter])
    # then
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    first, second = (r.json() for r in peer.requests)
    assert first["Sender"] == {"Address": "club@shop.example"}
    assert first["Body"] == {"Html": "", "PlainText": "Покупка 500 ₽"}
    assert second["Body"]["Html"] == '<p>Акция! <a href="https://u.example/t">Отписаться</a></p>'


def test_refused_content_is_rejected_and_the_rest_of_the_batch_still_goes(make_adapter, outgoing):
    # given
    refuse = {
        "stop@mail.example": PeerResponse(
            400, {"Code": "validation_error", "Description": "recipient is in the unsubscribe list"}
        )
    }
    with devino_email_peer(refuse=refuse) as peer:
        adapter = make_adapter("devino_email", {"base_url": peer.url, **SETTINGS}, sender=SENDER)
        batch = [
            outgoing("email", "stop@mail.example", {"subject": "s", "text": "t"}),
            outgoing("email", "anna@mail.example", {"subject": "s", "text": "t"}),
        ]
        # when
        refused, sent = adapter.send(batch)
    # then
    assert refused.outcome == Outcome.REJECTED and "unsubscribe list" in refused.reason
    assert sent.outcome == Outcome.ACCEPTED and len(peer.requests) == 2


def test_a_busy_provider_defers_the_whole_batch(make_adapter, outgoing):
    # given: an internal error, then throttling with Retry-After
    refuse = {
        "a@mail.example": PeerResponse(500, {"Code": "internal_error", "Description": "try later"}),
        "b@mail.example": PeerResponse(429, {"Code": "too_many_requests"}, {"Retry-After": "30"}),
    }
    with devino_email_peer(refuse=refuse) as peer:
        adapter = make_adapter("devino_email", {"base_url": peer.url, **SETTINGS}, sender=SENDER)
        # when
        (first, untouched) = adapter.send(
            [
                outgoing("email", "a@mail.example", {"subject": "s", "text": "t"}),
                outgoing("email", "c@mail.example", {"subject": "s", "text": "t"}),
            ]
        )
        (throttled, waiting) = adapter.send(
            [
                outgoing("email", "b@mail.example", {"subject": "s", "text": "t"}),
                outgoing("email", "c@mail.example", {"subject": "s", "text": "t"}),
            ]
        )
    # then: nothing after the failure was sent; it all waits
    assert first.outcome == untouched.outcome == Outcome.TEMPORARY and "try later" in first.reason
    assert throttled.outcome == waiting.outcome == Outcome.TEMPORARY
    assert throttled.retry_after == waiting.retry_after == 30
    assert len(peer.requests) == 2


def test_wrong_password_is_a_temporary_failure_naming_the_credentials(make_adapter, outgoing):
    with devino_email_peer() as peer:
        adapter = make_adapter("devino_email", {"base_url": peer.url, "login": "club", "password": "x"})
        (result,) = adapter.send([outgoing("email", "anna@mail.example", {"subject": "s", "text": "t"})])
    assert result.outcome == Outcome.TEMPORARY and "401" in result.reason and "password" in result.reason


def test_bounces_unsubscribes_and_complaints_from_the_callback(make_adapter, rf):
    # given
    adapter = make_adapter("devino_email", SETTINGS)
    request = callback(
        rf,
        [
            {"messageId": "M1", "event": "BOUNCED", "isHardbounce": False, "reason": "quota-issues"},
            {"messageId": "M2", "event": "BOUNCED", "isHardbounce": True, "reason": "policy-related"},
            {"messageId": "M3", "event": "BOUNCED", "isHardbounce": True, "reason": "already_unsubscribed"},
            {"messageId": "M4", "event": "UNSUBSCRIBED", "dateTime": "2018-03-29T16:46:53.412013"},
            {"messageId": "M5", "event": "COMPLAINED"},
            {"messageId": "M6", "event": "SUBSCRIBED"},
            {"messageId": "M7", "event": "SENT"},
        ],
    )
    # when
    soft, policy, unsubscribed_before, unsubscribed, complained, sent = adapter.parse_callback(request)
    # then: a soft bounce may pass later; only a dead or opted-out address is suppressed
    assert soft.status == Lifecycle.FAILED_TEMPORARY and not soft.suppress_address
    assert policy.status == Lifecycle.FAILED and not policy.suppress_address
    assert unsubscribed_before.status == Lifecycle.FAILED and unsubscribed_before.suppress_address
    assert unsubscribed.status == Lifecycle.UNSUBSCRIBED and unsubscribed.at.year == 2018
    assert complained.status == Lifecycle.COMPLAINED
    assert sent.status == Lifecycle.SENT  # SUBSCRIBED says nothing about a message


def test_a_single_event_object_is_read_and_garbage_is_refused(make_adapter, rf):
    adapter = make_adapter("devino_email", SETTINGS)
    single = rf.post(
        "/cb/", data=json.dumps({"messageId": "M1", "event": "DELIVERED"}), content_type="application/json"
    )
    (update,) = adapter.parse_callback(single)
    assert update.status == Lifecycle.DELIVERED
    with pytest.raises(CallbackRejected):
        adapter.parse_callback(rf.post("/cb/", data="<xml/>", content_type="application/xml"))


def test_poll_asks_for_at_most_150_ids_at_a_time_and_maps_the_states(make_adapter):
    # given: 151 messages in flight, a few of them with news
    ids = [f"M{n}" for n in range(151)]
    states = {i: "NotSent" for i in ids} | {
        "M0": "Delivered",
        "M1": "Read",
        "M2": "Clicked",
        "M3": "Bounced",
        "M4": "Rejected",
        "M150": "Sent",
    }
    with devino_email_peer(states=states) as peer:
        adapter = make_adapter("devino_email", {"base_url": peer.url, **SETTINGS})
        # when
        updates = adapter.poll(ids)
    # then
    assert [len(r.path.removeprefix("/email/v2/messages/").split(",")) for r in peer.requests] == [150, 1]
    assert all(r.method == "GET" for r in peer.requests)
    assert {u.provider_message_id: u.status for u in updates} == {
        "M0": Lifecycle.DELIVERED,
        "M1": Lifecycle.OPENED,
        "M2": Lifecycle.CLICKED,
        "M3": Lifecycle.FAILED,
        "M4": Lifecycle.REJECTED,
        "M150": Lifecycle.SENT,
    }


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"subject": "Hi", "html": "<p>h</p>"}, True),
        ({"subject": "", "html": "<p>h</p>"}, False),
        ({"subject": "Hi", "text": " "}, False),
        (
            {"subject": "Hi", "html": '<img src="cid:logo">', "images": [{"cid": "logo", "data": "AA=="}]},
            False,
        ),
    ],
)
def test_content_needs_a_subject_and_a_body_and_no_embedded_images(make_adapter, content, ok):
    adapter = make_adapter("devino_email", SETTINGS)
    assert (adapter.content_errors(content) == []) is ok
