"""SMS Traffic (smstraffic.ru): SMS through multi.php and Viber / VK through Smart Delivery,
against a local peer that answers as the provider's HTTP API description says, then
statuses back by callback and by polling."""

import itertools
import socket

import pytest

from gateways.providers import CallbackRejected, Lifecycle, Outcome
from tests.gateways.peers import HttpPeer, PeerResponse

LOGIN = {"login": "shop", "password": "secret"}


def reply(body: str) -> PeerResponse:
    return PeerResponse(
        200, f'<?xml version="1.0" encoding="UTF-8"?>\n<reply>{body}</reply>', {"Content-Type": "text/xml"}
    )


def error(code: int, description: str) -> PeerResponse:
    return reply(f"<result>ERROR</result><code>{code}</code><description>{description}</description>")


def fields(request) -> dict[str, str]:
    return {name: values[0] for name, values in request.form().items()}


def segments_of(text: str, rus: str) -> int:
    single, part = (160, 153) if rus == "0" else (70, 67)
    return 1 if len(text) <= single else -(-len(text) // part)


def smstraffic_peer(*, bad_phones=frozenset(), statuses=None):
    """multi.php: checks the credentials, reads a plain or an individual-messages send
    (``ourId:phone text`` lines) and answers one ``message_info`` per segment; answers
    ``operation=status`` flat for one id and with one ``<sms>`` per id for several. A bad
    phone fails the whole request (428, nothing sent), as the provider does."""
    counter = itertools.count(8287713301)
    statuses = statuses or {}

    def handle(request):
        form = fields(request)
        if request.path != "/multi.php":
            return PeerResponse(404, "not found")
        if (form.get("login"), form.get("password")) != ("shop", "secret"):
            return error(411, "Authentication failed")
        if form.get("operation") == "status":
            ids = form["sms_id"].split(",")
            if len(ids) > 15:
                return error(442, "too many ids")
            items = []
            for sms_id in ids:
                status, err = statuses.get(
                    sms_id, ("", "no such message or this message does not belong to you")
                )
                items.append(
                    f"<error>{err}</error><submition_date>2026-11-23 13:00:00</submition_date>"
                    f"<send_date>2026-11-23 13:00:00</send_date>"
                    f"<last_status_change_date>2026-11-23 13:00:05</last_status_change_date>"
                    f"<sms_id>{sms_id}</sms_id><status>{status}</status>"
                )
            if len(items) == 1:
                return reply(items[0])
            return reply("".join(f"<sms>{item}</sms>" for item in items))
        if form.get("individual_messages") == "1":
            messages = []
            for line in form["phones"].split(form.get("delimiter", "\n")):
                head, text = line.split(" ", 1)
                push_id, phone = head.split(":", 1) if form.get("with_push_id") == "1" else ("", head)
                messages.append((push_id, phone, text))
        else:
            messages = [("", phone, form["message"]) for phone in form["phones"].split(",")]
        if any(phone in bad_phones for _push, phone, _text in messages):
            return error(428, "Phone has wrong format")
        infos = []
        for push_id, phone, text in messages:
            for _n in range(segments_of(text, form["rus"])):
                push = f"<push_id>{push_id}</push_id>" if push_id else ""
                infos.append(
                    f"<message_info><phone>{phone}</phone><sms_id>{next(counter)}</sms_id>{push}</message_info>"
                )
        return reply(
            f"<result>OK</result><code>0</code><description>queued {len(infos)} messages</description>"
            f"<message_infos>{''.join(infos)}</message_infos>"
        )

    return HttpPeer(handle)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_batch_goes_out_as_individual_messages_and_segments_map_back_by_push_id(make_adapter, outgoing):
    # given
    with smstraffic_peer() as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, **LOGIN}, sender="SHOP")
        long_latin = "Your points expire soon. " * 8  # 200 GSM-7 characters: 2 segments
        batch = [
            outgoing("sms", "+79031234567", {"text": long_latin}),
            outgoing("sms", "+79031234568", {"text": "Code 1234"}),
            outgoing("sms", "+79031234569", {"text": "Привет! Ваши баллы сгорят завтра."}),
            outgoing("sms", "+79031234570", {"text": "Скидка"}),
        ]
        # when
        results = {r.message_id: r for r in adapter.send(batch)}
    # then: one request per encoding, each carrying its messages as ourId:phone text lines
    latin, cyrillic = (fields(r) for r in peer.requests)
    assert len(peer.requests) == 2
    assert latin["originator"] == "SHOP" and latin["rus"] == "0" and cyrillic["rus"] == "5"
    assert (
        latin["individual_messages"] == "1" and latin["with_push_id"] == "1" and latin["want_sms_ids"] == "1"
    )
    assert latin["max_parts"] == "10"
    assert latin["phones"].split("\n") == [
        f"{batch[0].id}:79031234567 {long_latin}",
        f"{batch[1].id}:79031234568 Code 1234",
    ]
    assert cyrillic["phones"].split("\n")[0] == f"{batch[2].id}:79031234569 Привет! Ваши баллы сгорят завтра."
    # and every message got its own ids: the first segment's id, the others as part ids
    first = results[batch[0].id]
    assert first.outcome == Outcome.ACCEPTED and first.status == Lifecycle.QUEUED
    assert (first.provider_message_id, first.part_ids, first.segments) == ("8287713301", ["8287713302"], 2)
    assert (results[batch[1].id].provider_message_id, results[batch[1].id].segments) == ("8287713303", 1)
    assert results[batch[2].id].provider_message_id == "8287713304" and results[batch[2].id].part_ids == []
    assert results[batch[3].id].provider_message_id == "8287713305"


