"""Bad input is a problem naming the field (400), unknown things are 404, state conflicts
are 409, too much bonus payment is 402; nothing is written by a refused request."""

import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import BonusOperation, MemberEvent, Receipt
from loyalty.services import ledger
from loyalty.services.cards import card_block, card_issue
from loyalty.services.members import member_block, member_create
from tests.pos.conftest import get, post

LINES = [{"sku": "COFFEE", "quantity": "2", "price": "500.00"}]


@pytest.fixture
def card(world):
    member = member_create(first_name="Анна", phone="+79161234567")
    card = card_issue(member=member, point_of_sale=world.hyper)
    card.state, card.activated_at = "activated", timezone.now()
    card.save()
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=member),
        amount=Decimal("100"),
        source=ledger.Source(type="offer", label="Welcome"),
    )
    return card


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    return body


def confirm(api, card=None, **fields):
    body = {"point_of_sale": "hyper-1", "external_id": "R-1", "lines": LINES, **fields}
    if card is not None:
        body["card"] = card.number
    return post(api, "receipts/confirm", body)


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([{"sku": "COFFEE", "quantity": "-1", "price": "1"}], "lines[0].quantity"),
        ([{"sku": "COFFEE", "quantity": "0", "price": "1"}], "lines[0].quantity"),
        ([{"sku": "COFFEE", "quantity": "1", "price": "abc"}], "lines[0].price"),
        ([{"sku": "COFFEE", "quantity": "1", "price": "-5"}], "lines[0].price"),
        ([{"sku": "A", "quantity": "1", "price": "1"}, {"quantity": "1", "price": "1"}], "lines[1].sku"),
        ([{"sku": "COFFEE", "quantity": "1.0001", "price": "1"}], "lines[0].quantity"),
        ([{"sku": "COFFEE", "quantity": "99999", "price": "9999999.99"}] * 2, "lines"),
        ([], "lines"),
        ("COFFEE", "lines"),
    ],
)
def test_bad_lines_are_400_naming_the_field(world, api, lines, field):
    for path in ("receipts/calculate", "receipts/confirm"):
        body = problem(
            post(api, path, {"point_of_sale": "hyper-1", "external_id": "R-1", "lines": lines}),
            400,
            "invalid",
        )
        assert field in body["errors"], body
    assert not Receipt.objects.exists()


def test_missing_fields_and_unknown_payment_methods_are_named(world, api):
    body = problem(post(api, "receipts/confirm", {}), 400, "invalid")
    assert {"point_of_sale", "external_id", "lines"} <= set(body["errors"])
    body = problem(confirm(api, payments=[{"method": "barter", "amount": "1"}]), 400, "invalid")
    assert set(body["errors"]) == {"payments[0].method"}
    body = problem(
        post(
            api,
            "receipts/calculate",
            {"point_of_sale": "hyper-1", "lines": LINES, "payments": ["cash", "barter"]},
        ),
        400,
        "invalid",
    )
    assert set(body["errors"]) == {"payments[1]"}


def test_malformed_json_is_400(world, api):
    response = api.post(
        "/api/v1/pos/receipts/calculate", data="{", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )
    problem(response, 400, "parse_error")


def test_unknown_card_phone_receipt_are_404(world, api, card):
    problem(
        post(api, "receipts/calculate", {"point_of_sale": "hyper-1", "card": "0000", "lines": LINES}),
        404,
        "card_not_found",
    )
    problem(get(api, "balance", phone="+79990000000"), 404, "member_not_found")
    problem(
        post(api, "receipts/NOPE/refund", {"point_of_sale": "hyper-1", "refund_id": "RF"}),
        404,
        "receipt_not_found",
    )
    problem(post(api, "receipts/NOPE/cancel", {"point_of_sale": "hyper-1"}), 404, "receipt_not_found")
    problem(post(api, "cards/0000/activate"), 404, "card_not_found")


def test_a_malformed_phone_is_400_on_the_phone(world, api):
    body = problem(get(api, "members/lookup", phone="12"), 400, "invalid")
    assert set(body["errors"]) == {"phone"}
    assert set(problem(get(api, "balance"), 400, "invalid")["errors"]) == {"card"}


