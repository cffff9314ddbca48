"""Stream Telecom (gateway.api.sc REST): SMS and Viber against a local peer that answers as
the REST API's public clients describe it: a session id from Session/session.php, JSON id
arrays, {Code, Desc} errors, then statuses by polling."""

import json

import pytest

from gateways.providers import Lifecycle, Outcome
from tests.gateways.peers import HttpPeer, PeerResponse

LOGIN = {"login": "shop", "password": "secret"}


def fields(request) -> dict[str, str]:
    return {name: values[0] for name, values in request.form().items()}


def segments_of(text: str) -> int:
    single, part = (160, 153) if text.isascii() else (70, 67)
    return 1 if len(text) <= single else -(-len(text) // part)


def stream_peer(*, refuse=None, states=None, viber_states=None, delay=0.0):
    """The REST API: a login opens a session (a JSON string), every other call must carry
    a live ``sessionId`` (else code 3); ``refuse`` maps a destination number to the
    (HTTP status, Code, Desc) the send answers with. ``peer.sessions`` holds the live
    sessions: clearing it expires them."""
    refuse = refuse or {}
    states = states or {}
    viber_states = viber_states or {}
    ids = iter(range(579700854169272358, 579700854169272358 + 10**6))
    opened = []

    def handle(request):
        form = fields(request)
        if request.path == "/rest/Session/session.php":
            if (form.get("login"), form.get("password")) != ("shop", "secret"):
                return PeerResponse(401, {"Code": 4, "Desc": "Unauthorized"})
            opened.append(f"0b6f2c3e-0000-4000-8000-{len(opened) + 1:012d}")
            peer.sessions.add(opened[-1])
            return PeerResponse(200, json.dumps(opened[-1]), {"Content-Type": "application/json"})
        if form.get("sessionId") not in peer.sessions:
            return PeerResponse(400, {"Code": 3, "Desc": "Invalid session id"})
        if request.path == "/rest/Send/SendSms/":
            if form["destinationAddress"] in refuse:
                status, code, desc = refuse[form["destinationAddress"]]
                return PeerResponse(status, {"Code": code, "Desc": desc})
            return PeerResponse(200, [str(next(ids)) for _n in range(segments_of(form["data"]))], delay=delay)
        if request.path == "/rest/State/state.php":
            state = states.get(form["messageId"], 255)
            return PeerResponse(
                200,
                {
                    "State": state,
                    "StateDescription": {0: "Delivered", 11: "Invalid destination address"}.get(state, ""),
                    "CreationDateUtc": "2026-11-23T10:00:00",
                    "ReportedDateUtc": "2026-11-23T10:00:05" if state in (0, 11, 42, 46) else None,
                    "Price": 2.5,
                },
            )
        if request.path == "/rest/Send/SendIM/ViberOne/":
            return PeerResponse(200, json.dumps(next(ids)), {"Content-Type": "application/json"})
        if request.path == "/rest/State/Viber/":
            state, error = viber_states[form["messageId"]]
            viber = {"state": state, "state_error": error, "state_time": "2026-11-23 13:00:05"}
            return PeerResponse(200, {form["messageId"]: {"viber": viber}})
        return PeerResponse(404, "not found")

    peer = HttpPeer(handle)
    peer.sessions = set()
    return peer


def test_sms_opens_one_session_and_sends_one_request_per_message(make_adapter, outgoing):
    # given
    with stream_peer() as peer:
        adapter = make_adapter("streamtelecom_sms", {"base_url": peer.url, **LOGIN}, sender="SHOP")
        batch = [
            outgoing("sms", "+7 903 123-45-67", {"text": "Привет! " * 12}, validity_seconds=3600),
            outgoing("sms", "+79031234568", {"text": "Code 1234"}),
        ]
        # when
        long, short = adapter.send(batch)
    # then: one login, then the sends carrying its session id
    login, first, second = peer.requests
    assert login.path == "/rest/Session/session.php" and fields(login) == LOGIN
    assert first.path == second.path == "/rest/Send/SendSms/"
    sent = fields(first)
    assert sent["sessionId"] == fields(second)["sessionId"] == "0b6f2c3e-0000-4000-8000-000000000001"
    assert (sent["sourceAddress"], sent["destinationAddress"], sent["data"]) == (
        "SHOP",
        "79031234567",
        "Привет! " * 12,
    )
    assert sent["validity"] == "60"  # minutes
    # and one id per segment: the first is the message's, the others its parts
    assert long.outcome == Outcome.ACCEPTED and long.status == Lifecycle.QUEUED
    assert (long.provider_message_id, long.part_ids, long.segments) == (
        "579700854169272358",
        ["579700854169272359"],
        2,
    )
    assert (short.provider_message_id, short.part_ids, short.segments) == ("579700854169272360", [], 1)


def test_an_expired_session_is_renewed_once(make_adapter, outgoing):
    # given: a session that expires between two batches
    with stream_peer() as peer:
        adapter = make_adapter("streamtelecom_sms", {"base_url": peer.url, **LOGIN}, sender="SHOP")
        adapter.send([outgoing("sms", "+79031234567", {"text": "one"})])
        peer.sessions.clear()
        # when
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "two"})])
    # then: refused with code 3, a new login, the same send again
    assert [r.path for r in peer.requests[2:]] == [
        "/rest/Send/SendSms/",
        "/rest/Session/session.php",
        "/rest/Send/SendSms/",
    ]
    assert fields(peer.requests[-1])["sessionId"] == "0b6f2c3e-0000-4000-8000-000000000002"
    assert result.outcome == Outcome.ACCEPTED and result.provider_message_id