def test_a_text_with_a_line_break_goes_in_its_own_plain_request(make_adapter, outgoing):
    with smstraffic_peer() as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, **LOGIN}, sender="SHOP")
        batch = [
            outgoing("sms", "+79031234567", {"text": "Dear Anna,\nyour card is ready"}),
            outgoing("sms", "+79031234568", {"text": "one"}),
            outgoing("sms", "+79031234569", {"text": "two"}),
        ]
        results = {r.message_id: r for r in adapter.send(batch)}
    grouped, alone = (fields(r) for r in peer.requests)
    assert grouped["phones"].count("\n") == 1 and "Dear Anna" not in grouped["phones"]
    assert "individual_messages" not in alone
    assert alone["phones"] == "79031234567" and alone["message"] == "Dear Anna,\nyour card is ready"
    assert all(r.outcome == Outcome.ACCEPTED and r.provider_message_id for r in results.values())


def test_a_bad_number_in_a_batch_is_isolated_and_suppressed(make_adapter, outgoing):
    # given: the provider refuses the whole request for one bad number
    with smstraffic_peer(bad_phones={"7903"}) as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, **LOGIN}, sender="SHOP")
        batch = [
            outgoing("sms", "+79031234567", {"text": "hello"}),
            outgoing("sms", "+7903", {"text": "hello"}),
            outgoing("sms", "+79031234569", {"text": "hello"}),
        ]
        # when
        results = {r.message_id: r for r in adapter.send(batch)}
    # then: the batch is resent message by message; only the bad number is refused
    assert len(peer.requests) == 4
    assert [fields(r)["phones"] for r in peer.requests[1:]] == ["79031234567", "7903", "79031234569"]
    bad = results[batch[1].id]
    assert bad.outcome == Outcome.REJECTED and bad.suppress_address and bad.reason.startswith("428")
    assert results[batch[0].id].outcome == results[batch[2].id].outcome == Outcome.ACCEPTED


def test_an_account_error_is_temporary_for_the_whole_batch(make_adapter, outgoing):
    with smstraffic_peer() as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, "login": "shop", "password": "old"})
        batch = [
            outgoing("sms", "+79031234567", {"text": "one"}),
            outgoing("sms", "+79031234568", {"text": "two"}),
            outgoing("sms", "+79031234569", {"text": "line\nbreak"}),
        ]
        results = adapter.send(batch)
    assert len(peer.requests) == 1  # the rest of the batch is not tried with the same credentials
    assert {r.outcome for r in results} == {Outcome.TEMPORARY}
    assert not any(r.suppress_address for r in results)
    assert "411" in results[0].reason


