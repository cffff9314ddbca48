"""Message templates: the metavariable registry, the sandbox, and set-wise rendering.

A template's parts (subject, text, HTML, button...) are Jinja2 templates over
*metavariables*: plain values (strings, numbers, dicts of them) named in a registry, each
with a label, a group and an example. Rendering a batch works set-wise: the parts are
parsed once, the groups their variables belong to are worked out, and each group's
loader fetches its values for the whole batch of members in one or two queries. No model
instance ever reaches a template.

The sandbox refuses attribute tricks (``__class__``, ``|attr``, ``format_map``), caps
``range`` and the size of the output, and gives a render a time budget checked as the
output is produced. HTML parts are autoescaped; text parts are not. A template naming a
variable the registry does not know is refused when it is saved, naming the variable.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, override, pgettext, pgettext_lazy
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape as html_escape

import communications.lookups  # noqa: F401  (the ``__any`` lookup)

MAX_OUTPUT = 100_000  # characters per part (an email's HTML); SMS and push are far below
MAX_RANGE = 1000
RENDER_SECONDS = 0.5


class RenderError(Exception):
    """A template could not be rendered for a member (its message is not sent)."""


# --- the registry --------------------------------------------------------------------------
@dataclass(frozen=True)
class Metavariable:
    name: str
    label: str | Promise
    group: str
    example: Any

    @property
    def example_text(self) -> str:
        """The example as the catalog shows it: ``gift: 300`` for a mapping, not Python's
        ``{'gift': '300'}``."""
        if isinstance(self.example, dict):
            return ", ".join(f"{key}: {value}" for key, value in self.example.items()) or "—"
        return str(self.example)


Loader = Callable[[list[int], dt.datetime, set[str]], dict[int, dict[str, Any]]]


class MetavariableRegistry:
    """Variables by name, and for each group the loader that fills its variables for a
    batch of members (``loader(member_ids, now, groups) -> {member_id: {name: value}}``,
    ``groups`` being those of its groups the batch needs: one loader may serve several
    groups that come from the same rows). Groups without a loader (``event``, ``links``,
    ``offer``) are filled by the caller."""

    def __init__(self) -> None:
        self._vars: dict[str, Metavariable] = {}
        self._loaders: dict[str, Loader] = {}

    def register(self, name: str, label, group: str, example: Any) -> None:
        if name in self._vars:
            raise ValueError(f"metavariable {name!r} is registered twice")
        self._vars[name] = Metavariable(name, label, group, example)

    def loader(self, *groups: str) -> Callable[[Loader], Loader]:
        def decorator(fn: Loader) -> Loader:
            for group in groups:
                self._loaders[group] = fn
            return fn

        return decorator

    def __contains__(self, name: str) -> bool:
        return name in self._vars

    def __iter__(self):
        return iter(self._vars.values())

    def get(self, name: str) -> Metavariable:
        return self._vars[name]

    def groups_of(self, names: Iterable[str]) -> set[str]:
        return {self._vars[n].group for n in names if n in self._vars}

    def load(self, groups: set[str], member_ids: list[int], now: dt.datetime) -> dict[int, dict[str, Any]]:
        values: dict[int, dict[str, Any]] = defaultdict(dict)
        if not member_ids:
            return values
        by_loader: dict[Loader, set[str]] = {}
        for group in sorted(groups):
            if (loader := self._loaders.get(group)) is not None:
                by_loader.setdefault(loader, set()).add(group)
        for loader, wanted in by_loader.items():
            for member_id, row in loader(member_ids, now, wanted).items():
                values[member_id].update(row)
        return values

    def examples(self) -> dict[str, Any]:
        return {v.name: v.example for v in self._vars.values()}


metavariables = MetavariableRegistry()


# --- the sandbox ---------------------------------------------------------------------------
def _safe_range(*args: int):
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise RenderError(_("range() is limited to %(n)s items.") % {"n": MAX_RANGE})
    return rng


class _Sandbox(SandboxedEnvironment):
    def is_safe_attribute(self, obj, attr, value) -> bool:
        # Only plain values reach a template; their private and dunder attributes never matter.
        if attr.startswith("_") or attr in {"format_map", "mro"}:
            return False
        return super().is_safe_attribute(obj, attr, value)


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True)
    env.globals = {"range": _safe_range}
    return env


_text_env = _environment(False)
_html_env = _environment(True)
HTML_PARTS = frozenset({"html"})


def _env_for(part: str) -> SandboxedEnvironment:
    return _html_env if part in HTML_PARTS else _text_env


def template_variables(source: str) -> set[str]:
    """Names a template reads (raises ``TemplateSyntaxError``)."""
    return set(meta.find_undeclared_variables(_text_env.parse(source)))


def template_errors(source: str) -> list[str]:
    """Why ``source`` cannot be saved: a syntax error with its line, or each unknown
    variable by name."""
    try:
        ast = _text_env.parse(source)
    except TemplateSyntaxError as exc:
        return [_("Template error on line %(line)s: %(error)s") % {"line": exc.lineno, "error": exc.message}]
    errors = [
        _("Unknown variable %(name)s.") % {"name": name}
        for name in sorted(meta.find_undeclared_variables(ast))
        if name not in metavariables
    ]
    for node in ast.find_all((nodes.Getattr,)):
        if node.attr.startswith("_"):
            errors.append(_("Attribute %(name)s is not allowed.") % {"name": node.attr})
    return errors


def template_record_errors(template) -> dict[str, list[str]]:
    """Errors of a ``MessageTemplate`` by field: each part's template errors, the parts
    its channel requires, and the channel's content rules (Viber combinations...)."""
    from communications.models.templates import CHANNEL_PARTS, LITERAL_PARTS

    errors: dict[str, list[str]] = defaultdict(list)
    fields = CHANNEL_PARTS.get(template.channel, {})
    for key, field in fields.items():
        value = getattr(template, field) or ""
        if value and key not in LITERAL_PARTS:
            errors[field] += template_errors(value)
    required = {
        "sms": ["text"],
        "email": ["subject"],
        "push": ["title", "text"],
        "social": ["social_template_id"],
    }
    for field in required.get(template.channel, []):
        if not (getattr(template, field) or "").strip():
            errors[field].append(_("This channel needs it."))
    if template.channel == "email" and not (template.html or template.text):
        errors["text"].append(_("An email needs a text part, an HTML part, or both."))
    if template.channel == "viber" and not any(errors.values()):
        from gateways.providers._content import viber_errors

        for error in viber_errors(template.parts()):
            errors["text"].append(error)
    if template.channel == "sms" and not any(errors.values()):
        try:
            sample = render_parts(template.parts(), metavariables.examples())
        except RenderError:  # values only the event supplies (event.amount): judged when sent
            sample = {}
        if len(sample.get("text", "")) > 1000:
            errors["text"].append(_("An SMS is limited to 1000 characters (with example values)."))
    return {k: v for k, v in errors.items() if v}