def test_wrong_credentials_end_the_batch_after_one_login(make_adapter, outgoing):
    with stream_peer() as peer:
        adapter = make_adapter(
            "streamtelecom_sms", {"base_url": peer.url, "login": "shop", "password": "old"}
        )
        results = adapter.send(
            [outgoing("sms", "+79031234567", {"text": "a"}), outgoing("sms", "+79031234568", {"text": "b"})]
        )
    assert len(peer.requests) == 1
    assert {r.outcome for r in results} == {Outcome.TEMPORARY}
    assert "Code 4" in results[0].reason


def test_refused_messages_are_rejected_and_a_bad_number_is_suppressed(make_adapter, outgoing):
    # given
    refuse = {
        "79000000000": (400, 2, "Invalid destination address"),
        "79000000001": (400, 6, "Invalid source address"),
        "79000000002": (400, 1, "Argument data is empty"),
    }
    with stream_peer(refuse=refuse) as peer:
        adapter = make_adapter("streamtelecom_sms", {"base_url": peer.url, **LOGIN}, sender="SHOP")
        batch = [outgoing("sms", f"+{number}", {"text": "hi"}) for number in refuse] + [
            outgoing("sms", "+79031234567", {"text": "hi"})
        ]
        # when
        bad_number, bad_sender, empty, ok = adapter.send(batch)
    # then
    assert bad_number.outcome == Outcome.REJECTED and bad_number.suppress_address
    assert bad_number.reason == "Code 2: Invalid destination address"
    assert bad_sender.outcome == Outcome.REJECTED and not bad_sender.suppress_address
    assert empty.outcome == Outcome.REJECTED and not empty.suppress_address
    assert ok.outcome == Outcome.ACCEPTED


@pytest.mark.parametrize(
    ("status", "code", "desc"),
    [(403, 5, "Not enough credits"), (500, 8, "Gateway error"), (500, 9, "Internal server error")],
)
def test_credit_and_gateway_errors_are_temporary_and_end_the_batch(
    make_adapter, outgoing, status, code, desc
):
    with stream_peer(refuse={"79031234567": (status, code, desc)}) as peer:
        adapter = make_adapter("streamtelecom_sms", {"base_url": peer.url, **LOGIN}, sender="SHOP")
        first, rest = adapter.send(
            [outgoing("sms", "+79031234567", {"text": "a"}), outgoing("sms", "+79031234568", {"text": "b"})]
        )
    assert len(peer.requests) == 2  # login + the first send only
    assert first.outcome == Outcome.TEMPORARY and f"Code {code}" in first.reason
    assert rest.outcome == Outcome.TEMPORARY and rest.reason.startswith("not attempted")