def test_temporary_error_1000_is_retried_on_the_reserve_host(make_adapter, outgoing):
    # given: the main host answers 1000, the reserve host works
    with HttpPeer(lambda request: error(1000, "Temporary error")) as main, smstraffic_peer() as reserve:
        adapter = make_adapter(
            "smstraffic_sms", {"base_url": main.url, "base_url_reserve": reserve.url, **LOGIN}, sender="SHOP"
        )
        # when
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    # then
    assert len(main.requests) == len(reserve.requests) == 1
    assert fields(reserve.requests[0])["message"] == "hi"
    assert result.outcome == Outcome.ACCEPTED and result.provider_message_id == "8287713301"


def test_temporary_error_1000_without_a_reserve_host_is_retried_later(make_adapter, outgoing):
    with HttpPeer(lambda request: error(1000, "Temporary error")) as main:
        adapter = make_adapter("smstraffic_sms", {"base_url": main.url, **LOGIN})
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    assert result.outcome == Outcome.TEMPORARY and result.reason.startswith("1000")


def test_an_unreachable_main_host_falls_over_to_the_reserve_host(make_adapter, outgoing):
    with smstraffic_peer() as reserve:
        adapter = make_adapter(
            "smstraffic_sms", {"base_url": closed_port_url(), "base_url_reserve": reserve.url, **LOGIN}
        )
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    assert result.outcome == Outcome.ACCEPTED and len(reserve.requests) == 1


def test_no_answer_after_sending_is_unknown_and_not_resent_to_the_reserve_host(make_adapter, outgoing):
    slow = HttpPeer(lambda request: PeerResponse(200, "", delay=0.5))
    with slow as main, smstraffic_peer() as reserve:
        adapter = make_adapter(
            "smstraffic_sms", {"base_url": main.url, "base_url_reserve": reserve.url, "timeout": 0.1, **LOGIN}
        )
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    assert result.outcome == Outcome.UNKNOWN
    assert reserve.requests == []


def test_server_errors_and_throttling_are_temporary_with_retry_after(make_adapter, outgoing):
    answers = iter([PeerResponse(503, "busy"), PeerResponse(429, "slow down", {"Retry-After": "7"})])
    with HttpPeer(lambda request: next(answers)) as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, **LOGIN})
        (first,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        (second,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    assert first.outcome == Outcome.TEMPORARY and "503" in first.reason
    assert second.outcome == Outcome.TEMPORARY and second.retry_after == 7


def test_a_text_longer_than_max_parts_is_refused_on_save_and_not_sent(make_adapter, outgoing):
    with smstraffic_peer() as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, "max_parts": 2, **LOGIN})
        content = {"text": "Длинный текст " * 12}  # 168 UCS-2 characters: 3 segments
        (result,) = adapter.send([outgoing("sms", "+79031234567", content)])
    assert peer.requests == []
    assert result.outcome == Outcome.REJECTED
    assert adapter.segments(content) == 3
    assert adapter.content_errors(content)
    assert adapter.content_errors({"text": "short"}) == []


@pytest.mark.parametrize(
    ("status", "lifecycle"),
    [
        ("Delivered", Lifecycle.DELIVERED),
        ("Non Delivered", Lifecycle.UNDELIVERABLE),
        ("Rejected", Lifecycle.REJECTED),
        ("Expired", Lifecycle.EXPIRED),
        ("Deleted", Lifecycle.FAILED),
        ("Buffered SMSC", Lifecycle.SENT),
        ("Unknown status", Lifecycle.UNKNOWN),
        ("", Lifecycle.QUEUED),
    ],
)
def test_the_callback_form_becomes_a_status_update_in_moscow_time(make_adapter, rf, status, lifecycle):
    # given
    adapter = make_adapter("smstraffic_sms", LOGIN)
    request = rf.post(
        "/cb/", {"sms_id": "8287713301", "status": status, "delivery_date": "2026-11-23 13:00:05"}
    )
    # when
    (update,) = adapter.parse_callback(request)
    # then
    assert update.provider_message_id == "8287713301" and update.status == lifecycle
    assert update.at.isoformat() == "2026-11-23T13:00:05+03:00"