@lru_cache(maxsize=2048)
def _compiled(part: str, source: str):
    return _env_for(part).from_string(source)


@lru_cache(maxsize=2048)
def names_read(source: str) -> frozenset[str]:
    """``template_variables``, remembered per source (raises ``TemplateSyntaxError``)."""
    return frozenset(template_variables(source)) if source else frozenset()


_TEXT, _NAME, _IF = 0, 1, 2


def _pieces_of(body: list) -> tuple | None:
    pieces: list[tuple] = []
    for node in body:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    pieces.append((_TEXT, child.data))
                elif isinstance(child, nodes.Name) and child.ctx == "load":
                    pieces.append((_NAME, child.name))
                else:
                    return None
        elif isinstance(node, nodes.If) and isinstance(node.test, nodes.Name) and node.test.ctx == "load":
            otherwise = node.else_
            if node.elif_:  # elif: an if in the else branch
                first, *rest = node.elif_
                otherwise = [nodes.If(first.test, first.body, rest, node.else_)]
            then, other = _pieces_of(node.body), _pieces_of(otherwise)
            if then is None or other is None:
                return None
            pieces.append((_IF, node.test.name, then, other))
        else:
            return None
    return tuple(pieces)


def _pieces(source: str) -> tuple | None:
    """A template of only text, ``{{ name }}`` and ``{% if name %}`` (with ``elif`` /
    ``else``) — most SMS texts, email subjects and simple HTML — as pieces taken from
    the parsed template, so the text is exactly what Jinja2 would output: ``(_TEXT,
    text)``, ``(_NAME, name)``, ``(_IF, name, pieces if true, pieces if false)``.
    ``None`` for anything else (loops, filters, attributes, expressions)."""
    return _pieces_of(_text_env.parse(source).body)


