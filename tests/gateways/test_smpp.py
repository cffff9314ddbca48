"""SMPP 3.4 against a local SMSC: binding, encoding and concatenation, submit_sm answers,
delivery receipts read back by ``poll()``, keep-alive and reconnection."""

import struct

import pytest

from gateways.providers import Lifecycle, Outcome, ProviderError
from gateways.providers.smpp import encode_text
from tests.gateways.smsc import Smsc, gsm7_decode, tls_context

CYRILLIC = (
    "Здравствуйте! Ваша карта лояльности пополнена на 500 баллов. Потратить их можно в любом "
    "магазине сети до конца месяца. Спасибо, что вы с нами!"
)


def config(smsc: Smsc, **extra) -> dict:
    return {
        "host": smsc.host,
        "port": smsc.port,
        "system_id": "shop",
        "password": "secret",
        "timeout": 2,
        "poll_seconds": 1,
        **extra,
    }


def test_latin_text_goes_as_one_gsm7_part(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        # when
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "Hello, world!"})])
    # then
    (submit,) = smsc.submits
    assert smsc.binds == [("shop", 0)]
    assert submit.data_coding == 0 and submit.esm_class == 0 and submit.short_message == b"Hello, world!"
    assert (submit.source_addr, submit.source_addr_ton, submit.source_addr_npi) == ("SHOP", 5, 0)
    assert (submit.destination_addr, submit.dest_addr_ton, submit.dest_addr_npi) == ("79031234567", 1, 1)
    assert submit.registered_delivery == 1
    assert result.outcome == Outcome.ACCEPTED and result.provider_message_id == submit.message_id
    assert result.segments == 1 and result.part_ids == []


def test_numeric_sender_gets_ton_1_npi_1_unless_configured(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        automatic = make_adapter("smpp", config(smsc), sender="+79001112233")
        configured = make_adapter("smpp", config(smsc, source_ton=0, source_npi=0), sender="79001112233")
        # when
        automatic.send([outgoing("sms", "79031234567", {"text": "a"})])
        configured.send([outgoing("sms", "79031234567", {"text": "b"})])
    # then
    first, second = smsc.submits
    assert (first.source_addr, first.source_addr_ton, first.source_addr_npi) == ("79001112233", 1, 1)
    assert (second.source_addr_ton, second.source_addr_npi) == (0, 0)


def test_cyrillic_text_goes_as_three_ucs2_parts_with_one_reference(make_adapter, outgoing):
    # given
    assert 140 <= len(CYRILLIC) <= 160
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        # when
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": CYRILLIC})])
    # then: 05 00 03 <ref> <total> <seq> in front of each part, one reference for all
    parts = smsc.submits
    assert len(parts) == 3
    assert all(p.data_coding == 0x08 and p.esm_class == 0x40 for p in parts)
    assert {p.udh[:4] for p in parts} == {bytes([5, 0, 3, parts[0].udh[3]])}
    assert [(p.udh[4], p.udh[5]) for p in parts] == [(3, 1), (3, 2), (3, 3)]
    assert all(len(p.short_message) <= 140 for p in parts)
    assert "".join(p.text for p in parts) == CYRILLIC
    # and the result carries every part's id
    assert result.outcome == Outcome.ACCEPTED and result.segments == 3
    assert [result.provider_message_id, *result.part_ids] == [p.message_id for p in parts]
    assert adapter.segments({"text": CYRILLIC}) == 3


def test_sixteen_bit_reference_uses_its_header_and_shorter_parts(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc, ref16=True), sender="SHOP")
        # when
        adapter.send([outgoing("sms", "+79031234567", {"text": CYRILLIC})])
    # then: 06 08 04 <ref hi> <ref lo> <total> <seq>, 66 characters a part
    parts = smsc.submits
    assert [p.udh[:3] for p in parts] == [bytes([6, 8, 4])] * 3
    assert len({p.udh[3:5] for p in parts}) == 1
    assert [len(p.text) for p in parts] == [66, 66, len(CYRILLIC) - 132]
    assert "".join(p.text for p in parts) == CYRILLIC


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("Ф" * 66 + "😀" + "Ф" * 70, 134),  # the pair would straddle the 67-unit boundary
        ("[" * 100, 153),  # 200 septets of escape pairs: a cut after 153 would split one
        ("Price: 10€ " * 20, 153),
    ],
)
def test_long_texts_are_never_cut_inside_a_surrogate_or_escape_pair(text, limit):
    # given / when
    encoded = encode_text(text, ref=1)
    # then: every part decodes on its own, fits, and the parts add up to the text
    assert len(encoded.payloads) > 1
    decoded = []
    for payload in encoded.payloads:
        body = payload[6:]
        assert len(body) <= limit
        decoded.append(body.decode("utf-16-be") if encoded.data_coding == 0x08 else gsm7_decode(body))
    assert "".join(decoded) == text


