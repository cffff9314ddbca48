"""The calculate endpoint writes its answer by hand for speed; it must be exactly what the
schema's serializer would write."""

import json

import pytest

from pos import serializers as s
from pos.views import calculation_json
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
