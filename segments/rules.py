"""Segment rules: a tree of groups (AND / OR, optionally negated) and conditions on
metrics, validated, compiled to one ``Q`` on ``Member`` and put into words.

    {"op": "and", "not": false, "items": [
        {"metric": "gender", "operator": "in", "value": ["female"]},
        {"metric": "purchase_count", "operator": "gte", "value": 2,
         "params": {"period": {"last_days": 90}}},
        {"op": "or", "items": [...]}
    ]}
"""

import datetime as dt

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from segments.metrics import EVERYONE, OPERATORS, RuleError, coerce, metrics, period_bounds

MAX_DEPTH = 6
MAX_CONDITIONS = 60


def _walk(node, where: str, depth: int, counter: list[int]) -> dict:
    if not isinstance(node, dict):
        raise RuleError(_("%(where)s: expected a group or a condition") % {"where": where})
    if "items" in node or "op" in node:
        if depth > MAX_DEPTH:
            raise RuleError(
                _("%(where)s: groups nest deeper than %(n)s levels") % {"where": where, "n": MAX_DEPTH}
            )
        op = node.get("op", "and")
        if op not in ("and", "or"):
            raise RuleError(
                _("%(where)s: a group joins with and / or, not %(op)r") % {"where": where, "op": op}
            )
        items = node.get("items")
        if not isinstance(items, list):
            raise RuleError(_("%(where)s: a group needs a list of items") % {"where": where})
        return {
            "op": op,
            "not": bool(node.get("not", False)),
            "items": [_walk(item, f"{where}.items[{i}]", depth + 1, counter) for i, item in enumerate(items)],
        }
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise RuleError(_("A segment may have at most %(n)s conditions.") % {"n": MAX_CONDITIONS})
    key = node.get("metric")
    metric = metrics.get(key) if isinstance(key, str) else None
    if metric is None:
        raise RuleError(_("%(where)s: unknown metric %(key)r") % {"where": where, "key": key})
    op = node.get("operator")
    if op not in metric.operators:
        allowed = ", ".join(str(OPERATORS[o]) for o in metric.operators)
        raise RuleError(
            _("%(where)s: %(metric)s cannot use operator %(op)r (allowed: %(allowed)s)")
            % {"where": where, "metric": metric.label, "op": op, "allowed": allowed}
        )
    params = node.get("params") or {}
    if not isinstance(params, dict):
        raise RuleError(_("%(where)s: params must be an object") % {"where": where})
    unknown = set(params) - set(metric.params)
    if unknown:
        raise RuleError(
            _("%(where)s: %(metric)s has no parameter %(names)s")
            % {"where": where, "metric": metric.label, "names": ", ".join(sorted(unknown))}
        )
    clean_params = {}
    for name, param in metric.params.items():
        value = params.get(name, param.default)
        if value in (None, "", {}):
            if param.required:
                raise RuleError(
                    _("%(where)s: %(metric)s needs %(param)s")
                    % {"where": where, "metric": metric.label, "param": param.label}
                )
            continue
        clean_params[name] = _param(param, value, f"{where}.params.{name}")
    value = coerce(metric, op, node.get("value"), where)
    return {"metric": key, "operator": op, "value": value, "params": clean_params}


def _param(param, value, where: str):
    if param.kind == "period":
        if not isinstance(value, dict):
            raise RuleError(_("%(where)s: a period is {last_days: N} or {from, to}") % {"where": where})
        try:
            if "last_days" in value:
                days = int(value["last_days"])
                if not 0 < days <= 3650:
                    raise ValueError
                return {"last_days": days}
            out = {}
            for end in ("from", "to"):
                if value.get(end):
                    out[end] = dt.date.fromisoformat(str(value[end])).isoformat()
            if not out:
                raise ValueError
            if "from" in out and "to" in out and out["from"] > out["to"]:
                raise ValueError
            return out
        except (ValueError, TypeError) as exc:
            raise RuleError(
                _("%(where)s: %(value)r is not a valid period") % {"where": where, "value": value}
            ) from exc
    if param.kind == "number":
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise RuleError(
                _("%(where)s: %(value)r is not a whole number") % {"where": where, "value": value}
            ) from exc
        if number <= 0:
            raise RuleError(_("%(where)s: must be positive") % {"where": where})
        return number
    if param.kind == "choice" and param.choices is not None:
        allowed = {str(k) for k, _label in param.choices()}
        if str(value) not in allowed:
            raise RuleError(
                _("%(where)s: %(value)r is not one of the choices") % {"where": where, "value": value}
            )
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise RuleError(_("%(where)s: enter a value") % {"where": where})
    return value.strip()


def rule_validate(rule) -> dict:
    """The cleaned rule, or ``RuleError`` naming the first bad condition by its path."""
    if rule in (None, {}):
        return {"op": "and", "not": False, "items": []}
    return _walk(rule, "rule", 0, [0])


def rule_q(rule, *, now: dt.datetime | None = None) -> Q:
    """Compile a rule to one condition on ``Member``."""
    now = now or timezone.now()
    clean = rule_validate(rule)

    def compile_node(node) -> Q:
        if "items" in node:
            parts = [compile_node(item) for item in node["items"]]
            if not parts:
                return EVERYONE
            q = parts[0]
            for part in parts[1:]:
                q = (q & part) if node["op"] == "and" else (q | part)
            return ~q if node["not"] else q
        metric = metrics.get(node["metric"])
        return metric.condition(node["operator"], node["value"], node["params"], now)

    return compile_node(clean)


def rule_words(rule) -> str:
    """The rule in words, e.g. "Gender is one of Female and Age between 25 and 40"."""
    clean = rule_validate(rule)

    def words(node, top: bool) -> str:
        if "items" in node:
            and_word, or_word = _("and"), _("or")
            joiner = f" {and_word} " if node["op"] == "and" else f" {or_word} "
            parts = [words(item, False) for item in node["items"]]
            text = joiner.join(p for p in parts if p)
            if not text:
                return _("all members") if top else ""
            if not top and len(parts) > 1:
                text = f"({text})"
            not_word = _("not")
            return f"{not_word} {text}" if node["not"] else text
        metric = metrics.get(node["metric"])
        return metric.describe(node["operator"], node["value"], node["params"])

    return words(clean, True)


__all__ = ["RuleError", "period_bounds", "rule_q", "rule_validate", "rule_words"]