def test_receipts_come_back_through_poll_as_delivered_and_undeliverable(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        smsc.receipt_for("79000000000", "UNDELIV", err=1)
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        ok, bad = adapter.send(
            [
                outgoing("sms", "+79031234567", {"text": "Your code is 1234"}),
                outgoing("sms", "+79000000000", {"text": "Your code is 5678"}),
            ]
        )
        # when
        updates = adapter.poll([ok.provider_message_id, bad.provider_message_id])
        # then: every deliver_sm was answered with status 0
        assert smsc.wait(lambda: smsc.responses.count(("deliver_sm_resp", 0)) == 2)
        assert adapter.poll([]) == []  # handed out once
    by_id = {u.provider_message_id: u for u in updates}
    assert by_id[ok.provider_message_id].status == Lifecycle.DELIVERED
    assert by_id[bad.provider_message_id].status == Lifecycle.UNDELIVERABLE
    assert "err:001" in by_id[bad.provider_message_id].reason


def test_receipts_of_every_part_match_their_ids(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": CYRILLIC})])
        # when
        updates = adapter.poll([result.provider_message_id, *result.part_ids])
    # then
    assert sorted(u.provider_message_id for u in updates) == sorted(
        [result.provider_message_id, *result.part_ids]
    )
    assert {u.status for u in updates} == {Lifecycle.DELIVERED}


def test_receipt_ids_written_differently_are_matched_to_the_submitted_id(make_adapter, outgoing):
    # given: submit_sm_resp ids in hexadecimal with leading zeros, receipts in decimal and as text only
    with Smsc(
        message_id=lambda n: f"{0x1A2B3C00 + n:012X}",
        receipt_id=lambda mid: str(int(mid, 16)),
        receipt_tlvs=False,
        stat="EXPIRED",
    ) as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        # when
        (update,) = adapter.poll([result.provider_message_id])
    # then: reported under the id as submit_sm_resp wrote it
    assert result.provider_message_id == "00001A2B3C01"
    assert update.provider_message_id == "00001A2B3C01" and update.status == Lifecycle.EXPIRED


def test_a_fresh_adapter_binds_to_collect_receipts_for_the_ids_it_is_asked_about(make_adapter, outgoing):
    # given: the message went out through another adapter instance (before a restart)
    with Smsc(
        message_id=lambda n: f"{n:08x}", receipt_id=lambda mid: str(int(mid, 16)), receipts=False
    ) as smsc:
        sender = make_adapter("smpp", config(smsc), sender="SHOP")
        (result,) = sender.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        sender.close()
        smsc.deliver_on_bind(smsc.submits[0])
        poller = make_adapter("smpp", config(smsc), sender="SHOP")
        assert poller.poll([]) == [] and len(smsc.binds) == 1  # nothing asked: no bind
        # when
        updates = poller.poll([result.provider_message_id])
    # then
    assert len(smsc.binds) == 2
    assert [(u.provider_message_id, u.status) for u in updates] == [
        (result.provider_message_id, Lifecycle.DELIVERED)
    ]


def test_receipt_with_tlvs_the_library_does_not_list_is_still_read_and_answered(make_adapter, outgoing):
    # given: a receipt with delivery_failure_reason (0x0425) and a vendor TLV (0x1401)
    with Smsc(receipts=False) as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        raw = smsc.receipt(smsc.submits[0]).generate()
        raw += struct.pack(">HHB", 0x0425, 1, 2) + struct.pack(">HH", 0x1401, 3) + b"abc"
        smsc.send_raw(struct.pack(">L", len(raw)) + raw[4:])
        # when
        updates = adapter.poll([result.provider_message_id])
        # then
        assert smsc.wait(lambda: ("deliver_sm_resp", 0) in smsc.responses)
    assert [(u.provider_message_id, u.status) for u in updates] == [
        (result.provider_message_id, Lifecycle.DELIVERED)
    ]


@pytest.mark.parametrize(
    ("status", "outcome", "retry_after", "suppress"),
    [
        (0x58, Outcome.TEMPORARY, 1.0, False),  # ESME_RTHROTTLED
        (0x14, Outcome.TEMPORARY, 5.0, False),  # ESME_RMSGQFUL
        (0x08, Outcome.TEMPORARY, None, False),  # ESME_RSYSERR
        (0x0B, Outcome.PERMANENT, None, True),  # ESME_RINVDSTADR
        (0x0A, Outcome.REJECTED, None, False),  # ESME_RINVSRCADR
    ],
)
def test_submit_sm_resp_status_decides_the_outcome(
    make_adapter, outgoing, status, outcome, retry_after, suppress
):
    # given
    with Smsc() as smsc:
        smsc.fail("79031234567", status)
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        # when
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    # then
    assert result.outcome == outcome and result.retry_after == retry_after
    assert result.suppress_address is suppress
    assert f"0x{status:02X}" in result.reason


def test_throttling_holds_back_the_rest_of_the_batch_and_passes(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        smsc.fail("79031234567", 0x58, times=1)
        adapter = make_adapter("smpp", config(smsc, window=1), sender="SHOP")
        # when
        throttled, held = adapter.send(
            [outgoing("sms", "+79031234567", {"text": "a"}), outgoing("sms", "+79037654321", {"text": "b"})]
        )
        (retried,) = adapter.send([outgoing("sms", "+79031234567", {"text": "a"})])
    # then
    assert throttled.outcome == Outcome.TEMPORARY and throttled.retry_after == 1.0
    assert held.outcome == Outcome.TEMPORARY and held.retry_after == 1.0 and "not sent" in held.reason
    assert [s.destination_addr for s in smsc.submits] == ["79031234567", "79031234567"]
    assert retried.outcome == Outcome.ACCEPTED


def test_wrong_password_is_a_provider_error_and_no_hasty_rebind(make_adapter, outgoing):
    # given
    with Smsc(password="other") as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        # when
        with pytest.raises(ProviderError) as first:
            adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        with pytest.raises(ProviderError) as second:
            adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    # then
    assert "ESME_RINVPASWD" in str(first.value) and first.value.temporary and first.value.retry_after
    assert "ESME_RINVPASWD" in str(second.value)
    assert smsc.binds == [("shop", 0x0E)]  # the second send did not bind again
    assert smsc.submits == []


def test_unreachable_smsc_is_a_provider_error(make_adapter, outgoing):
    # given: a port nobody listens on
    with Smsc() as smsc:
        port = smsc.port
    adapter = make_adapter(
        "smpp", {"host": "127.0.0.1", "port": port, "system_id": "shop", "password": "secret"}
    )
    # when / then
    with pytest.raises(ProviderError, match="cannot bind"):
        adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])


def test_bind_is_kept_across_sends(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        # when
        adapter.send([outgoing("sms", "+79031234567", {"text": "one"})])
        adapter.send([outgoing("sms", "+79031234567", {"text": "two"})])
    # then
    assert len(smsc.binds) == 1 and len(smsc.submits) == 2


def test_dropped_connection_between_sends_is_bound_again(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        (first,) = adapter.send([outgoing("sms", "+79031234567", {"text": "one"})])
        smsc.drop()
        # when
        (second,) = adapter.send([outgoing("sms", "+79031234567", {"text": "two"})])
    # then
    assert first.outcome == second.outcome == Outcome.ACCEPTED
    assert smsc.binds == [("shop", 0), ("shop", 0)]
    assert [s.short_message for s in smsc.submits] == [b"one", b"two"]


def test_connection_lost_mid_batch_reports_the_unanswered_part_and_sends_the_rest(make_adapter, outgoing):
    # given: the SMSC hangs up on the second submit_sm without answering it
    with Smsc() as smsc:
        smsc.hang_up_on = 2
        adapter = make_adapter("smpp", config(smsc, window=1), sender="SHOP")
        # when
        results = adapter.send([outgoing("sms", f"+7903123456{n}", {"text": f"m{n}"}) for n in range(3)])
    # then
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.UNKNOWN, Outcome.ACCEPTED]
    assert "connection lost" in results[1].reason
    assert len(smsc.binds) == 2


def test_idle_session_is_kept_alive_with_enquire_link_both_ways(make_adapter, outgoing):
    # given: a keep-alive interval of zero makes every call find the session idle
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc, enquire_link=0, poll_seconds=0.1), sender="SHOP")
        adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        # when
        adapter.poll([])
        smsc.ping()
        adapter.poll(["anything"])
        # then: we asked and were answered, the SMSC asked and was answered, on the one bind
        assert smsc.wait(lambda: ("enquire_link_resp", 0) in smsc.responses)
    assert smsc.received.count("enquire_link") >= 2
    assert len(smsc.binds) == 1


