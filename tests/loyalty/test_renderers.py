"""The APIs' fast JSON renderer writes the same document as DRF's own."""

import datetime as dt
import json
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils.translation import gettext_lazy
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer

from loyalty.api.renderers import FastJSONRenderer

# Text without U+2028/U+2029 (DRF escapes those two for embedding in scripts; both
# documents mean the same) and numbers without floats (written in other digits).
_TEXT = st.text(st.characters(exclude_characters="\u2028\u2029", exclude_categories=("Cs",)))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5),
    max_leaves=30,
)


def test_the_answer_is_byte_for_byte_drfs_for_what_the_apis_send():
    data = {
        "amount": Decimal("351.20"),
        "at": dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC),
        "local": dt.datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=ZoneInfo("Europe/Moscow")),
        "day": dt.date(2026, 3, 1),
        "label": gettext_lazy("Invalid API key."),
        "error": ErrorDetail("Это поле обязательно.", code="required"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "lines": [{"position": 1, "sku": "Кофе", "total": "99.90"}],
        7: "a key that is not a string",
        "nothing": None,
    }
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)
    assert json.loads(FastJSONRenderer().render(data))["at"] == "2026-03-01T09:30:00Z"


@given(_JSON)
def test_any_json_document_is_written_as_drf_writes_it(data):
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_no_data_is_an_empty_body_and_an_indent_asked_for_is_kept():
    assert FastJSONRenderer().render(None) == b""
    indented = FastJSONRenderer().render({"a": [1]}, "application/json; indent=2", {})
    assert indented == JSONRenderer().render({"a": [1]}, "application/json; indent=2", {})
    assert b"\n  " in indented
