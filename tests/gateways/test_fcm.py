"""Firebase Cloud Messaging (HTTP v1) against a local peer that plays both Google's OAuth
token endpoint (checking the RS256 assertion with the service account's public key) and
the FCM send endpoint, answering as firebase.google.com documents."""

import json
from datetime import UTC, datetime

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateways.providers import Lifecycle, Outcome
from gateways.providers.fcm import FcmForm
from tests.gateways.peers import HttpPeer, PeerResponse

PROJECT = "demo-project"
SEND_PATH = f"/v1/projects/{PROJECT}/messages:send"
CLIENT_EMAIL = "sender@demo-project.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account(key, token_uri: str) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "token_uri": token_uri,
        }
    )


def fcm_error(status: int, status_text: str, code: str, message: str, *extra, headers=None) -> PeerResponse:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}, *extra]
    body = {"error": {"code": status, "message": message, "status": status_text, "details": details}}
    return PeerResponse(status, body, headers or {})


class FcmPeer:
    """Google's token endpoint at ``/token`` and FCM's ``messages:send``. ``answers`` maps a
    device token to the answer FCM gives for it; other tokens are accepted."""

    def __init__(self, public_key, answers=None):
        self.public_key = public_key
        self.answers = answers or {}
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.refuse_all = False
        self.assertions: list[tuple[dict, dict]] = []  # (JWT header, claims) of each token request
        self.sent: list[dict] = []  # accepted request bodies
        self.http = HttpPeer(self.handle)

    @property
    def url(self):
        return self.http.url

    @property
    def requests(self):
        return self.http.requests

    def __enter__(self):
        self.http.__enter__()
        return self

    def __exit__(self, *exc):
        self.http.__exit__(*exc)

    def handle(self, request):
        if request.method == "POST" and request.path == "/token":
            return self.token(request)
        if request.method == "POST" and request.path == SEND_PATH:
            return self.send(request)
        return PeerResponse(404, "not found")

    def token(self, request):
        form = request.form()
        if form.get("grant_type") != [JWT_BEARER]:
            return PeerResponse(400, {"error": "unsupported_grant_type"})
        assertion = form["assertion"][0]
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=f"{self.url}/token",
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.InvalidTokenError as exc:
            return PeerResponse(400, {"error": "invalid_grant", "error_description": str(exc)})
        header = jwt.get_unverified_header(assertion)
        if claims["iss"] != CLIENT_EMAIL or claims["scope"] != SCOPE or claims["exp"] - claims["iat"] > 3600:
            return PeerResponse(400, {"error": "invalid_grant", "error_description": "bad claims"})
        self.assertions.append((header, claims))
        token = f"ya29.access-{len(self.issued) + 1}"
        self.issued.append(token)
        return PeerResponse(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def send(self, request):
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.issued or token in self.revoked or self.refuse_all:
            return PeerResponse(
                401,
                {
                    "error": {
                        "code": 401,
                        "message": "Request had invalid authentication credentials.",
                        "status": "UNAUTHENTICATED",
                    }
                },
            )
        body = request.json()
        answer = self.answers.get(body["message"]["token"])
        if answer is not None:
            return answer
        self.sent.append(body)
        return PeerResponse(200, {"name": f"projects/{PROJECT}/messages/0:{len(self.sent)}"})


def fcm_config(peer, key):
    return {"base_url": peer.url, "service_account": service_account(key, f"{peer.url}/token")}


def sends(peer):
    return [r for r in peer.requests if r.path == SEND_PATH]


def token_requests(peer):
    return [r for r in peer.requests if r.path == "/token"]


def test_messages_go_out_in_the_v1_shape_with_one_access_token_for_two_batches(
    make_adapter, outgoing, rsa_key
):
    # given
    content = {
        "title": "Double points",
        "body": "Today only",
        "image": "https://img.example/p.png",
        "link": "https://shop.example/offer/42",
        "data": {"offer": "42", "points": 150},
    }
    with FcmPeer(rsa_key.public_key()) as peer:
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        # when
        (first,) = adapter.send(
            [outgoing("push", "device-1", content, platform="android", validity_seconds=3600)]
        )
        (second,) = adapter.send([outgoing("push", "device-2", {"body": "Hello"}, platform="android")])
    # then: one JWT-bearer grant, signed by the service account's key
    assert len(token_requests(peer)) == 1
    ((header, claims),) = peer.assertions
    assert header["alg"] == "RS256" and header["kid"] == "key-1"
    assert claims["iss"] == CLIENT_EMAIL and claims["aud"] == f"{peer.url}/token" and claims["scope"] == SCOPE
    # and both messages used that token on messages:send
    assert [r.headers["authorization"] for r in sends(peer)] == ["Bearer ya29.access-1"] * 2
    assert sends(peer)[0].json() == {
        "message": {
            "token": "device-1",
            "notification": {
                "title": "Double points",
                "body": "Today only",
                "image": "https://img.example/p.png",
            },
            "data": {"offer": "42", "points": "150", "link": "https://shop.example/offer/42"},
            "android": {"ttl": "3600s"},
        }
    }
    assert sends(peer)[1].json() == {"message": {"token": "device-2", "notification": {"body": "Hello"}}}
    assert first.outcome == Outcome.ACCEPTED and first.status == Lifecycle.SENT
    assert first.provider_message_id == f"projects/{PROJECT}/messages/0:1"
    assert second.provider_message_id == f"projects/{PROJECT}/messages/0:2"


def test_ios_and_web_tokens_get_their_platform_options(make_adapter, outgoing, rsa_key):
    # given
    content = {"title": "Sale", "image": "https://img.example/s.png", "link": "https://shop.example/"}
    with FcmPeer(rsa_key.public_key()) as peer:
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        # when
        adapter.send(
            [
                outgoing("push", "ios-1", content, platform="ios"),
                outgoing("push", "web-1", content, platform="web"),
            ]
        )
    # then
    ios, web = (r.json()["message"] for r in sends(peer))
    assert ios["apns"] == {
        "payload": {"aps": {"mutable-content": 1}},
        "fcm_options": {"image": "https://img.example/s.png"},
    }
    assert web["webpush"] == {"fcm_options": {"link": "https://shop.example/"}}


def test_a_token_refused_with_401_is_fetched_again_once(make_adapter, outgoing, rsa_key):
    # given: FCM stops honouring the first access token after the first message
    with FcmPeer(rsa_key.public_key()) as peer:
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        (first,) = adapter.send([outgoing("push", "device-1", {"body": "one"})])
        peer.revoked.add("ya29.access-1")
        # when
        (second,) = adapter.send([outgoing("push", "device-2", {"body": "two"})])
    # then: the refused request was repeated with a new token
    assert [r.headers["authorization"] for r in sends(peer)] == [
        "Bearer ya29.access-1",
        "Bearer ya29.access-1",
        "Bearer ya29.access-2",
    ]
    assert len(token_requests(peer)) == 2
    assert first.outcome == second.outcome == Outcome.ACCEPTED


def test_a_401_that_persists_after_the_refresh_is_temporary_and_not_retried_again(
    make_adapter, outgoing, rsa_key
):
    # given: every access token is refused
    with FcmPeer(rsa_key.public_key()) as peer:
        peer.refuse_all = True
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        # when
        first, second = adapter.send(
            [outgoing("push", "d1", {"body": "a"}), outgoing("push", "d2", {"body": "b"})]
        )
    # then: one refresh, then the whole batch waits
    assert len(token_requests(peer)) == 2 and len(sends(peer)) == 2
    assert first.outcome == second.outcome == Outcome.TEMPORARY
    assert "UNAUTHENTICATED" in first.reason and "UNAUTHENTICATED" in second.reason


def test_an_expired_access_token_is_replaced_before_sending(make_adapter, outgoing, rsa_key):
    # given
    with (
        FcmPeer(rsa_key.public_key()) as peer,
        time_machine.travel(datetime(2026, 11, 23, 10, tzinfo=UTC), tick=False) as clock,
    ):
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        adapter.send([outgoing("push", "device-1", {"body": "one"})])
        adapter.send([outgoing("push", "device-2", {"body": "two"})])
        # when: the token's hour has passed
        clock.shift(3600)
        adapter.send([outgoing("push", "device-3", {"body": "three"})])
    # then
    assert len(token_requests(peer)) == 2
    assert [r.headers["authorization"] for r in sends(peer)] == [
        "Bearer ya29.access-1",
        "Bearer ya29.access-1",
        "Bearer ya29.access-2",
    ]
    assert peer.assertions[1][1]["iat"] == peer.assertions[0][1]["iat"] + 3600


def test_dead_registration_tokens_are_retired(make_adapter, outgoing, rsa_key):
    # given
    bad_token = {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}],
    }
    answers = {
        "uninstalled": fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
        "other-app": fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
        "garbled": fcm_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            bad_token,
        ),
        "bad-ttl": fcm_error(
            400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'"
        ),
    }
    with FcmPeer(rsa_key.public_key(), answers) as peer:
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        batch = [
            outgoing("push", token, {"body": "hi"})
            for token in ("uninstalled", "other-app", "garbled", "bad-ttl", "fine")
        ]
        # when
        uninstalled, other_app, garbled, bad_ttl, fine = adapter.send(batch)
    # then
    for result in (uninstalled, other_app, garbled):
        assert result.outcome == Outcome.PERMANENT and result.retire_address
    assert uninstalled.reason.startswith("UNREGISTERED")
    assert bad_ttl.outcome == Outcome.REJECTED and not bad_ttl.retire_address
    assert fine.outcome == Outcome.ACCEPTED