def test_close_unbinds(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        # when
        adapter.close()
    # then
    assert smsc.received[-1] == "unbind"


def test_validity_goes_as_relative_time(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc), sender="SHOP")
        # when
        adapter.send([outgoing("sms", "+79031234567", {"text": "hi"}, validity_seconds=90061)])
    # then: 1 day 1 hour 1 minute 1 second
    assert smsc.submits[0].validity_period == "000001010101000R"


def test_messages_that_cannot_go_are_answered_without_a_bind(make_adapter, outgoing):
    # given
    with Smsc() as smsc:
        adapter = make_adapter("smpp", config(smsc))
        # when
        empty, letters = adapter.send(
            [outgoing("sms", "+79031234567", {"text": "  "}), outgoing("sms", "not a number", {"text": "hi"})]
        )
    # then
    assert empty.outcome == Outcome.REJECTED
    assert letters.outcome == Outcome.PERMANENT and letters.suppress_address
    assert smsc.binds == []


def test_tls_session(make_adapter, outgoing):
    # given
    with Smsc(tls=tls_context("localhost")) as smsc:
        adapter = make_adapter(
            "smpp", config(smsc, host="localhost", tls=True, tls_verify=False), sender="SHOP"
        )
        strict = make_adapter("smpp", config(smsc, host="localhost", tls=True), sender="SHOP")
        # when
        (result,) = adapter.send([outgoing("sms", "+79031234567", {"text": "hi"})])
        # then: a self-signed certificate passes only without verification
        with pytest.raises(ProviderError, match="certificate"):
            strict.send([outgoing("sms", "+79031234567", {"text": "hi"})])
    assert result.outcome == Outcome.ACCEPTED
