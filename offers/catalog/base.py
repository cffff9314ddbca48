"""What every catalog entry is: filters, actions and offer events share one shape.

An entry is a class with a stable ``key`` (persisted in offers' rules: renaming one
needs a data migration), a human ``label``, and ``params``: a Django form that validates
the entry's parameters and renders them in the offer builder. A rule stores
``{"key": ..., "params": {...}}``; ``entry_validate`` turns submitted parameters into
the stored JSON (or field errors), and the engine builds one instance per stored entry
with its cleaned parameters when it compiles the active offers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext as _


class NoParams(forms.Form):
    pass


class CatalogEntry:
    key: ClassVar[str]
    label: ClassVar[str | Promise]
    help: ClassVar[str | Promise] = ""
    params: ClassVar[type[forms.Form]] = NoParams

    # When the offer this entry belongs to starts (set when the offer is compiled).
    offer_starts_at: dt.datetime | None = None

    def __init__(self, params: dict[str, Any]):
        self.raw = params
        self.setup(params)

    def setup(self, params: dict[str, Any]) -> None:
        """Turn stored parameters into whatever evaluation needs (sets, Decimals)."""


E = TypeVar("E", bound=type[CatalogEntry])


class Registry(Generic[E]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[str, E] = {}

    def register(self, cls: E) -> E:
        if cls.key in self._entries:
            raise ValueError(f"{self.name} {cls.key!r} is registered twice")
        self._entries[cls.key] = cls
        return cls

    def get(self, key: str) -> E:
        return self._entries[key]

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries.values())

    def choices(self) -> list[tuple[str, str]]:
        return [(cls.key, str(cls.label)) for cls in self._entries.values()]


def _jsonable(value: Any, to_field: str | None = None) -> Any:
    if isinstance(value, Model):
        return getattr(value, to_field) if to_field else value.pk
    if isinstance(value, QuerySet | list | tuple | set):
        return [_jsonable(v, to_field) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


def entry_validate(registry: Registry, item: Any, where: str) -> dict:
    """Validate one stored/submitted ``{"key", "params"}``; return it with cleaned,
    JSON-able params. Errors name ``where`` (e.g. ``rules[0].filters[1]``) and the field."""
    if not isinstance(item, dict) or "key" not in item:
        raise ValidationError({where: _("Each entry needs a key.")})
    key = item["key"]
    if key not in registry:
        raise ValidationError({where: _("Unknown %(kind)s %(key)s.") % {"kind": registry.name, "key": key}})
    cls = registry.get(key)
    data = dict(item.get("params") or {})
    for name, form_field in cls.params.base_fields.items():
        if data.get(name) is None and form_field.initial is not None:
            data[name] = form_field.initial
    form = cls.params(data=data)
    if not form.is_valid():
        raise ValidationError(
            {f"{where}.{field}": [str(e) for e in errors] for field, errors in form.errors.items()}
        )
    params = {
        name: _jsonable(value, getattr(form.fields[name], "to_field_name", None))
        for name, value in form.cleaned_data.items()
        if value not in (None, "", [])
    }
    extra = getattr(cls, "clean_params", None)
    if extra:
        try:
            extra(params)
        except ValidationError as exc:
            raise ValidationError({where: exc.messages}) from exc
    return {"key": key, "params": params}