def test_paying_more_bonuses_than_allowed_is_402_and_writes_nothing(world, api, card):
    body = problem(confirm(api, card, bonus_payment="150.00"), 402, "insufficient_bonuses")
    assert "100" in body["detail"]
    assert not Receipt.objects.exists() and not BonusOperation.objects.filter(kind="spend").exists()
    assert confirm(api, card, bonus_payment="100.00").json()["bonus_paid"] == "100.00"


def test_paying_with_bonuses_needs_a_member(world, api):
    body = problem(confirm(api, bonus_payment="10.00"), 400, "invalid")
    assert set(body["errors"]) == {"bonus_payment"}


def test_a_receipt_id_confirmed_once_is_409_for_another_request(world, api, card):
    assert confirm(api, card).status_code == 201
    problem(confirm(api, card), 409, "receipt_exists")
    assert Receipt.objects.count() == 1


@pytest.mark.parametrize("blocked", ["card", "member"])
def test_a_repeated_sale_after_a_block_is_told_the_sale_went_through(world, api, card, blocked):
    """The till lost the first answer; by the time it asks again (another key) the card or
    the member is blocked. It learns that the receipt was confirmed, not that it may not
    buy; a new receipt with that card is refused as blocked."""
    assert confirm(api, card).status_code == 201
    if blocked == "card":
        card_block(card=card, reason="lost")
        refused = "card_state"
    else:
        member_block(member=card.member, reason="fraud")
        refused = "member_blocked"
    body = problem(confirm(api, card), 409, "receipt_exists")
    assert body["detail"] == "Receipt R-1 is already confirmed."
    assert problem(confirm(api, card, external_id="R-2"), 409, refused)["code"] == refused
    assert Receipt.objects.count() == 1


def test_a_confirmed_receipt_cannot_be_cancelled(world, api, card):
    assert confirm(api, card).status_code == 201
    problem(post(api, "receipts/R-1/cancel", {"point_of_sale": "hyper-1"}), 409, "receipt_state")


def test_refund_errors(world, api, card):
    assert confirm(api, card).status_code == 201
    refund = {"point_of_sale": "hyper-1", "refund_id": "RF-1"}
    body = problem(
        post(api, "receipts/R-1/refund", {**refund, "lines": [{"sku": "COFFEE", "quantity": "3"}]}),
        400,
        "invalid",
    )
    assert set(body["errors"]) == {"lines[0].quantity"}
    body = problem(
        post(api, "receipts/R-1/refund", {**refund, "lines": [{"sku": "TEA", "quantity": "1"}]}),
        400,
        "invalid",
    )
    assert set(body["errors"]) == {"lines[0].sku"}
    whole = post(api, "receipts/R-1/refund", refund)
    assert whole.status_code == 201 and whole.json()["receipt_state"] == "refunded"
    again = post(api, "receipts/R-1/refund", refund)  # the same refund id is the same refund
    assert again.status_code == 200 and again.json()["id"] == whole.json()["id"]
    problem(post(api, "receipts/R-1/refund", {**refund, "refund_id": "RF-2"}), 409, "receipt_state")
    assert (
        post(
            api, "receipts/confirm", {"point_of_sale": "hyper-1", "external_id": "R-2", "lines": LINES}
        ).status_code
        == 201
    )
    problem(post(api, "receipts/R-2/refund", refund), 409, "refund_id_used")


def test_card_state_conflicts_are_409(world, api, card):
    unbound = card_issue(point_of_sale=world.hyper)
    problem(post(api, f"cards/{unbound.number}/activate"), 409, "card_state")
    card_block(card=card, reason="lost")
    problem(
        post(api, "receipts/calculate", {"point_of_sale": "hyper-1", "card": card.number, "lines": LINES}),
        409,
        "card_state",
    )
    problem(post(api, "cards", {"point_of_sale": "hyper-1", "number": card.number}), 409, "card_state")


