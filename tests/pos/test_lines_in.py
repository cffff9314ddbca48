"""The till's lines are read by a fast path for plainly valid input; it must agree with
the serializer's own field-by-field validation on every input, valid or not."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from pos.serializers import MAX_LINES, LineIn, LinesIn


class PlainLineIn(LineIn):
    class Meta:
        list_serializer_class = serializers.ListSerializer


def outcome(field, data):
    try:
        return "ok", field.run_validation(data)
    except serializers.ValidationError as exc:
        return "error", exc.detail


numbers = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
    st.decimals(min_value=-5, max_value=10**7, places=3).map(str),
    st.integers(-10, 10**10),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " 1.5 ", "1e3", "1E-3", "0.0001", "-0", "12.345", "abc", None, True, [], {}]),
)
texts = st.one_of(
    st.text(max_size=70),
    st.text(st.characters(categories=["Cs", "Lu", "Zs"]), max_size=5),  # lone surrogates
    st.sampled_from(["", "  ", "a\x00b", "x" * 300, "a\ud800", 7, None, True]),
)
line = st.fixed_dictionaries(
    {"sku": texts, "quantity": numbers, "price": numbers},
    optional={"name": texts, "extra": st.integers()},
)
lines = st.one_of(
    st.lists(line, max_size=4),
    st.lists(st.one_of(line, st.integers(), st.text()), max_size=3),
    st.just([{"sku": "a", "quantity": "1", "price": "1"}] * (MAX_LINES + 1)),
    st.text(max_size=5),
)


@settings(max_examples=1500, deadline=None)
@given(lines)
def test_fast_lines_agree_with_the_serializer(data):
    fast = LineIn(many=True, allow_empty=False, max_length=MAX_LINES)
    plain = PlainLineIn(many=True, allow_empty=False, max_length=MAX_LINES)
    assert isinstance(fast, LinesIn) and not isinstance(plain, LinesIn)
    assert outcome(fast, data) == outcome(plain, data)


def test_plain_valid_lines_take_the_fast_path():
    field = LineIn(many=True, allow_empty=False, max_length=MAX_LINES)
    lines = [{"sku": " SKU-1 ", "quantity": "2", "price": "10.5", "name": "Milk"}]
    assert field._fast(lines) == field.run_validation(lines)
    assert str(field._fast(lines)[0]["quantity"]) == "2.000" and field._fast(lines)[0]["sku"] == "SKU-1"


@pytest.mark.django_db
def test_a_lone_surrogate_in_a_line_is_a_field_error_not_a_crash(api, world):
    # JSON may carry "\ud800", which decodes to a character no database can store
    response = api.post(
        "/api/v1/pos/receipts/calculate",
        '{"point_of_sale": "hyper-1", "lines": [{"sku": "A\\ud800", "quantity": "1", "price": "10"}]}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "lines" in json.dumps(response.json())
    # and on a change, whose body is fingerprinted for its idempotency key first
    response = api.post(
        "/api/v1/pos/receipts/confirm",
        '{"point_of_sale": "hyper-1", "external_id": "R-1", '
        '"lines": [{"sku": "A", "name": "\\udfff", "quantity": "1", "price": "10"}]}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert response.status_code == 400
    assert "lines" in json.dumps(response.json())