@lru_cache(maxsize=2048)
def _plan(part: str, source: str) -> tuple[Any, tuple[str, ...], bool, tuple | None]:
    """(compiled template, the names it reads, whether it has statements, its pieces
    when it is only text and names)."""
    return _compiled(part, source), tuple(sorted(names_read(source))), "{%" in source, _pieces(source)


def render_part(part: str, source: str, context: dict[str, Any]) -> str:
    """Render one part, stopping past ``MAX_OUTPUT`` characters or ``RENDER_SECONDS``.

    The template gets a context of only the names it reads, used as its own (not
    copied): the sandbox's checks are compiled into the template, so this only saves
    the per-render merge of a large dictionary."""
    try:
        template, names, statements, pieces = _plan(part, source)
        local = {name: context[name] for name in names if name in context}
        if pieces is not None:  # text, names and ifs only: joined here, as Jinja2 would output them
            chunks: list[str] = []
            _join_pieces(pieces, local, html_escape if part in HTML_PARTS else str, chunks)
            out = "".join(chunks)
            if len(out) > MAX_OUTPUT:
                raise RenderError(_("The rendered text is too long."))
            return out
        local["range"] = _safe_range
        if not statements:  # no loops: one plain render is cheapest
            out = template.environment.concat(
                template.root_render_func(template.new_context(local, shared=True))
            )
            if len(out) > MAX_OUTPUT:
                raise RenderError(_("The rendered text is too long."))
            return out
        deadline = time.monotonic() + RENDER_SECONDS
        chunks, size = [], 0
        for chunk in template.root_render_func(template.new_context(local, shared=True)):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderError(_("The rendered text is too long."))
            if not len(chunks) & 15 and time.monotonic() > deadline:  # the clock every 16 pieces
                raise RenderError(_("The template took too long to render."))
        return "".join(chunks)
    except RenderError:
        raise
    except Exception as exc:  # undefined values, sandbox refusals, type errors in expressions
        raise RenderError(f"{exc.__class__.__name__}: {exc}") from exc


def _join_pieces(pieces: tuple, values: dict[str, Any], convert, out: list[str]) -> None:
    for piece in pieces:
        kind, name = piece[0], piece[1]
        if kind == _TEXT:
            out.append(name)
            continue
        if name not in values:
            raise RenderError(f"UndefinedError: '{name}' is undefined")
        if kind == _NAME:
            out.append(convert(values[name]))
        else:
            _join_pieces(piece[2] if values[name] else piece[3], values, convert, out)


def render_parts(parts: dict[str, str], context: dict[str, Any]) -> dict[str, str]:
    from communications.models.templates import LITERAL_PARTS

    return {
        key: (source if key in LITERAL_PARTS else render_part(key, source, context))
        for key, source in parts.items()
    }


_BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def content_from_parts(channel: str, rendered: dict[str, str]) -> dict[str, str]:
    """The message content a provider takes from rendered parts (the email preheader
    goes at the top of the HTML as the hidden preview line)."""
    content = dict(rendered)
    preheader = content.pop("preheader", "")
    if channel == "email" and preheader and content.get("html"):
        from html import escape

        hidden = f'<div style="display:none;max-height:0;overflow:hidden">{escape(preheader)}</div>'
        html = content["html"]
        body = _BODY_TAG.search(html)
        if body:
            content["html"] = html[: body.end()] + hidden + html[body.end() :]
        else:
            content["html"] = hidden + html
    return content


# --- rendering batches ----------------------------------------------------------------------
@dataclass
class RenderJob:
    """One message to render: the member, the template's parts, and the values the
    caller supplies (``event``, ``offer``, links)."""

    key: Any
    member_id: int | None
    parts: dict[str, str]
    extra: dict[str, Any]


def parts_names(parts: dict[str, str]) -> set[str]:
    """The names a template's parts read (a part with a syntax error reads none)."""
    names: set[str] = set()
    for source in parts.values():
        try:
            names |= names_read(source)
        except TemplateSyntaxError:
            continue
    return names


def needed_groups(parts: dict[str, str]) -> set[str]:
    return metavariables.groups_of(parts_names(parts))


