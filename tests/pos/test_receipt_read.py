"""A till reads a receipt as it stands: after a confirmation whose answer it lost, or
before refunding; another partner's tills do not find it."""

from decimal import Decimal

import pytest

from tests.pos.conftest import activated_card, get, post

LINES = [
    {"sku": "COFFEE", "quantity": "2", "price": "500.00"},
    {"sku": "BREAD", "quantity": "1", "price": "50.00"},
]


@pytest.fixture
def card(world):
    return activated_card(world.online, phone="+79161230000")


def confirm(api, card):
    body = {
        "point_of_sale": "web",
        "external_id": "W-1",
        "card": card.number,
        "lines": LINES,
        "payments": [{"method": "online", "amount": "1050.00"}],
    }
    answer = post(api, "receipts/confirm", body)
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_a_confirmed_receipt_reads_as_its_confirmation_answered(world, seed_offers, api, card):
    # given a sale in the online store, paid online: 100 bonuses under seed 004's offer
    confirmed = confirm(api, card)
    assert confirmed["bonus_accrued"] == "100.00"
    # when the till reads it back
    read = get(api, "receipts", point_of_sale="web", external_id="W-1")
    # then it is the receipt the confirmation described, with no refunds yet
    assert read.status_code == 200, read.content
    body = read.json()
    same = ("id", "external_id", "point_of_sale", "state", "card", "member", "amount", "total", "lines")
    assert {k: body[k] for k in same} == {k: confirmed[k] for k in same}
    assert (body["state"], body["bonus_accrued"], body["refunds"]) == ("confirmed", "100.00", [])


def test_a_partly_refunded_receipt_lists_its_refund(world, seed_offers, api, card):
    confirm(api, card)
    # when the bread (50 of 1,050) is returned
    refund = post(
        api,
        "receipts/W-1/refund",
        {"point_of_sale": "web", "refund_id": "RF-1", "lines": [{"sku": "BREAD", "quantity": "1"}]},
    )
    assert refund.status_code == 201, refund.content
    # then the receipt reads partly refunded, the refund with what it took back
    body = get(api, "receipts", point_of_sale="web", external_id="W-1").json()
    assert body["state"] == "partly_refunded"
    [only] = body["refunds"]
    assert (only["refund_id"], only["amount"], only["bonus_restored"]) == ("RF-1", "50.00", "0.00")
    # 100 bonuses on 1,050: the returned 50 takes back 100 × 50 / 1,050, to the kopeck
    assert Decimal(only["bonus_clawed_back"]) == (Decimal("100") * 50 / 1050).quantize(Decimal("0.01"))
    assert only["refunded_at"]


def test_unknown_and_other_partners_receipts_are_not_found(world, seed_offers, api, other_api, card):
    confirm(api, card)
    missing = get(api, "receipts", point_of_sale="web", external_id="W-2")
    assert (missing.status_code, missing.json()["code"]) == (404, "receipt_not_found")
    foreign = get(other_api, "receipts", point_of_sale="web", external_id="W-1")
    assert (foreign.status_code, foreign.json()["code"]) == (404, "point_of_sale_not_found")


def test_a_read_without_the_receipt_id_names_the_field(world, api):
    answer = get(api, "receipts", point_of_sale="web")
    assert answer.status_code == 400
    assert "external_id" in answer.json()["errors"]
