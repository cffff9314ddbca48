"""Metavariables: the values cheque messages, cashier messages and sent messages may use.

Templates are rendered in a Jinja2 sandbox with only plain values in the context
(strings, numbers, dates; no model instances), autoescape off for plain text, and a
size limit on the output. A registry names each variable with a label and a function
of (context, result); ``template_errors`` refuses, when an offer is saved, any
variable the registry does not know, naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from offers.engine import Context, Result

MAX_OUTPUT = 2000


@dataclass(frozen=True)
class Metavariable:
    name: str
    label: str | Promise
    value: Callable[[Context, Result], Any]


class MetavariableRegistry:
    def __init__(self) -> None:
        self._vars: dict[str, Metavariable] = {}

    def register(self, name: str, label, value: Callable[[Context, Result], Any]) -> None:
        self._vars[name] = Metavariable(name, label, value)

    def __contains__(self, name: str) -> bool:
        return name in self._vars

    def __iter__(self):
        return iter(self._vars.values())

    def values(self, ctx: Context, result: Result) -> dict[str, Any]:
        return {name: var.value(ctx, result) for name, var in self._vars.items()}

    def value(self, name: str, ctx: Context, result: Result) -> Any:
        return self._vars[name].value(ctx, result)


metavariables = MetavariableRegistry()
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True)
# No globals (Jinja's range, dict, lipsum, cycler, joiner, namespace): a saved template
# uses only the metavariables (``template_errors`` refuses any other name), and each
# render would otherwise copy them into its context.
_env.globals.clear()


def _fmt(value: Decimal) -> str:
    """An amount as the reader's language writes it: whole numbers without kopecks
    ("351"), others with two places ("39,99" in Russian, "39.99" in English)."""
    value = Decimal(value)
    return number_format(value, 2 if value % 1 else 0, force_grouping=True)


def template_errors(text: str) -> list[str]:
    try:
        names = meta.find_undeclared_variables(_env.parse(text))
    except TemplateSyntaxError as exc:
        return [_("Template error on line %(line)s: %(error)s") % {"line": exc.lineno, "error": exc.message}]
    return [
        _("Unknown variable %(name)s.") % {"name": name}
        for name in sorted(names)
        if name not in metavariables
    ]


@lru_cache(maxsize=4096)
def _compiled(text: str):
    """Templates are compiled once per process (an offer's texts rarely change), with the
    metavariables they use."""
    names = meta.find_undeclared_variables(_env.parse(text))
    return _env.from_string(text), [name for name in names if name in metavariables]


def render(text: str, ctx: Context, result: Result, values: dict[str, Any] | None = None) -> str:
    """``text`` with the metavariables it uses. ``values``: the ones already computed for
    this context and result (renders of one result share them; filled in here)."""
    template, names = _compiled(text)
    values = {} if values is None else values
    for name in names:
        if name not in values:
            values[name] = metavariables.value(name, ctx, result)
    output = template.render({name: values[name] for name in names})
    return output[:MAX_OUTPUT]


def _member(attr: str):
    return lambda ctx, result: getattr(ctx.member, attr, "") if ctx.member else ""


for _name, _label, _fn in [
    ("first_name", gettext_lazy("member's first name"), _member("first_name")),
    ("last_name", gettext_lazy("member's last name"), _member("last_name")),
    ("middle_name", gettext_lazy("member's middle name (patronymic)"), _member("middle_name")),
    ("status", gettext_lazy("member's status"), _member("status")),
    ("discount", gettext_lazy("discount on this receipt"), lambda ctx, r: _fmt(r.discount_total())),
    (
        "bonus",
        gettext_lazy("bonuses accrued on this receipt"),
        lambda ctx, r: _fmt(sum((a.amount for a in r.accruals), Decimal(0))),
    ),
    ("amount", gettext_lazy("receipt amount before discount"), lambda ctx, r: _fmt(ctx.amount)),
    ("total", gettext_lazy("receipt total after discount"), lambda ctx, r: _fmt(ctx.total)),
    ("currency", gettext_lazy("the program's currency"), lambda ctx, r: ctx.currency),
    (
        "balance",
        gettext_lazy("bonus balance (default currency)"),
        lambda ctx, r: _fmt(ctx.member.balances.get("", 0)) if ctx.member else "0",
    ),
    (
        "balances",
        gettext_lazy("bonus balances by currency"),
        lambda ctx, r: {k: _fmt(v) for k, v in ctx.member.balances.items()} if ctx.member else {},
    ),
    ("event", gettext_lazy("the event's own values"), lambda ctx, r: dict(ctx.payload)),
]:
    metavariables.register(_name, _label, _fn)