def contexts_load(member_ids: list[int], groups: set[str], *, now: dt.datetime | None = None):
    return metavariables.load(groups, member_ids, now or timezone.now())


def render_batch(jobs: list[RenderJob], *, now: dt.datetime | None = None) -> dict[Any, dict | RenderError]:
    """Render every job; the result maps each job's key to its rendered parts or to the
    ``RenderError`` that stopped it. One query per metavariable group for the batch."""
    now = now or timezone.now()
    names: set[str] = set()
    seen: set[int] = set()
    for job in jobs:
        if id(job.parts) not in seen:
            seen.add(id(job.parts))
            names |= parts_names(job.parts)
    groups = metavariables.groups_of(names)
    member_ids = sorted({j.member_id for j in jobs if j.member_id})
    values = _dates_localised(metavariables.load(groups, member_ids, now), names)
    defaults = _defaults()
    out: dict[Any, dict | RenderError] = {}
    for job in jobs:
        context = {**defaults, **values.get(job.member_id, {}), **job.extra}
        try:
            out[job.key] = render_parts(job.parts, context)
        except RenderError as exc:
            out[job.key] = exc
    return out


def _dates_localised(values: dict[int, dict[str, Any]], names: set[str]) -> dict[int, dict[str, Any]]:
    """Loaders give dates as dates; each member sees the ones the templates read in
    their own language."""
    date_names = [name for name in DATE_VARIABLES if name in names]
    if not date_names:
        return values
    dated = [m for m, row in values.items() if any(isinstance(row.get(name), dt.date) for name in date_names)]
    if not dated:
        return values
    languages = {m: values[m]["_language"] for m in dated if "_language" in values[m]}
    missing = [m for m in dated if m not in languages]
    if missing:
        from loyalty.models import Member

        languages.update(Member.objects.filter(pk__any=missing).values_list("pk", "language"))
    for member_id in dated:
        row = values[member_id]
        language = languages.get(member_id, "")
        for name in date_names:
            value = row.get(name)
            if isinstance(value, dt.date):
                row[name] = date_text(value, language)
    return values


def render_for_member(
    parts: dict[str, str], member_id: int | None, extra: dict | None = None
) -> dict[str, str]:
    """Render for one member (previews, test sends); raises ``RenderError``."""
    result = render_batch([RenderJob("one", member_id, parts, extra or {})])["one"]
    if isinstance(result, RenderError):
        raise result
    return result


def _defaults() -> dict[str, Any]:
    """Values every context has, so a template reading a variable whose group did not
    load (no member, an event without that value) renders empty rather than failing."""
    return {
        v.name: ({} if isinstance(v.example, dict) else "0" if v.group == BALANCE else "")
        for v in metavariables
        if v.group not in ("event",)
    } | {"event": {}, "offer": {}}


# --- formatting ---------------------------------------------------------------------------
def amount_text(value) -> str:
    """300.00 → "300", 52.50 → "52.5" (amounts come from the database with two places)."""
    text = str(value if value is not None else 0)
    if "E" in text:
        text = f"{Decimal(text):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def date_text(value: dt.date | dt.datetime | None, language: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value).date()
    if (language or settings.LANGUAGE_CODE).startswith("ru"):
        return f"{value.day:02d}.{value.month:02d}.{value.year}"
    return f"{value.day} {value.strftime('%b %Y')}"


# --- the catalog ----------------------------------------------------------------------------
MEMBER, CARD, BALANCE, ACTIVATING, EXPIRING, PURCHASE, EVENT, LINKS, OFFER = (
    "member", "card", "balance", "activating", "expiring", "last_purchase", "event", "links", "offer",
)  # fmt: skip
DATE_VARIABLES = ("birth_date", "activating_date", "expiring_date", "last_purchase_date")

