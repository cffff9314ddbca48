"""The offer builder: settings, then rules made of catalog filters and actions, each
with its own parameter form, edited on the server (no script needed); validation errors
are shown on the entry and field they belong to; a simulation prices a sample receipt
with the offer as it stands on the page and says what each rule did."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from loyalty.models import Card, Member, PointOfSale
from offers.catalog import offer_actions, offer_events, offer_filters
from offers.context import LineIn, purchase_context
from offers.engine import evaluate
from offers.models import Offer
from offers.selectors import compile_offer
from offers.services import _render_pending, limits

PARTS = (("filters", offer_filters), ("actions", offer_actions))


class SettingsForm(forms.ModelForm):
    event_type = forms.ChoiceField(label=gettext_lazy("event"), choices=())

    class Meta:
        model = Offer
        fields = [
            "name",
            "description",
            "event_type",
            "starts_at",
            "ends_at",
            "priority",
            "stop_further",
            "audience",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "starts_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event_type"].choices = [(k, str(label)) for k, label in offer_events.choices()]
        for name in ("starts_at", "ends_at"):
            self.fields[name].input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
        _capitalise(self)


def _capitalise(form: forms.Form) -> None:
    for form_field in form.fields.values():
        form_field.label = capfirst(form_field.label)


@dataclass
class Entry:
    part: str
    key: str
    label: str
    form: forms.Form
    errors: list[str] = field(default_factory=list)


@dataclass
class RuleView:
    index: int
    filters: list[Entry]
    actions: list[Entry]


def _params_from_form(form: forms.Form) -> dict:
    data = {}
    for name, bound in form.fields.items():
        key = form.add_prefix(name)
        widget = bound.widget
        value = widget.value_from_datadict(form.data, form.files, key)
        if value not in (None, "", []):
            data[name] = value
    return data


def rules_from_post(post, structure: list[dict]) -> list[dict]:
    """The rules as submitted: each entry's params read from its prefixed form fields."""
    rules = []
    for i, rule in enumerate(structure):
        out = {"filters": [], "actions": []}
        for part, registry in PARTS:
            for j, item in enumerate(rule.get(part, [])):
                if item["key"] not in registry:
                    continue
                form = registry.get(item["key"]).params(data=post, prefix=f"r{i}-{part}{j}")
                out[part].append({"key": item["key"], "params": _params_from_form(form)})
        rules.append(out)
    return rules


def rule_views(
    rules: list[dict], errors: dict[str, list[str]] | None = None, bound: bool = False
) -> list[RuleView]:
    errors = errors or {}
    views = []
    for i, rule in enumerate(rules):
        parts = {}
        for part, registry in PARTS:
            entries = []
            for j, item in enumerate(rule.get(part, [])):
                if item["key"] not in registry:
                    continue
                cls = registry.get(item["key"])
                prefix = f"r{i}-{part}{j}"
                params = item.get("params") or {}
                form = cls.params(initial=params, prefix=prefix)
                _capitalise(form)
                where = f"rules[{i}].{part}[{j}]"
                entry_errors = []
                for err_key, messages in errors.items():
                    if err_key == where:
                        entry_errors += messages
                    elif err_key.startswith(where + "."):
                        name = err_key[len(where) + 1 :]
                        if name in form.fields:
                            form.fields[name].widget.attrs["aria-invalid"] = "true"
                            form.fields[name].help_text = " ".join(messages)
                        entry_errors += [
                            f"{form.fields[name].label if name in form.fields else name}: {m}"
                            for m in messages
                        ]
                entries.append(Entry(part, cls.key, str(cls.label), form, entry_errors))
            parts[part] = entries
        views.append(RuleView(i, parts["filters"], parts["actions"]))
    return views


def structure_of(rules: list[dict]) -> str:
    return json.dumps([{p: [{"key": e["key"]} for e in r.get(p, [])] for p, _r in PARTS} for r in rules])


class SimulationForm(forms.Form):
    point_of_sale = forms.ModelChoiceField(
        label=gettext_lazy("point of sale"), queryset=PointOfSale.objects.filter(active=True)
    )
    member = forms.CharField(label=gettext_lazy("member (card number or phone)"), required=False)
    lines = forms.CharField(
        label=gettext_lazy("lines"),
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": gettext_lazy("SKU quantity price")}),
        help_text=gettext_lazy("One line per receipt line: SKU, quantity and price separated by spaces."),
    )
    payments = forms.CharField(
        label=gettext_lazy("payment methods"),
        required=False,
        help_text=gettext_lazy("Codes, comma-separated."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _capitalise(self)

    def clean_lines(self):
        out = []
        for n, raw in enumerate(self.cleaned_data["lines"].splitlines(), start=1):
            parts = raw.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ValidationError(_("Line %(n)s: write SKU, quantity and price.") % {"n": n})
            try:
                out.append(LineIn(sku=parts[0], quantity=Decimal(parts[1]), price=Decimal(parts[2])))
            except InvalidOperation as exc:
                raise ValidationError(
                    _("Line %(n)s: quantity and price must be numbers.") % {"n": n}
                ) from exc
        if not out:
            raise ValidationError(_("Give at least one line."))
        return out

    def clean_member(self):
        text = self.cleaned_data["member"].strip()
        if not text:
            return None
        card = Card.objects.filter(number=text).select_related("member").first()
        if card and card.member:
            return card.member
        from loyalty.services.contacts import phone_parse

        try:
            phone = phone_parse(text).e164
        except ValidationError:
            phone = None
        member = Member.objects.filter(phone=phone).first() if phone else None
        if member is None:
            raise ValidationError(_("No member with this card or phone."))
        return member


def simulate(offer: Offer, form: SimulationForm):
    """Price the sample receipt with this offer alone, as it stands on the page."""
    compiled = compile_offer(offer)
    compiled.starts_at = compiled.ends_at = None  # simulate regardless of the period
    needs = frozenset({"audiences", "segments", "counters", "personal_products", "purchases"})
    payments = [p.strip() for p in form.cleaned_data["payments"].split(",") if p.strip()]
    ctx = purchase_context(
        event=offer.event_type,
        point_of_sale=form.cleaned_data["point_of_sale"],
        lines=form.cleaned_data["lines"],
        payments=payments,
        member=form.cleaned_data["member"],
        needs=needs,
    )
    result = evaluate(ctx, [compiled], limits())
    _render_pending(ctx, result)
    for effect in result.effects:  # the action's name for people, not its key
        registry = offer_actions if effect.action in offer_actions else None
        effect.label = str(registry.get(effect.action).label) if registry else effect.action
    return ctx, result