def test_quota_and_outages_are_temporary_with_retry_after(make_adapter, outgoing, rsa_key):
    # given: one device over its quota, then FCM overloaded
    answers = {
        "busy-device": fcm_error(
            429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota", headers={"Retry-After": "30"}
        ),
        "quiet-device": fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota"),
        "unlucky": fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", "overloaded", headers={"Retry-After": "12"}),
    }
    with FcmPeer(rsa_key.public_key(), answers) as peer:
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        batch = [
            outgoing("push", t, {"body": "hi"}) for t in ("busy-device", "quiet-device", "unlucky", "later")
        ]
        # when
        busy, quiet, unlucky, later = adapter.send(batch)
    # then: a device quota does not stop the batch; an outage does
    assert busy.outcome == Outcome.TEMPORARY and busy.retry_after == 30
    assert quiet.outcome == Outcome.TEMPORARY and quiet.retry_after == 60  # FCM asks for at least a minute
    assert unlucky.outcome == Outcome.TEMPORARY and unlucky.retry_after == 12
    assert later.outcome == Outcome.TEMPORARY and later.retry_after == 12
    assert [r.json()["message"]["token"] for r in sends(peer)] == ["busy-device", "quiet-device", "unlucky"]


def test_a_broken_apns_credential_in_firebase_is_a_temporary_configuration_problem(
    make_adapter, outgoing, rsa_key
):
    # given
    answers = {"iphone": fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS")}
    with FcmPeer(rsa_key.public_key(), answers) as peer:
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        # when
        iphone, android = adapter.send(
            [
                outgoing("push", "iphone", {"body": "hi"}, platform="ios"),
                outgoing("push", "pixel", {"body": "hi"}),
            ]
        )
    # then: no pointless token refresh, a reason that names the fix, the token is kept
    assert len(token_requests(peer)) == 1
    assert iphone.outcome == Outcome.TEMPORARY and not iphone.retire_address
    assert "THIRD_PARTY_AUTH_ERROR" in iphone.reason and "APNs" in iphone.reason
    assert android.outcome == Outcome.ACCEPTED


def test_a_refused_service_account_keeps_the_whole_batch_waiting(make_adapter, outgoing, rsa_key):
    # given: the peer knows another key than the one configured
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with FcmPeer(other_key.public_key()) as peer:
        adapter = make_adapter("fcm", fcm_config(peer, rsa_key))
        # when
        results = adapter.send([outgoing("push", "d1", {"body": "a"}), outgoing("push", "d2", {"body": "b"})])
    # then
    assert [r.outcome for r in results] == [Outcome.TEMPORARY] * 2
    assert "invalid_grant" in results[0].reason
    assert sends(peer) == []


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"title": "Hi"}, True),
        ({"body": "Hi", "image": "https://i/x.png", "link": "https://x", "data": {"a": "1"}}, True),
        ({"image": "https://i/x.png"}, False),  # neither title nor body
        ({"title": " ", "body": ""}, False),
        ({"title": "Hi", "data": {"nested": {"a": 1}}}, False),  # data is a flat map
        ({"title": "Hi", "data": {"google.sent_time": "1"}}, False),  # reserved by FCM
        ({"title": "Hi", "body": "x" * 5000}, False),  # over 4096 bytes
    ],
)
def test_content_errors(make_adapter, content, ok):
    adapter = make_adapter("fcm", {})
    assert (adapter.content_errors(content) == []) is ok


def test_the_form_checks_the_service_account_key(rsa_key):
    good = FcmForm(
        data={
            "base_url": "https://fcm.googleapis.com",
            "service_account": service_account(rsa_key, "https://oauth2.googleapis.com/token"),
        }
    )
    not_json = FcmForm(data={"base_url": "https://fcm.googleapis.com", "service_account": "{not json"})
    no_key = FcmForm(
        data={
            "base_url": "https://fcm.googleapis.com",
            "service_account": json.dumps({"project_id": "p", "client_email": "e"}),
        }
    )
    assert good.is_valid(), good.errors
    assert "service_account" in not_json.errors and "service_account" in no_key.errors