def test_a_callback_without_an_sms_id_is_rejected(make_adapter, rf):
    adapter = make_adapter("smstraffic_sms", LOGIN)
    with pytest.raises(CallbackRejected):
        adapter.parse_callback(rf.post("/cb/", {"status": "Delivered"}))


def test_polling_reads_both_reply_shapes_fifteen_ids_a_request(make_adapter):
    # given: 17 ids, one of them unknown to the provider
    statuses = {str(8287713301 + n): ("Delivered", "") for n in range(15)}
    statuses["8287713302"] = ("Non Delivered", "absent subscriber")
    statuses["8287713400"] = ("Expired", "")
    ids = [*statuses]
    with smstraffic_peer(statuses=statuses) as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, **LOGIN})
        # when
        updates = {u.provider_message_id: u for u in adapter.poll([*ids, "9999999999"])}
    # then
    asked = [fields(r) for r in peer.requests]
    assert [len(a["sms_id"].split(",")) for a in asked] == [15, 2]
    assert all(a["operation"] == "status" for a in asked)
    assert updates["8287713301"].status == Lifecycle.DELIVERED
    assert updates["8287713301"].at.isoformat() == "2026-11-23T13:00:05+03:00"
    assert updates["8287713302"].status == Lifecycle.UNDELIVERABLE
    assert updates["8287713302"].reason == "absent subscriber"
    assert updates["8287713400"].status == Lifecycle.EXPIRED
    assert (
        updates["9999999999"].status == Lifecycle.UNKNOWN
        and "no such message" in updates["9999999999"].reason
    )


def test_polling_one_id_reads_the_flat_reply(make_adapter):
    with smstraffic_peer(statuses={"8287713301": ("Delivered", "")}) as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, **LOGIN})
        (update,) = adapter.poll(["8287713301"])
    assert fields(peer.requests[0])["sms_id"] == "8287713301"
    assert update.provider_message_id == "8287713301" and update.status == Lifecycle.DELIVERED


def test_polling_survives_a_refused_request(make_adapter):
    with HttpPeer(lambda request: error(411, "Authentication failed")) as peer:
        adapter = make_adapter("smstraffic_sms", {"base_url": peer.url, **LOGIN})
        assert adapter.poll(["8287713301"]) == []


# --- Smart Delivery: Viber and VK --------------------------------------------------------


def smart_delivery_peer(statuses=None):
    """smartdelivery-in/multi.php: one ``<message_info><phone/><id/>`` per message and
    ``<msg-info>`` status items (``<msg-infos>`` around several)."""
    counter = itertools.count(165314138129206752561536268436567490747)
    statuses = statuses or {}

    def handle(request):
        form = fields(request)
        if request.path != "/smartdelivery-in/multi.php":
            return PeerResponse(404, "not found")
        if (form.get("login"), form.get("password")) != ("shop", "secret"):
            return error(411, "Authentication failed")
        if form.get("operation") == "status":
            items = []
            for msg_id in form["sms_id"].split(","):
                status = statuses[msg_id]
                read = "<read_date>2026-06-14 23:42:08</read_date>" if status == "READ" else ""
                items.append(
                    f"<msg-info><id>{msg_id}</id><submition_date>2026-06-14 23:41:57</submition_date>"
                    f"<last_update_status>2026-06-14 23:42:13</last_update_status><status>{status}</status>"
                    f"<channel-info><channel>viber</channel><sent_date>2026-06-14 23:41:57</sent_date>"
                    f"<delivery_date>2026-06-14 23:42:02</delivery_date>{read}<status>{status}</status>"
                    f"<parts_count>1</parts_count><parts_dlv_count>1</parts_dlv_count></channel-info></msg-info>"
                )
            body = items[0] if len(items) == 1 else f"<msg-infos>{''.join(items)}</msg-infos>"
            return reply(f"<result>OK</result><code>0</code>{body}")
        infos = "".join(
            f"<message_info><phone>{phone}</phone><id>{next(counter)}</id></message_info>"
            for phone in form["phones"].split(",")
        )
        return reply(f"<result>OK</result><code>0</code><message_infos>{infos}</message_infos>")

    return HttpPeer(handle)


