"""Apple Push Notification service against a local HTTP/2-only peer that checks the ES256
provider token with the key's public half and answers as Apple's "Handling notification
responses from APNs" describes."""

from datetime import UTC, datetime

import httpx
import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateways.providers import Lifecycle, Outcome
from gateways.providers.apns import ApnsForm
from tests.gateways.h2peer import H2Peer
from tests.gateways.peers import PeerResponse

TEAM_ID = "TEAM123456"
KEY_ID = "KEY1234567"
BUNDLE = "com.example.loyalty"
NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def p256_key():
    return ec.generate_private_key(ec.SECP256R1())


def p8(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class ApnsPeer(H2Peer):
    """``POST /3/device/{token}``: checks the bearer JWT and the apns-* headers, then answers
    with ``answers[token]`` or 200 echoing ``apns-id``."""

    def __init__(self, public_key, answers=None):
        super().__init__(self.handle)
        self.public_key = public_key
        self.answers = answers or {}
        self.expire_first = False  # answer the first provider token with ExpiredProviderToken
        self.expired: set[str] = set()
        self.tokens: list[tuple[dict, dict]] = []  # (JWT header, claims) of each request

    def handle(self, request):
        if request.method != "POST" or not request.path.startswith("/3/device/"):
            return PeerResponse(404, {"reason": "BadPath"})
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("bearer "):
            return PeerResponse(403, {"reason": "MissingProviderToken"})
        token = authorization.removeprefix("bearer ")
        try:
            claims = jwt.decode(
                token, self.public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]}
            )
        except jwt.InvalidTokenError:
            return PeerResponse(403, {"reason": "InvalidProviderToken"})
        header = jwt.get_unverified_header(token)
        self.tokens.append((header, claims))
        if header.get("kid") != KEY_ID or claims["iss"] != TEAM_ID:
            return PeerResponse(403, {"reason": "InvalidProviderToken"})
        if self.expire_first and not self.expired:
            self.expired.add(token)
        if token in self.expired:
            return PeerResponse(403, {"reason": "ExpiredProviderToken"})
        if request.headers.get("apns-topic") != BUNDLE:
            return PeerResponse(400, {"reason": "MissingTopic"})
        if request.headers.get("apns-push-type") != "alert":
            return PeerResponse(400, {"reason": "InvalidPushType"})
        answer = self.answers.get(request.path.removeprefix("/3/device/"))
        if answer is not None:
            return answer
        return PeerResponse(200, b"", {"apns-id": request.headers.get("apns-id", "generated-by-apns")})


def apns_config(peer, key):
    return {
        "base_url": peer.url,
        "team_id": TEAM_ID,
        "key_id": KEY_ID,
        "private_key": p8(key),
        "bundle_id": BUNDLE,
    }


def test_notifications_travel_as_http2_on_one_connection_with_one_signed_token(
    make_adapter, outgoing, p256_key
):
    # given
    content = {
        "title": "Double points",
        "body": "Today only",
        "image": "https://img.example/p.png",
        "link": "https://shop.example/offer/42",
        "data": {"offer": "42"},
    }
    with ApnsPeer(p256_key.public_key()) as peer, time_machine.travel(NOW, tick=False):
        adapter = make_adapter("apns", apns_config(peer, p256_key))
        first_message = outgoing("push", "a1b2c3", content, platform="ios", validity_seconds=3600)
        # when
        (first,) = adapter.send([first_message])
        (second,) = adapter.send([outgoing("push", "d4e5f6", {"body": "Hello"}, platform="ios")])
    # then: HTTP/2 frames, one connection, the same provider token on both streams
    one, two = peer.requests
    assert peer.errors == [] and peer.connections == 1
    assert one.http_version == two.http_version == "HTTP/2"
    assert (
        one.pseudo[":method"] == "POST" and one.path == "/3/device/a1b2c3" and two.path == "/3/device/d4e5f6"
    )
    assert one.stream_id != two.stream_id
    assert one.headers["authorization"] == two.headers["authorization"]
    (header, claims), _ = peer.tokens
    assert header == {"alg": "ES256", "kid": KEY_ID}
    assert claims == {"iss": TEAM_ID, "iat": int(NOW.timestamp())}
    # and the documented headers and payload
    assert one.headers["apns-topic"] == BUNDLE and one.headers["apns-push-type"] == "alert"
    assert one.headers["apns-priority"] == "10"
    assert one.headers["apns-id"] == first_message.ref
    assert one.headers["apns-expiration"] == str(int(NOW.timestamp()) + 3600)
    assert "apns-expiration" not in two.headers
    assert one.json() == {
        "aps": {"alert": {"title": "Double points", "body": "Today only"}, "mutable-content": 1},
        "offer": "42",
        "link": "https://shop.example/offer/42",
        "image": "https://img.example/p.png",
    }
    assert two.json() == {"aps": {"alert": {"body": "Hello"}}}
    assert first.outcome == second.outcome == Outcome.ACCEPTED and first.status == Lifecycle.SENT
    assert first.provider_message_id == first_message.ref


