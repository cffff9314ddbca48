"""Serializer fields shared by the project's APIs (back office, points of sale, member
app)."""

import json
import math

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

#: The largest id a database column holds (a signed 64-bit integer): a larger one in a
#: request is refused by its field, not passed to the database.
MAX_ID = 2**63 - 1


class UnknownKeysRefused:
    """A serializer mixin: a key the serializer does not know is an error on that key,
    not silently dropped (a misspelt channel would otherwise leave a consent unchanged
    while the answer says 200)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: [_("Unknown field.")] for key in unknown})
        return super().to_internal_value(data)


def id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def json_problem(value, depth: int = 0) -> str | None:
    """Why ``value`` cannot be stored as JSON in the journal (PostgreSQL's jsonb refuses
    NUL characters; infinities are not JSON), or ``None``."""
    if depth > 10:
        return str(_("The details are nested too deeply."))
    if isinstance(value, str) and "\x00" in value:
        return str(_("Null characters are not allowed."))
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return str(_("Unpaired surrogate characters are not allowed."))
    if isinstance(value, float) and not math.isfinite(value):
        return str(_("Numbers must be finite."))
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        problem = json_problem(item, depth + 1)
        if problem:
            return problem
    return None


class JsonObjectField(serializers.DictField):
    """A JSON object stored as it is (an event's details, custom field answers): plain
    JSON PostgreSQL can store, at most ``max_bytes`` of it."""

    def __init__(self, *, max_bytes: int = 8192, **kwargs):
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = json_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        if len(json.dumps(value, ensure_ascii=False, default=str).encode()) > self.max_bytes:
            raise serializers.ValidationError(_("At most %(n)s bytes as JSON.") % {"n": self.max_bytes})
        return value