for _name, _label, _group, _example in [
    ("first_name", gettext_lazy("first name"), MEMBER, pgettext_lazy("example", "Olga")),
    ("last_name", gettext_lazy("last name"), MEMBER, pgettext_lazy("example", "Smirnova")),
    ("middle_name", gettext_lazy("middle name (patronymic)"), MEMBER, pgettext_lazy("example", "Ivanovna")),
    ("full_name", gettext_lazy("full name"), MEMBER, pgettext_lazy("example", "Olga Ivanovna Smirnova")),
    (
        "salutation",
        gettext_lazy("salutation (Dear Olga Ivanovna)"),
        MEMBER,
        pgettext_lazy("example", "Dear Olga Ivanovna"),
    ),
    ("birth_date", gettext_lazy("birth date"), MEMBER, "12.03.1990"),
    ("card_number", gettext_lazy("card number"), CARD, "2000000000017"),
    ("status", gettext_lazy("status (tier)"), MEMBER, pgettext_lazy("example", "Gold")),
    ("city", gettext_lazy("city"), MEMBER, pgettext_lazy("example", "Moscow")),
    ("referral_code", gettext_lazy("referral code"), MEMBER, "OLGA2024"),
    ("balance", gettext_lazy("bonus balance (default currency)"), BALANCE, "300"),
    ("balances", gettext_lazy("balances by currency code, e.g. balances.gift"), BALANCE, {"gift": "300"}),
    ("pending", gettext_lazy("bonuses waiting for activation (all currencies)"), BALANCE, "50"),
    ("activating_amount", gettext_lazy("bonuses activating next"), ACTIVATING, "50"),
    ("activating_date", gettext_lazy("date they activate"), ACTIVATING, "01.12.2026"),
    ("expiring_amount", gettext_lazy("bonuses expiring next"), EXPIRING, "120"),
    ("expiring_date", gettext_lazy("date they expire"), EXPIRING, "31.12.2026"),
    ("last_purchase_date", gettext_lazy("last purchase: date"), PURCHASE, "20.11.2026"),
    ("last_purchase_amount", gettext_lazy("last purchase: amount"), PURCHASE, "1520"),
    (
        "last_purchase_store",
        gettext_lazy("last purchase: point of sale"),
        PURCHASE,
        pgettext_lazy("example", "Tverskaya 7"),
    ),
    ("currency", gettext_lazy("the program's currency"), MEMBER, "RUB"),
    ("event", gettext_lazy("the event's own values, e.g. event.amount, event.discount"), EVENT, {}),
    (
        "offer",
        gettext_lazy("the offer: offer.name, offer.ends"),
        OFFER,
        {"name": pgettext_lazy("example", "Autumn sale")},
    ),
    ("unsubscribe_url", gettext_lazy("unsubscribe link"), LINKS, "https://example.com/m/u/…/"),
    ("view_online_url", gettext_lazy("view-online link"), LINKS, "https://example.com/m/v/…/"),
]:
    metavariables.register(_name, _label, _group, _example)


@lru_cache(maxsize=16)
def _salutations(language: str) -> dict[str, str]:
    """The salutation formats of one language (looked up once, not per member)."""
    with override(language or None):
        return {
            "nobody": _("Dear member"),
            "female": pgettext("salutation to a woman", "Dear %(name)s"),
            "male": pgettext("salutation to a man", "Dear %(name)s"),
            "other": _("Dear %(name)s"),
        }


def _salutation(first: str, middle: str, gender: str, language: str) -> str:
    name = " ".join(p for p in (first, middle) if p)
    formats = _salutations(language)
    if not name:
        return formats["nobody"]
    return formats.get(gender, formats["other"]) % {"name": name}


@metavariables.loader(MEMBER)
def _member_values(member_ids: list[int], now: dt.datetime, groups: set[str]) -> dict[int, dict[str, Any]]:
    from loyalty.models import Member

    rows = Member.objects.filter(pk__any=member_ids).values_list(
        "id", "first_name", "last_name", "middle_name", "gender", "birth_date", "city",
        "referral_code", "language", "status__name",
    )  # fmt: skip
    currency = getattr(settings, "LOYALTY", {}).get("CURRENCY", "RUB")
    default_language = settings.LANGUAGE_CODE
    out = {}
    for pk, first, last, middle, gender, birth_date, city, referral_code, language, status in rows:
        language = language or default_language
        out[pk] = {
            "first_name": first,
            "last_name": last,
            "middle_name": middle,
            "full_name": " ".join(p for p in (first, middle, last) if p),
            "salutation": _salutation(first, middle, gender, language),
            "birth_date": birth_date or "",
            "status": status or "",
            "city": city,
            "referral_code": referral_code,
            "currency": currency,
            "_language": language,  # not a metavariable: dates are shown in it
        }
    return out


