"""Huawei Push Kit against a local peer that plays the HMS OAuth endpoint (client
credentials) and ``/v1/{appId}/messages:send``, answering with the documented codes."""

import json

import pytest

from gateways.providers import Lifecycle, Outcome
from tests.gateways.peers import HttpPeer, PeerResponse

APP_ID = "104567891"
SECRET = "app-secret-value"
SEND_PATH = f"/v1/{APP_ID}/messages:send"


def push_answer(code: str, msg: str = "Success", status: int = 200, headers=None) -> PeerResponse:
    return PeerResponse(status, {"code": code, "msg": msg, "requestId": f"req-{code}"}, headers or {})


class HuaweiPeer:
    """``/oauth2/v3/token`` hands out tokens for the right app id and secret; ``messages:send``
    checks the bearer token, then gives the next scripted answer, or success."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.issued: list[str] = []
        self.expired: set[str] = set()
        self.http = HttpPeer(self.handle)

    def __enter__(self):
        self.http.__enter__()
        return self

    def __exit__(self, *exc):
        self.http.__exit__(*exc)

    @property
    def url(self):
        return self.http.url

    def oauth(self):
        return [r for r in self.http.requests if r.path == "/oauth2/v3/token"]

    def sends(self):
        return [r for r in self.http.requests if r.path == SEND_PATH]

    def handle(self, request):
        if request.path == "/oauth2/v3/token":
            form = request.form()
            if form.get("grant_type") != ["client_credentials"]:
                return PeerResponse(400, {"error": 1102, "error_description": "grant_type invalid"})
            if form.get("client_id") != [APP_ID] or form.get("client_secret") != [SECRET]:
                return PeerResponse(
                    400, {"error": 1101, "sub_error": 20744, "error_description": "invalid client"}
                )
            token = f"CgB6e3x9-{len(self.issued) + 1}"
            self.issued.append(token)
            return PeerResponse(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
        if request.path == SEND_PATH:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.issued:
                return PeerResponse(401, {"code": "80200001", "msg": "Oauth authentication error"})
            if token in self.expired:
                return push_answer("80200003", "Oauth Token expired.")
            if self.answers:
                return self.answers.pop(0)
            return push_answer("80000000")
        return PeerResponse(404, "not found")


def huawei_config(peer, **extra):
    return {
        "base_url": peer.url,
        "oauth_url": f"{peer.url}/oauth2/v3/token",
        "app_id": APP_ID,
        "client_secret": SECRET,
        **extra,
    }


def test_equal_notifications_share_one_request_and_the_token_is_fetched_once(make_adapter, outgoing):
    # given: three messages with the same content, one different, then a second batch
    sale = {
        "title": "Sale",
        "body": "-20% today",
        "image": "https://img.example/s.png",
        "link": "https://shop.example/sale",
    }
    with HuaweiPeer() as peer:
        adapter = make_adapter("huawei", huawei_config(peer))
        batch = [
            outgoing("push", f"tok-{n}", sale, platform="huawei", validity_seconds=7200) for n in range(3)
        ]
        batch.append(
            outgoing("push", "tok-x", {"body": "Your points", "data": {"points": 150}}, platform="huawei")
        )
        # when
        results = adapter.send(batch)
        (later,) = adapter.send([outgoing("push", "tok-y", {"body": "Hi"}, platform="huawei")])
    # then: one OAuth exchange in the documented form
    (oauth,) = peer.oauth()
    assert oauth.form() == {
        "grant_type": ["client_credentials"],
        "client_id": [APP_ID],
        "client_secret": [SECRET],
    }
    # and three requests: the shared content once with three tokens, the others alone
    shared, single, second_batch = peer.sends()
    assert all(r.headers["authorization"] == "Bearer CgB6e3x9-1" for r in peer.sends())
    assert shared.json() == {
        "validate_only": False,
        "message": {
            "notification": {"title": "Sale", "body": "-20% today", "image": "https://img.example/s.png"},
            "data": json.dumps({"link": "https://shop.example/sale"}),
            "android": {
                "notification": {"click_action": {"type": 2, "url": "https://shop.example/sale"}},
                "ttl": "7200s",
            },
            "token": ["tok-0", "tok-1", "tok-2"],
        },
    }
    message = single.json()["message"]
    assert message["token"] == ["tok-x"] and json.loads(message["data"]) == {"points": "150"}
    assert message["android"] == {"notification": {"click_action": {"type": 3}}}
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 4 and results[0].status == Lifecycle.SENT
    assert results[0].provider_message_id == "req-80000000"
    assert second_batch.json()["message"]["token"] == ["tok-y"] and later.outcome == Outcome.ACCEPTED


def test_partial_success_retires_the_illegal_tokens_only(make_adapter, outgoing):
    # given
    detail = json.dumps({"success": 2, "failure": 1, "illegal_tokens": ["tok-dead"]})
    with HuaweiPeer([push_answer("80100000", detail)]) as peer:
        adapter = make_adapter("huawei", huawei_config(peer))
        batch = [outgoing("push", t, {"body": "Hi"}) for t in ("tok-a", "tok-dead", "tok-b")]
        # when
        a, dead, b = adapter.send(batch)
    # then
    assert len(peer.sends()) == 1
    assert a.outcome == b.outcome == Outcome.ACCEPTED and not a.retire_address
    assert dead.outcome == Outcome.PERMANENT and dead.retire_address and "80100000" in dead.reason


def test_all_tokens_invalid_retires_them_all(make_adapter, outgoing):
    # given
    with HuaweiPeer([push_answer("80300007", "All the tokens are invalid", status=400)]) as peer:
        adapter = make_adapter("huawei", huawei_config(peer))
        # when
        results = adapter.send([outgoing("push", t, {"body": "Hi"}) for t in ("t1", "t2")])
    # then
    assert all(r.outcome == Outcome.PERMANENT and r.retire_address for r in results)


def test_an_expired_access_token_is_refreshed_and_the_request_sent_again_once(make_adapter, outgoing):
    # given: the peer declares its first token expired after one successful send
    with HuaweiPeer() as peer:
        adapter = make_adapter("huawei", huawei_config(peer))
        adapter.send([outgoing("push", "t1", {"body": "one"})])
        peer.expired.add("CgB6e3x9-1")
        # when
        (result,) = adapter.send([outgoing("push", "t2", {"body": "two"})])
    # then
    assert len(peer.oauth()) == 2
    assert [r.headers["authorization"] for r in peer.sends()] == [
        "Bearer CgB6e3x9-1",
        "Bearer CgB6e3x9-1",
        "Bearer CgB6e3x9-2",
    ]
    assert result.outcome == Outcome.ACCEPTED


def test_wrong_secret_keeps_the_batch_waiting(make_adapter, outgoing):
    with HuaweiPeer() as peer:
        adapter = make_adapter("huawei", huawei_config(peer, client_secret="wrong"))
        (result,) = adapter.send([outgoing("push", "t1", {"body": "one"})])
    assert result.outcome == Outcome.TEMPORARY and "invalid client" in result.reason
    assert peer.sends() == []


@pytest.mark.parametrize(
    "answer",
    [
        PeerResponse(503, "flow control", {"Retry-After": "9"}),
        PeerResponse(502, "bad gateway", {"Retry-After": "9"}),
        PeerResponse(500, {"code": "81000001", "msg": "System inner error"}, {"Retry-After": "9"}),
        push_answer("81000001", "System inner error", headers={"Retry-After": "9"}),
    ],
)
def test_flow_control_and_outages_are_temporary(make_adapter, outgoing, answer):
    # given: two different contents, so two requests would be needed
    with HuaweiPeer([answer]) as peer:
        adapter = make_adapter("huawei", huawei_config(peer))
        # when
        first, second = adapter.send(
            [outgoing("push", "t1", {"body": "one"}), outgoing("push", "t2", {"body": "two"})]
        )
    # then: the second request is not tried during the outage
    assert len(peer.sends()) == 1
    assert first.outcome == second.outcome == Outcome.TEMPORARY
    assert first.retry_after == second.retry_after == 9 and not first.retire_address


def test_a_refused_payload_is_rejected(make_adapter, outgoing):
    with HuaweiPeer(
        [push_answer("80300008", "The message body size exceeds the default value", status=400)]
    ) as peer:
        adapter = make_adapter("huawei", huawei_config(peer))
        (result,) = adapter.send([outgoing("push", "t1", {"body": "one"})])
    assert result.outcome == Outcome.REJECTED and result.reason.startswith("80300008")


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"title": "Hi", "image": "https://i/x.png", "link": "myapp://offer/1"}, True),
        ({"image": "https://i/x.png"}, False),
        ({"title": "Hi", "image": "http://i/x.png"}, False),  # Push Kit loads images over https only
        ({"body": "x" * 4100}, False),
    ],
)
def test_content_errors(make_adapter, content, ok):
    adapter = make_adapter("huawei", {})
    assert (adapter.content_errors(content) == []) is ok