def test_the_provider_token_is_renewed_after_forty_minutes(make_adapter, outgoing, p256_key):
    # given
    with ApnsPeer(p256_key.public_key()) as peer, time_machine.travel(NOW, tick=False) as clock:
        adapter = make_adapter("apns", apns_config(peer, p256_key))
        adapter.send([outgoing("push", "aa", {"body": "1"})])
        clock.shift(39 * 60)
        adapter.send([outgoing("push", "bb", {"body": "2"})])
        # when
        clock.shift(2 * 60)
        adapter.send([outgoing("push", "cc", {"body": "3"})])
    # then
    iats = [claims["iat"] for _header, claims in peer.tokens]
    start = int(NOW.timestamp())
    assert iats == [start, start, start + 41 * 60]


def test_an_expired_provider_token_is_signed_again_and_the_notification_resent_once(
    make_adapter, outgoing, p256_key
):
    # given: APNs considers the first provider token expired
    with ApnsPeer(p256_key.public_key()) as peer:
        adapter = make_adapter("apns", apns_config(peer, p256_key))
        peer.expire_first = True
        # when
        (result,) = adapter.send([outgoing("push", "aa", {"body": "1"})])
    # then
    first, retry = peer.requests
    assert first.headers["authorization"] != retry.headers["authorization"]
    assert first.headers["apns-id"] == retry.headers["apns-id"]
    assert result.outcome == Outcome.ACCEPTED


def test_an_unknown_key_is_a_configuration_problem_not_retried(make_adapter, outgoing, p256_key):
    # given: the peer knows another key
    other = ec.generate_private_key(ec.SECP256R1())
    with ApnsPeer(other.public_key()) as peer:
        adapter = make_adapter("apns", apns_config(peer, p256_key))
        # when
        first, second = adapter.send(
            [outgoing("push", "aa", {"body": "1"}), outgoing("push", "bb", {"body": "2"})]
        )
    # then: one request; both wait for the configuration to be fixed
    assert len(peer.requests) == 1
    assert first.outcome == second.outcome == Outcome.TEMPORARY
    assert "InvalidProviderToken" in first.reason and not first.retire_address


def test_answers_map_to_outcomes(make_adapter, outgoing, p256_key):
    # given
    answers = {
        "gone": PeerResponse(410, {"reason": "Unregistered", "timestamp": 1763892000000}),
        "expired": PeerResponse(410, {"reason": "ExpiredToken"}),
        "garbled": PeerResponse(400, {"reason": "BadDeviceToken"}),
        "chatty": PeerResponse(429, {"reason": "TooManyRequests"}, {"Retry-After": "20"}),
        "huge": PeerResponse(413, {"reason": "PayloadTooLarge"}),
        "fine": None,
        "down": PeerResponse(503, {"reason": "ServiceUnavailable"}, {"Retry-After": "5"}),
        "after-outage": None,
    }
    with ApnsPeer(p256_key.public_key(), {k: v for k, v in answers.items() if v}) as peer:
        adapter = make_adapter("apns", apns_config(peer, p256_key))
        # when
        results = dict(
            zip(
                answers,
                adapter.send([outgoing("push", token, {"body": "x"}) for token in answers]),
                strict=True,
            )
        )
    # then
    for token in ("gone", "expired", "garbled"):
        assert results[token].outcome == Outcome.PERMANENT and results[token].retire_address
    assert results["gone"].reason == "410 Unregistered"
    assert results["chatty"].outcome == Outcome.TEMPORARY and results["chatty"].retry_after == 20
    assert results["huge"].outcome == Outcome.REJECTED and "PayloadTooLarge" in results["huge"].reason
    assert not results["huge"].retire_address
    assert results["fine"].outcome == Outcome.ACCEPTED
    # an outage stops the batch: the rest waits with the same delay
    assert results["down"].outcome == Outcome.TEMPORARY and results["down"].retry_after == 5
    assert results["after-outage"].outcome == Outcome.TEMPORARY and results["after-outage"].retry_after == 5
    assert [r.path.removeprefix("/3/device/") for r in peer.requests] == list(answers)[:-1]


def test_the_peer_refuses_anything_but_http2(p256_key):
    # given
    with ApnsPeer(p256_key.public_key()) as peer, httpx.Client(base_url=peer.url) as http1:
        # when
        try:
            http1.post("/3/device/aa", json={})
            refused = False
        except httpx.HTTPError:
            refused = True
    # then: nothing was served (whether the peer's protocol error is recorded before the
    # client hangs up is a race, so only the outcome is asserted)
    assert refused and peer.requests == []


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"title": "Hi"}, True),
        ({"body": "Hi", "image": "https://i/x.png", "link": "https://x"}, True),
        ({"link": "https://x"}, False),
        ({"title": "Hi", "body": "x" * 4100}, False),
    ],
)
def test_content_errors(make_adapter, content, ok):
    adapter = make_adapter("apns", {})
    assert (adapter.content_errors(content) == []) is ok


def test_the_form_wants_a_p256_key(p256_key):
    data = {
        "base_url": "https://api.push.apple.com",
        "team_id": TEAM_ID,
        "key_id": KEY_ID,
        "bundle_id": BUNDLE,
    }
    assert ApnsForm(data={**data, "private_key": p8(p256_key)}).is_valid()
    other_curve = ec.generate_private_key(ec.SECP384R1())
    assert "private_key" in ApnsForm(data={**data, "private_key": p8(other_curve)}).errors
    assert "private_key" in ApnsForm(data={**data, "private_key": "not a key"}).errors
