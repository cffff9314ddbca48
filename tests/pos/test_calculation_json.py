"""The calculate and confirm endpoints write their answers by hand for speed; they must
be exactly what the schema's serializers would write."""

import datetime as dt
import json
import zoneinfo
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.services.cards import card_issue
from loyalty.services.members import member_create
from pos import serializers as s
from pos.views import calculation_json, confirmation_json
from tests.pos.conftest import post

pytestmark = pytest.mark.django_db


def test_the_hand_written_answer_equals_the_serializers(api, world, seed_offers):
    # given a hypermarket receipt with a discount, a cheque-less offer list and odd quantities
    response = post(
        api,
        "receipts/calculate",
        {
            "point_of_sale": "hyper-1",
            "lines": [
                {"sku": "COFFEE", "quantity": "1.5", "price": "333.33"},
                {"sku": "BREAD", "quantity": "2", "price": "49.99"},
            ],
            "payments": ["card"],
        },
    )
    assert response.status_code == 200
    body = response.json()
    # when the same data goes through the serializer
    data = json.loads(json.dumps(body))
    # then every field matches, decimals included
    assert body == json.loads(json.dumps(s.CalculationOut(data).data))
    assert body["lines"][0]["quantity"] == "1.500" and body["lines"][0]["amount"] == "500.00"
    assert calculation_json(data) == body


def test_the_hand_written_confirmation_equals_the_serializers(api, world, seed_offers):
    member = member_create(first_name="Анна", phone="+79161234567")
    card = card_issue(member=member, point_of_sale=world.hyper)
    response = post(
        api,
        "receipts/confirm",
        {
            "point_of_sale": "hyper-1",
            "card": card.number,
            "external_id": "R-json",
            "lines": [
                {"sku": "COFFEE", "quantity": "1.5", "price": "333.33"},
                {"sku": "BREAD", "quantity": "2", "price": "49.99"},
            ],
            "payments": [{"method": "card", "amount": "500"}],
        },
        idempotency_key="k-json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["lines"][0]["quantity"] == "1.500" and body["offers"]
    data = json.loads(json.dumps(body))
    assert body == json.loads(json.dumps(s.ConfirmOut(data).data))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Moscow", "Asia/Vladivostok"])
@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 7, 14, 23, 59, 59, 999999, tzinfo=zoneinfo.ZoneInfo("Europe/Moscow")),
    ],
)
def test_confirmation_times_and_amounts_are_written_as_the_serializer_writes_them(zone, at):
    data = {
        "id": 7,
        "external_id": "R-7",
        "point_of_sale": "hyper-1",
        "state": "confirmed",
        "purchased_at": at,
        "confirmed_at": at + dt.timedelta(seconds=1),
        "card": None,
        "member": 3,
        "amount": Decimal("1000"),
        "discount": Decimal("99.995"),
        "total": Decimal("900.005"),
        "bonus_paid": Decimal("0"),
        "bonus_accrued": Decimal("12.5"),
        "lines": [
            {
                "position": 1,
                "sku": "A",
                "name": "Кофе",
                "quantity": Decimal("1.2345"),
                "price": Decimal("810.37"),
                "amount": Decimal("1000.40"),
                "discount": Decimal("0.005"),
                "total": Decimal("1000.395"),
            }
        ],
        "bonuses": [{"currency": "RUB", "amount": Decimal("12.5")}],
        "balance": Decimal("312.504"),
        "cheque_messages": ["Скидка 100 ₽"],
        "cashier_messages": [],
        "offers": [  # as pos.views._offers writes them
            {
                "id": 1,
                "name": "Bonus",
                "effects": [
                    {
                        "action": "bonus",
                        "amount": "12.50",
                        "currency": "RUB",
                        "lines": [0],
                        "text": "",
                    }
                ],
            }
        ],
    }
    with timezone.override(zone):
        assert confirmation_json(data) == json.loads(json.dumps(s.ConfirmOut(data).data))
        assert confirmation_json({**data, "confirmed_at": None})["confirmed_at"] is None
