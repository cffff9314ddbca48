"""The OpenAPI description holds: schemathesis generates requests for every point-of-sale
operation from the schema, sends them to a live server with a valid API key, and checks
that no answer is a server error and every answer (status, content type, headers, body)
is one the schema declares; requests the schema forbids are refused, never a server
error. Half of the generated requests name a real point of sale, card and receipt, so
the successful paths are checked too."""

import hashlib
import uuid
from decimal import Decimal

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loyalty.services import ledger
from loyalty.services.cards import card_activate, card_issue
from loyalty.services.members import member_create
from offers.context import LineIn
from offers.services import purchase_confirm

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
EXAMPLES_PER_OPERATION = 25
NEGATIVE_EXAMPLES_PER_OPERATION = 10


@pytest.fixture
def known(world, seed_offers):
    """What a realistic request names: stores, an activated card with bonuses, a receipt."""
    member = member_create(first_name="Анна", phone="+79161234567")
    card = card_activate(card=card_issue(member=member, point_of_sale=world.online))
    unbound = card_issue(point_of_sale=world.hyper)
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=member),
        amount=Decimal("500"),
        source=ledger.Source(type="offer", label="Welcome"),
    )
    purchase_confirm(
        point_of_sale=world.hyper,
        external_id="SEED-1",
        lines=[LineIn(sku="COFFEE", quantity=Decimal(3), price=Decimal(500))],
        card=card,
    )
    return {"points_of_sale": ["hyper-1", "web"], "cards": [card.number, unbound.number], "receipt": "SEED-1"}


def _pick(options: list, seed: str):
    return options[int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(options)]


def realistic(case, known: dict) -> None:
    """Point the generated request at things that exist, keeping its other values."""
    seed = repr((case.path_parameters, case.query, case.body))
    if isinstance(case.body, dict):
        body = case.body
        if "point_of_sale" in body:
            body["point_of_sale"] = _pick(known["points_of_sale"], seed)
        if "card" in body or case.path.endswith("/events"):
            body["card"] = _pick(known["cards"][:1], seed)
        body.pop("phone", None)
        body.pop("member", None)
        if isinstance(body.get("lines"), list) and "refund_id" not in body:
            for line in body["lines"]:
                if isinstance(line, dict):
                    line.update(quantity="1", price="100.00")
        if isinstance(body.get("payments"), list):
            body["payments"] = [
                {"method": "online", "amount": "1.00"} if isinstance(p, dict) else "online"
                for p in body["payments"]
            ]
        if "bonus_payment" in body:
            body["bonus_payment"] = "0.00"
        if "refund_id" in body:
            body["refund_id"] = f"RF-{uuid.uuid4().hex[:8]}"
            body.pop("lines", None)
        if case.path.endswith("/members"):
            body["phone"] = f"+7916{int(hashlib.sha256(seed.encode()).hexdigest(), 16) % 10**7:07d}"
            body.pop("email", None)
            body.pop("external_id", None)
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if case.query and "card" in case.query:
        case.query["card"] = _pick(known["cards"], seed)
        case.query.pop("phone", None)
    if case.query and "external_id" in case.query:  # a receipt read: the known receipt
        case.query.update(point_of_sale="hyper-1", external_id=known["receipt"])
    if case.path_parameters:
        if "external_id" in case.path_parameters:
            case.path_parameters["external_id"] = known["receipt"]
        if "number" in case.path_parameters:
            case.path_parameters["number"] = _pick(known["cards"], seed)
    if case.path.endswith("/activate") and isinstance(case.body, dict):
        case.body.pop("point_of_sale", None)


@pytest.fixture
def pos_schema(live_server):
    raw = httpx.get(f"{live_server.url}/api/schema/", params={"format": "json"}).json()
    raw["paths"] = {path: ops for path, ops in raw["paths"].items() if path.startswith("/api/v1/pos/")}
    schema = schemathesis.openapi.from_dict(raw)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13
    return operations


def _exercise(operation, *, examples: int, mode, send) -> None:
    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case, real):
        send(case, real)

    run()


def test_the_pos_api_answers_as_its_schema_says(live_server, key, known, pos_schema):
    headers = {"Authorization": f"Api-Key {key.token}"}

    def send(case, real):
        if real:
            realistic(case, known)
        case.call_and_validate(base_url=live_server.url, headers=headers, checks=CHECKS)

    for operation in pos_schema:
        _exercise(operation, examples=EXAMPLES_PER_OPERATION, mode=GenerationMode.POSITIVE, send=send)


def test_input_the_schema_forbids_is_refused_never_a_server_error(live_server, key, known, pos_schema):
    headers = {"Authorization": f"Api-Key {key.token}"}

    def send(case, real):
        if real:
            realistic(case, known)
        case.call_and_validate(base_url=live_server.url, headers=headers, checks=[not_a_server_error])

    for operation in pos_schema:
        _exercise(
            operation, examples=NEGATIVE_EXAMPLES_PER_OPERATION, mode=GenerationMode.NEGATIVE, send=send
        )
