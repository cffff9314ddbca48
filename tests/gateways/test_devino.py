"""Devino Telecom (api.devino.online): SMS, Viber and VK / OK against a local peer that
answers as docs.devino.online describes, then statuses back through its callback."""

import json

import pytest

from gateways.providers import Lifecycle, Outcome
from tests.gateways.peers import HttpPeer, PeerResponse


def devino_peer(reject_to: set[str] = frozenset()):
    """Answers ``POST /{sms,viber,vk}/messages`` item by item, as the API does."""
    counter = iter(range(3482512350952730368, 3482512350952730368 + 10**6))

    def handle(request):
        if request.headers.get("authorization") != "Key secret-key":
            return PeerResponse(401, {"error": "unauthorized"})
        result = []
        for message in request.json()["messages"]:
            if message["to"] in reject_to:
                result.append(
                    {
                        "code": "REJECTED",
                        "description": "invalid",
                        "reasons": [{"key": "invalid", "ref": "to"}],
                    }
                )
            else:
                n = next(counter)
                result.append({"code": "OK", "messageId": str(n), "segmentsId": [str(n), str(n + 1)]})
        return PeerResponse(200, {"result": result})

    return HttpPeer(handle)


def test_sms_goes_out_in_one_request_and_statuses_come_back(make_adapter, outgoing, rf):
    # given
    with devino_peer(reject_to={"79000000000"}) as peer:
        adapter = make_adapter("devino_sms", {"base_url": peer.url, "api_key": "secret-key"}, sender="SHOP")
        batch = [
            outgoing("sms", "+79031234567", {"text": "Привет! " * 12}),
            outgoing("sms", "+79000000000", {"text": "hello"}),
        ]
        # when
        results = adapter.send(batch)
    # then: one request carrying both messages in the documented shape
    body = peer.requests[0].json()
    assert peer.requests[0].path == "/sms/messages"
    first = body["messages"][0]
    assert first["from"] == "SHOP" and first["to"] == "79031234567"
    assert first["callbackUrl"] == "http://testserver/cb/" and first["options"] == {"ref": batch[0].ref}
    ok, rejected = results
    assert (
        ok.outcome == Outcome.ACCEPTED
        and ok.provider_message_id == "3482512350952730368"
        and ok.segments == 2
    )
    assert rejected.outcome == Outcome.REJECTED and rejected.suppress_address
    # and the callback the provider posts later becomes a status update
    request = rf.post(
        "/cb/",
        data=json.dumps(
            [
                {
                    "messageId": ok.provider_message_id,
                    "status": "DELIVERED",
                    "receivedAt": "2026-11-23T10:00:00Z",
                }
            ]
        ),
        content_type="application/json",
    )
    (update,) = adapter.parse_callback(request)
    assert update.provider_message_id == ok.provider_message_id and update.status == Lifecycle.DELIVERED
    assert update.at.isoformat() == "2026-11-23T10:00:00+00:00"


def test_wrong_key_is_a_temporary_failure_of_the_batch(make_adapter, outgoing):
    with devino_peer() as peer:
        adapter = make_adapter("devino_sms", {"base_url": peer.url, "api_key": "wrong"}, sender="SHOP")
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    assert result.outcome == Outcome.TEMPORARY and "401" in result.reason


def test_server_errors_and_throttling_are_retried_with_retry_after(make_adapter, outgoing):
    answers = iter([PeerResponse(503, "busy"), PeerResponse(429, "slow down", {"Retry-After": "7"})])
    with HttpPeer(lambda request: next(answers)) as peer:
        adapter = make_adapter("devino_sms", {"base_url": peer.url, "api_key": "k"})
        (first,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        (second,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    assert first.outcome == Outcome.TEMPORARY
    assert second.outcome == Outcome.TEMPORARY and second.retry_after == 7


def test_timeout_after_sending_is_an_unknown_outcome(make_adapter, outgoing):
    with HttpPeer(lambda request: PeerResponse(200, {"result": []}, delay=1.0)) as peer:
        adapter = make_adapter("devino_sms", {"base_url": peer.url, "api_key": "k", "timeout": 0.5})
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    assert result.outcome == Outcome.UNKNOWN


def test_viber_sends_the_documented_fields_and_reads_read_and_blocked(make_adapter, outgoing, rf):
    with devino_peer() as peer:
        adapter = make_adapter("devino_viber", {"base_url": peer.url, "api_key": "secret-key"}, sender="Shop")
        content = {
            "text": "Sale",
            "image": "https://img.example/a.png",
            "button_text": "Open",
            "button_url": "https://shop.example",
        }
        (result,) = adapter.send([outgoing("viber", "+79031234567", content)])
    sent = peer.requests[0].json()["messages"][0]
    assert peer.requests[0].path == "/viber/messages"
    assert (sent["text"], sent["image"], sent["action"], sent["caption"]) == (
        "Sale",
        "https://img.example/a.png",
        "https://shop.example",
        "Open",
    )
    assert result.outcome == Outcome.ACCEPTED
    request = rf.post(
        "/cb/",
        data=json.dumps(
            [
                {"id": result.provider_message_id, "status": "READ", "receivedAt": "1527861323068"},
                {"id": "999", "status": "UNDELIVERED", "errorCode": "NOT_VIBER_USER"},
            ]
        ),
        content_type="application/json",
    )
    read, undelivered = adapter.parse_callback(request)
    assert read.status == Lifecycle.OPENED and read.at.year == 2018
    assert undelivered.status == Lifecycle.UNDELIVERABLE and undelivered.reason == "NOT_VIBER_USER"


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"text": "a"}, True),
        ({"image": "https://i/x.png"}, True),
        ({"text": "a", "button_text": "Go", "button_url": "https://x"}, True),
        ({"text": "a", "image": "https://i/x.png", "button_text": "Go", "button_url": "https://x"}, True),
        ({"text": "a", "image": "https://i/x.png"}, False),
        ({"image": "https://i/x.png", "button_text": "Go", "button_url": "https://x"}, False),
        ({"text": "a", "button_text": "Go"}, False),
    ],
)
def test_viber_content_combinations(make_adapter, content, ok):
    adapter = make_adapter("devino_viber", {"api_key": "k"})
    assert (adapter.content_errors(content) == []) is ok


def test_vk_notifications_use_the_moderated_template(make_adapter, outgoing):
    with devino_peer() as peer:
        adapter = make_adapter("devino_social", {"base_url": peer.url, "api_key": "secret-key"})
        (result,) = adapter.send(
            [outgoing("social", "+79031234567", {"template_id": "4012", "data": {"name": "Anna"}})]
        )
    sent = peer.requests[0].json()["messages"][0]
    assert peer.requests[0].path == "/vk/messages"
    assert (
        sent["templateId"] == 4012
        and sent["templateData"] == {"name": "Anna"}
        and sent["to"] == "79031234567"
    )
    assert result.outcome == Outcome.ACCEPTED
    assert adapter.content_errors({"text": "free text"})  # no template id: refused on save