def test_no_answer_after_sending_is_unknown_and_ends_the_batch(make_adapter, outgoing):
    with stream_peer(delay=0.5) as peer:
        adapter = make_adapter("streamtelecom_sms", {"base_url": peer.url, "timeout": 0.1, **LOGIN})
        first, rest = adapter.send(
            [outgoing("sms", "+79031234567", {"text": "a"}), outgoing("sms", "+79031234568", {"text": "b"})]
        )
    assert first.outcome == Outcome.UNKNOWN
    assert rest.outcome == Outcome.TEMPORARY and len(peer.requests) == 2


def test_sms_states_are_polled_per_segment_id_renewing_the_session(make_adapter):
    # given
    states = {"1": -2, "2": -1, "3": 0, "4": 42, "5": 46, "6": 11, "7": 255}
    with stream_peer(states=states) as peer:
        adapter = make_adapter("streamtelecom_sms", {"base_url": peer.url, **LOGIN})
        adapter.poll(["1"])
        peer.sessions.clear()
        # when
        updates = {u.provider_message_id: u for u in adapter.poll(list(states))}
    # then: one request per id, the expired session renewed once
    assert [r.path for r in peer.requests].count("/rest/Session/session.php") == 2
    assert fields(peer.requests[-1]) == {
        "sessionId": "0b6f2c3e-0000-4000-8000-000000000002",
        "messageId": "7",
    }
    assert {pid: u.status for pid, u in updates.items()} == {
        "1": Lifecycle.QUEUED,
        "2": Lifecycle.SENT,
        "3": Lifecycle.DELIVERED,
        "4": Lifecycle.REJECTED,
        "5": Lifecycle.EXPIRED,
        "6": Lifecycle.UNDELIVERABLE,
        "7": Lifecycle.UNKNOWN,
    }
    assert updates["3"].at.isoformat() == "2026-11-23T10:00:05+00:00" and updates["3"].reason == ""
    assert updates["6"].suppress_address and "Invalid destination" in updates["6"].reason
    assert not updates["4"].suppress_address


def test_polling_stops_quietly_when_the_login_fails(make_adapter):
    with stream_peer() as peer:
        adapter = make_adapter(
            "streamtelecom_sms", {"base_url": peer.url, "login": "shop", "password": "old"}
        )
        assert adapter.poll(["1", "2"]) == []
    assert len(peer.requests) == 1


def test_viber_sends_text_and_polls_its_states(make_adapter, outgoing):
    # given
    viber_states = {
        "579700854169272358": ("read", ""),
        "2": ("undelivered", "not-viber-user"),
        "3": ("undelivered", "filtered"),
    }
    with stream_peer(viber_states=viber_states) as peer:
        adapter = make_adapter("streamtelecom_viber", {"base_url": peer.url, **LOGIN}, sender="Shop")
        # when
        (result,) = adapter.send(
            [outgoing("viber", "+79031234567", {"text": "Скидка 20%"}, validity_seconds=600)]
        )
        updates = {u.provider_message_id: u for u in adapter.poll([result.provider_message_id, "2", "3"])}
    # then
    sent = fields(peer.requests[1])
    assert peer.requests[1].path == "/rest/Send/SendIM/ViberOne/"
    assert (sent["sourceAddressIM"], sent["textIM"], sent["phone"], sent["validityPeriod"]) == (
        "Shop",
        "Скидка 20%",
        "79031234567",
        "600",
    )
    assert result.outcome == Outcome.ACCEPTED and result.provider_message_id == "579700854169272358"
    assert result.segments == 1 and result.part_ids == []
    assert all(r.path == "/rest/State/Viber/" for r in peer.requests[2:])
    read = updates["579700854169272358"]
    assert read.status == Lifecycle.OPENED and read.at.isoformat() == "2026-11-23T13:00:05+03:00"
    assert updates["2"].status == Lifecycle.UNDELIVERABLE and updates["2"].reason == "not-viber-user"
    assert not updates["2"].suppress_address  # our cascade falls back to SMS instead
    assert updates["3"].status == Lifecycle.REJECTED


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"text": "a"}, True),
        ({"image": "https://i/x.png"}, False),
        ({"text": "a", "button_text": "Go", "button_url": "https://x"}, False),
        ({"text": "a" * 1001}, False),
    ],
)
def test_viber_here_carries_text_only(make_adapter, content, ok):
    assert (make_adapter("streamtelecom_viber", LOGIN).content_errors(content) == []) is ok