@metavariables.loader(CARD)
def _card_values(member_ids: list[int], now: dt.datetime, groups: set[str]) -> dict[int, dict[str, Any]]:
    """The member's card: the newest activated one, else the newest issued."""
    from loyalty.models import Card
    from loyalty.models.cards import CardState

    out: dict[int, dict[str, Any]] = {}
    rows = (
        Card.objects.filter(member_id__any=member_ids, state__in=[CardState.ACTIVATED, CardState.ISSUED])
        .order_by("member_id", "state", "-issued_at")
        .values_list("member_id", "number")
    )
    for member_id, number in rows:  # "activated" sorts before "issued"
        out.setdefault(member_id, {"card_number": number})
    return out


@metavariables.loader(BALANCE, ACTIVATING, EXPIRING)
def _ledger_values(member_ids: list[int], now: dt.datetime, groups: set[str]) -> dict[int, dict[str, Any]]:
    """Balances, and the next bonuses to activate and to expire: the first day (in the
    program's time zone) on which any of the member's lot remainders activate or expire,
    all currencies, and the sum due that day. The accounts in one query; the lots
    summed by account and day in the database, one query per kind."""
    from loyalty.models import BonusAccount, LotRemainder

    accounts = list(
        BonusAccount.objects.filter(member_id__any=member_ids).values_list(
            "pk", "member_id", "currency__code", "currency__is_default", "available", "pending"
        )
    )
    out: dict[int, dict[str, Any]] = {}
    if BALANCE in groups:
        for _pk, member_id, code, is_default, available, pending in accounts:
            row = out.setdefault(member_id, {"balance": "0", "balances": {}, "pending": Decimal(0)})
            row["balances"][code] = amount_text(available)
            row["pending"] += pending
            if is_default:
                row["balance"] = row["balances"][code]
        for row in out.values():
            row["pending"] = amount_text(row["pending"])
    if not accounts:
        return out
    owner = {pk: member_id for pk, member_id, *_rest in accounts}
    tz = timezone.get_current_timezone()
    for group, field, amount in (
        (ACTIVATING, "activates_at", "pending"),
        (EXPIRING, "expires_at", "available"),
    ):
        if group not in groups:
            continue
        first: dict[int, list] = {}
        for account_id, day, total in (
            LotRemainder.objects.filter(
                account_id__any=list(owner), **{f"{field}__gt": now, f"{amount}__gt": 0}
            )
            .annotate(day=TruncDate(field, tzinfo=tz))
            .values("account_id", "day")
            .annotate(total=Sum(amount))
            .values_list("account_id", "day", "total")
            .order_by()
        ):
            member_id = owner[account_id]
            seen = first.get(member_id)
            if seen is None or day < seen[0]:
                first[member_id] = [day, total]
            elif day == seen[0]:
                seen[1] += total
        for member_id, (day, total) in first.items():
            row = out.setdefault(member_id, {})
            row[f"{group}_amount"] = amount_text(total)
            row[f"{group}_date"] = day
    return out


@metavariables.loader(PURCHASE)
def _purchase_values(member_ids: list[int], now: dt.datetime, groups: set[str]) -> dict[int, dict[str, Any]]:
    from loyalty.models import Member, Receipt
    from loyalty.models.receipts import ReceiptKind, ReceiptState

    last = (
        Receipt.objects.filter(
            member_id=OuterRef("pk"),
            kind=ReceiptKind.SALE,
            state__in=[ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED],
        )
        .order_by("-purchased_at")
        .values("id")[:1]
    )
    ids = dict(Member.objects.filter(pk__any=member_ids).annotate(r=Subquery(last)).values_list("pk", "r"))
    receipts = {
        r["id"]: r
        for r in Receipt.objects.filter(pk__any=[i for i in ids.values() if i]).values(
            "id", "purchased_at", "total", "point_of_sale__name"
        )
    }
    out = {}
    for member_id, receipt_id in ids.items():
        r = receipts.get(receipt_id)
        if r:
            out[member_id] = {
                "last_purchase_date": timezone.localtime(r["purchased_at"]).date(),
                "last_purchase_amount": amount_text(r["total"]),
                "last_purchase_store": r["point_of_sale__name"] or "",
            }
    return out