def test_viber_goes_through_smart_delivery_without_an_sms_fallback(make_adapter, outgoing):
    # given
    with smart_delivery_peer() as peer:
        adapter = make_adapter("smstraffic_viber", {"base_url": peer.url, **LOGIN}, sender="Shop")
        content = {
            "text": "Скидка 20%",
            "image": "https://img.example/a.png",
            "button_text": "Open",
            "button_url": "https://shop.example",
        }
        # when
        first, second = adapter.send(
            [outgoing("viber", "+79031234567", content), outgoing("viber", "+79031234568", {"text": "Hi"})]
        )
    # then: one request per message with the Smart Delivery fields
    sent = fields(peer.requests[0])
    assert sent["route"] == "viber" and sent["phones"] == "79031234567" and sent["originator"] == "Shop"
    assert (sent["message"], sent["image_url"], sent["btn_url"], sent["btn_name"]) == (
        "Скидка 20%",
        "https://img.example/a.png",
        "https://shop.example",
        "Open",
    )
    assert sent["rus"] == "5" and "image_url" not in fields(peer.requests[1])
    assert (
        first.outcome == Outcome.ACCEPTED
        and first.provider_message_id == "165314138129206752561536268436567490747"
    )
    assert second.provider_message_id == "165314138129206752561536268436567490748"


def test_viber_statuses_are_polled_in_both_reply_shapes(make_adapter):
    statuses = {"1001": "READ", "1002": "DELIVERED", "1003": "UNDELIVERED"}
    with smart_delivery_peer(statuses) as peer:
        adapter = make_adapter("smstraffic_viber", {"base_url": peer.url, **LOGIN})
        several = {u.provider_message_id: u for u in adapter.poll(["1001", "1002", "1003"])}
        (single,) = adapter.poll(["1001"])
    assert (
        several["1001"].status == Lifecycle.OPENED
        and several["1001"].at.isoformat() == "2026-06-14T23:42:08+03:00"
    )
    assert (
        several["1002"].status == Lifecycle.DELIVERED
        and several["1002"].at.isoformat() == "2026-06-14T23:42:02+03:00"
    )
    assert several["1003"].status == Lifecycle.UNDELIVERABLE
    assert single.provider_message_id == "1001" and single.status == Lifecycle.OPENED
    assert fields(peer.requests[0])["operation"] == "status"


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        ({"text": "a"}, True),
        ({"image": "https://i/x.png"}, True),
        ({"text": "a", "button_text": "Go", "button_url": "https://x"}, True),
        ({"text": "a", "image": "https://i/x.png"}, False),
        ({"text": "a", "button_url": "https://x"}, False),
    ],
)
def test_viber_content_combinations(make_adapter, content, ok):
    assert (make_adapter("smstraffic_viber", LOGIN).content_errors(content) == []) is ok


def test_vk_notifications_carry_the_template_and_its_parameters(make_adapter, outgoing):
    with smart_delivery_peer() as peer:
        adapter = make_adapter("smstraffic_social", {"base_url": peer.url, **LOGIN})
        content = {"template_id": "4012", "data": {"name": "Anna", "points": 150}}
        (result,) = adapter.send([outgoing("social", "+79031234567", content)])
    sent = fields(peer.requests[0])
    assert sent["route"] == "vk" and sent["template_id"] == "4012"
    assert (sent["param_name"], sent["param_points"]) == ("Anna", "150")
    assert result.outcome == Outcome.ACCEPTED and result.provider_message_id
    assert adapter.content_errors({"text": "free text"})  # no template id: refused on save
