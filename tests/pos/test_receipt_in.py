"""The till's calculate and confirm bodies are read by a fast path for plainly valid input;
on every input, valid or not, the outcome must be the serializer's own."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from loyalty.models import PaymentMethod
from pos.serializers import CalculateIn, ConfirmIn, validated

pytestmark = pytest.mark.django_db


def outcome(read, data):
    try:
        return "ok", dict(read(data))
    except serializers.ValidationError as exc:
        return "error", exc.detail


def through_the_serializer(serializer_class):
    def read(data):
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    return read


texts = st.one_of(
    st.sampled_from(
        ["hyper-1", " hyper-1 ", "R-1", "7800000000017", "", "  ", "a b", "a\x00b", "a\ud800", "x" * 70]
    ),
    st.text(max_size=6),
    st.sampled_from([None, 7, 1.5, True, [], {}]),
)
codes = st.one_of(
    st.sampled_from(["card", "cash", " online ", "bitcoin", "", "ca rd", None, 3]), st.text(max_size=3)
)
amounts = st.one_of(
    st.sampled_from(
        ["0", "1.00", " 2.5 ", "-1", "1.005", "1e3", "NaN", "", "999999999999.99", "1" * 20, None, 5, 1.5]
    ),
    st.decimals(min_value=-10, max_value=10**6, places=2).map(str),
)
line = st.fixed_dictionaries(
    {"sku": texts, "quantity": st.sampled_from(["1", "2.5", "0", "-1", "abc", 3]), "price": amounts},
    optional={"name": texts},
)
lines = st.one_of(
    st.lists(
        st.fixed_dictionaries({"sku": st.just("SKU"), "quantity": st.just("1"), "price": amounts}), max_size=3
    ),
    st.lists(line, max_size=3),
    st.sampled_from([None, "x", [], [{"sku": "A", "quantity": "99999", "price": "9999999.99"}] * 2000]),
)
payment = st.one_of(
    st.fixed_dictionaries({"method": codes, "amount": amounts}), st.sampled_from([None, "card", {}])
)


def mostly(valid, other):
    """The valid value half the time, so that a body has one or two bad fields at once."""
    return st.one_of(st.just(valid), other)


body = st.fixed_dictionaries(
    {
        "point_of_sale": mostly("hyper-1", texts),
        "lines": mostly([{"sku": "SKU", "quantity": "1", "price": "10"}], lines),
    },
    optional={
        "card": mostly("7800000000017", texts),
        "phone": mostly("+7 900 000-00-00", texts),
        "external_id": mostly("R-1", texts),
        "payments": st.one_of(
            st.lists(st.one_of(codes, payment), max_size=3),
            st.sampled_from([None, "card", {}, ["card"] * 21, [{"method": "card", "amount": "1"}] * 21]),
        ),
        "bonus_payment": mostly("0", amounts),
        "unknown": st.integers(),
    },
)
bodies = st.one_of(body, st.sampled_from([None, [], "text", 5]))


@pytest.fixture
def methods(db):
    for code in ("card", "cash", "online"):
        PaymentMethod.objects.get_or_create(code=code, defaults={"name": code, "kind": "other"})


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=bodies)
def test_the_fast_read_agrees_with_the_serializer(methods, data):
    for serializer_class in (CalculateIn, ConfirmIn):
        fast = outcome(lambda d, cls=serializer_class: validated(cls, d), data)
        assert fast == outcome(through_the_serializer(serializer_class), data)


def test_a_plain_valid_body_takes_the_fast_path(methods):
    data = {
        "point_of_sale": " hyper-1 ",
        "card": "7800000000017",
        "external_id": "R-1",
        "lines": [{"sku": "COFFEE", "quantity": "2", "price": "500"}],
        "payments": [{"method": "card", "amount": "1000"}],
        "bonus_payment": "10",
    }
    read = ConfirmIn.fast(data)
    assert read is not None and read == dict(through_the_serializer(ConfirmIn)(data))
    assert read["point_of_sale"] == "hyper-1" and str(read["payments"][0]["amount"]) == "1000.00"
    assert CalculateIn.fast({**data, "payments": ["card"]}) is not None