def test_a_card_number_of_another_format_is_refused(world, api):
    body = problem(post(api, "cards", {"point_of_sale": "hyper-1", "number": "12345"}), 400, "invalid")
    assert set(body["errors"]) == {"number"}


def test_events_accept_only_non_purchase_types_and_plain_details(world, api, card):
    body = problem(
        post(api, "events", {"event_type": "purchase_completed", "card": card.number}), 400, "invalid"
    )
    assert set(body["errors"]) == {"event_type"}
    body = problem(
        post(api, "events", {"event_type": "app_installed", "card": card.number, "payload": {"x": "a\x00b"}}),
        400,
        "invalid",
    )
    assert set(body["errors"]) == {"payload"}
    for bad in ({"x": "a\ud800"}, {"a\udfff": 1}):  # lone surrogates: no database stores them
        raw = json.dumps({"event_type": "app_installed", "card": card.number, "payload": bad})  # as \\ud800
        response = api.post(
            "/api/v1/pos/events", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
        )
        assert set(problem(response, 400, "invalid")["errors"]) == {"payload"}
    assert set(problem(post(api, "events", {"event_type": "app_installed"}), 400, "invalid")["errors"]) == {
        "card"
    }
    made = post(
        api, "events", {"event_type": "app_installed", "phone": "8 916 123 45 67", "payload": {"os": "ios"}}
    )
    assert made.status_code == 201
    assert MemberEvent.objects.get(pk=made.json()["id"]).payload == {"os": "ios"}


@pytest.mark.parametrize("when", ["1135-08-02T05:13:40Z", "2999-01-01T00:00:00Z"])
def test_an_event_time_far_from_now_is_refused(world, api, card, when):
    response = post(api, "events", {"event_type": "app_installed", "card": card.number, "occurred_at": when})
    assert set(problem(response, 400, "invalid")["errors"]) == {"occurred_at"}


def test_registration_errors_name_the_field(world, api, card):
    # a phone of another member is a conflict with what exists, naming the field
    body = problem(post(api, "members", {"phone": "+79161234567"}), 409, "taken")
    assert body["errors"] == {"phone": ["This phone number belongs to another member."]}
    # with another field wrong as well, the request is invalid first
    body = problem(post(api, "members", {"phone": "+79161234567", "email": "not-an-email"}), 400, "invalid")
    assert set(body["errors"]) == {"phone", "email"}
    body = problem(post(api, "members", {"phone": "12", "consents": {"pigeon": True}}), 400, "invalid")
    assert set(body["errors"]) == {"consents"}
    problem(post(api, "members", {"phone": "+79161112233", "card": card.number}), 409, "card_state")


def test_a_nul_in_a_path_is_not_found_rather_than_an_error(world, api):
    problem(post(api, "receipts/a%00b/cancel", {"point_of_sale": "hyper-1"}), 404, "receipt_not_found")
    problem(post(api, "cards/a%00b/activate"), 404, "card_not_found")


@pytest.mark.parametrize("event_type", ["status_changed", "registration_completed", "bonus_adjusted"])
def test_events_the_program_records_itself_cannot_be_reported(world, api, card, event_type):
    body = problem(post(api, "events", {"event_type": event_type, "card": card.number}), 400, "invalid")
    assert set(body["errors"]) == {"event_type"}


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", " application/json "])
def test_the_accept_headers_tills_send_get_compact_json(world, api, card, accept):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = api.get("/api/v1/pos/balance", {"card": card.number}, **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content.startswith(b'{"') and b"\n" not in response.content


def test_other_accept_headers_are_negotiated_as_before(world, api, card):
    params = {"card": card.number}
    indented = api.get("/api/v1/pos/balance", params, HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 200 and indented.content.startswith(b'{\n  "')
    listed = api.get("/api/v1/pos/balance", params, HTTP_ACCEPT="text/html;q=0.9, application/json")
    assert listed.status_code == 200 and listed.json()["member"] == card.member_id
    refused = api.get("/api/v1/pos/balance", params, HTTP_ACCEPT="text/html")
    assert refused.status_code == 406
    assert api.get("/api/v1/pos/balance", {**params, "format": "xml"}).status_code == 404
