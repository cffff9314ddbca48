"""Offer actions beyond the receipt (registered into ``offer_actions``).

They work on any event, with or without a receipt: additional bonus points funded by a
partner's account, a message to the member, the member's status, a counter. Like every
action they only add to the ``Result``; ``offers.services.result_apply`` carries them out
when an event is processed (accruals in the ledger, counters, the status, messages
through the delivery pipeline).

A message's texts are templates with metavariables. They are rendered with the other
pending texts (``Result.pending_texts``) once every offer of the event has run, so they
see the final figures (``{{ bonus }}`` counts the bonuses of later offers too); the
message joins ``Result.sends`` only when all its texts have rendered, so a template that
fails to render sends nothing rather than a half-filled message.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _

from communications.models import MessageTemplate
from gateways.providers.base import CHANNEL_LABELS, CHANNELS, EMAIL, PUSH, SOCIAL
from loyalty.models import Partner, Status
from offers.catalog.actions import OfferAction, _currency_check, offer_actions
from offers.engine import CENT, ZERO, Accrual, Effect, Result, SendRequest
from offers.models import Counter


# --- additional bonus points ------------------------------------------------------------
class ExtraBonusParams(forms.Form):
    amount = forms.DecimalField(
        label=_("bonus points"), min_value=Decimal("0.01"), max_digits=12, decimal_places=2
    )
    currency = forms.CharField(
        label=_("bonus currency code"), required=False, help_text=_("Empty: the default currency.")
    )
    lifetime_days = forms.IntegerField(label=_("lifetime, days"), min_value=1, required=False)
    delay_days = forms.IntegerField(label=_("activation delay, days"), min_value=0, required=False, initial=0)
    funded_by = forms.ModelChoiceField(
        label=_("funded by"),
        queryset=Partner.objects.all(),
        required=False,
        help_text=_("The legal entity whose account pays for the points. Empty: the program."),
    )


@offer_actions.register
class ExtraBonusAction(OfferAction):
    """A fixed number of additional bonus points for the event (installing the app,
    filling in the questionnaire, paying online), in a bonus currency, with a lifetime
    and an activation delay, optionally funded by a partner's account (its id goes into
    ``Accrual.account``)."""

    key = "extra_bonus"
    label = _("Additional bonus points")
    params = ExtraBonusParams
    clean_params = staticmethod(_currency_check)

    def setup(self, params):
        self.amount = Decimal(params["amount"]).quantize(CENT)
        self.currency = params.get("currency", "")
        self.lifetime = params.get("lifetime_days")
        self.delay = int(params.get("delay_days") or 0)
        funded_by = params.get("funded_by")
        self.account = str(funded_by) if funded_by not in (None, "") else ""

    def apply(self, ctx, result, lines, offer, rule, limits):
        result.accruals.append(
            Accrual(offer.id, self.amount, self.currency, self.lifetime, self.delay, account=self.account)
        )
        result.effects.append(
            Effect(offer.id, offer.name, rule, self.key, self.amount, self.currency, text=self.account)
        )


# --- a message to the member --------------------------------------------------------------
TEMPLATE_HELP = _("Metavariables in double braces, e.g. {{ first_name }} or {{ bonus }}.")


class SendMessageParams(forms.Form):
    channel = forms.ChoiceField(label=_("channel"), choices=[(c, CHANNEL_LABELS[c]) for c in CHANNELS])
    template = forms.ModelChoiceField(
        label=_("message template"),
        queryset=MessageTemplate.objects.all(),
        required=False,
        help_text=_(
            "A template of the channel, rendered when the message is sent; the event's values are "
            "{{ event.discount }}, {{ event.bonus }}, {{ event.amount }}, {{ event.total }} and the "
            "event's own. Empty: the texts below."
        ),
    )
    subject = forms.CharField(
        label=_("subject (email)"), max_length=255, required=False, help_text=TEMPLATE_HELP
    )
    title = forms.CharField(label=_("title (push)"), max_length=255, required=False, help_text=TEMPLATE_HELP)
    template_id = forms.CharField(
        label=_("template id (social networks)"),
        max_length=128,
        required=False,
        help_text=_("The template moderated by the social network."),
    )
    text = forms.CharField(
        label=_("text"),
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=4000,
        required=False,
        help_text=TEMPLATE_HELP,
    )

    REQUIRED_BY_CHANNEL: ClassVar[dict[str, str]] = {EMAIL: "subject", PUSH: "title", SOCIAL: "template_id"}
    TEMPLATES: ClassVar[tuple[str, ...]] = ("subject", "title", "text")

    def clean(self):
        from offers.metavariables import template_errors

        cleaned = super().clean()
        channel = cleaned.get("channel")
        template = cleaned.get("template")
        if template is not None:
            if channel and template.channel != channel:
                self.add_error(
                    "template",
                    _("The template is for %(channel)s.") % {"channel": template.get_channel_display()},
                )
            for name in ("subject", "title", "template_id", "text"):
                cleaned.pop(name, None)
            return cleaned
        if not (cleaned.get("text") or "").strip():
            self.add_error("text", _("Write the text or choose a template."))
            return cleaned
        needed = self.REQUIRED_BY_CHANNEL.get(channel)
        if needed and not (cleaned.get(needed) or "").strip():
            self.add_error(needed, _("This channel needs it."))
        for name in self.TEMPLATES:
            if cleaned.get(name):
                for error in template_errors(cleaned[name]):
                    self.add_error(name, error)
        if channel and not self.errors:
            from gateways.services import content_errors

            for error in content_errors(channel=channel, content=message_content(channel, cleaned)):
                self.add_error("text", error)
        # Keep only the parts the channel carries.
        for name in ("subject", "title", "template_id"):
            if name != needed:
                cleaned.pop(name, None)
        return cleaned


def message_content(channel: str, parts: dict) -> dict[str, str]:
    """The message content for ``channel`` (the content keys of ``OutgoingMessage``)."""
    text = parts.get("text", "")
    if channel == EMAIL:
        return {"subject": parts.get("subject", ""), "text": text}
    if channel == PUSH:
        return {"title": parts.get("title", ""), "body": text}
    if channel == SOCIAL:
        return {"template_id": parts.get("template_id", ""), "text": text}
    return {"text": text}


class _PendingSend:
    """A message waiting for its rendered texts; joins ``result.sends`` when complete."""

    def __init__(self, result: Result, request: SendRequest, keys: set[str]) -> None:
        self.result, self.request, self.waiting = result, request, set(keys)

    def fill(self, key: str, text: str) -> None:
        self.request.content[key] = text
        self.waiting.discard(key)
        if not self.waiting:
            self.result.sends.append(self.request)


class _RenderedPart:
    """One template of a message, as a target of ``Result.pending_texts``: the services
    render each pending text and ``append`` it to the result attribute the entry names."""

    def __init__(self, pending: _PendingSend, key: str) -> None:
        self.pending, self.key = pending, key

    def append(self, text: str) -> None:
        self.pending.fill(self.key, text)


# Content keys rendered as templates; the template id is sent as it is.
_TEMPLATE_KEYS = frozenset({"subject", "title", "text", "body"})


@offer_actions.register
class SendMessageAction(OfferAction):
    """A message to the member on the chosen channel (an email with its subject, a push
    with its title, a social-network notification with its template id), its texts
    rendered with metavariables after every offer of the event has run."""

    key = "send_message"
    label = _("Send a message")
    params = SendMessageParams

    def setup(self, params):
        self.channel = params["channel"]
        self.template_id = int(params["template"]) if params.get("template") else None
        self.text = params.get("text", "")
        self.content = message_content(self.channel, params)

    def apply(self, ctx, result, lines, offer, rule, limits):
        if self.template_id:
            # Rendered at send time through the template; the services add the event's values.
            result.sends.append(
                SendRequest(offer.id, self.channel, {}, render={"template": self.template_id})
            )
            result.effects.append(
                Effect(offer.id, offer.name, rule, self.key, text=f"template:{self.template_id}")
            )
            return
        content = {k: ("" if k in _TEMPLATE_KEYS else v) for k, v in self.content.items()}
        templates = {k: v for k, v in self.content.items() if k in _TEMPLATE_KEYS}
        pending = _PendingSend(result, SendRequest(offer.id, self.channel, content), set(templates))
        for key, template in templates.items():
            target = f"_send_message_{len(result.pending_texts)}"
            setattr(result, target, _RenderedPart(pending, key))
            result.pending_texts.append((target, offer.id, template))
        result.effects.append(Effect(offer.id, offer.name, rule, self.key, text=self.text))


# --- the member's status ----------------------------------------------------------------
class StatusParams(forms.Form):
    status = forms.ModelChoiceField(label=_("status"), queryset=Status.objects.all(), to_field_name="code")
    only_upgrade = forms.BooleanField(
        label=_("only upgrade"),
        required=False,
        initial=True,
        help_text=_("Never lower the member's status: a member already of this rank or higher keeps theirs."),
    )

    def clean_status(self):
        return self.cleaned_data["status"].code


@offer_actions.register
class StatusAssignmentAction(OfferAction):
    """Give the member a status; with *only upgrade*, only when it ranks above the one
    the member has (or an earlier offer of the same event assigned)."""

    key = "status_assignment"
    label = _("Status assignment")
    params = StatusParams

    def setup(self, params):
        self.status = params["status"]
        self.only_upgrade = bool(params.get("only_upgrade", False))
        # Ranks are read when the offers are compiled: actions never query while evaluating.
        self.ranks = dict(Status.objects.values_list("code", "rank"))

    def apply(self, ctx, result, lines, offer, rule, limits):
        if ctx.member is None or self.status not in self.ranks:
            return
        if self.only_upgrade:
            current = self.ranks.get(result.status) if result.status else ctx.member.status_rank
            if current is not None and self.ranks[self.status] <= current:
                return
        result.status = self.status
        result.effects.append(Effect(offer.id, offer.name, rule, self.key, text=self.status))


# --- counters -----------------------------------------------------------------------------
class CounterParams(forms.Form):
    counter = forms.ModelChoiceField(label=_("counter"), queryset=Counter.objects.all(), to_field_name="key")
    operation = forms.ChoiceField(
        label=_("operation"),
        choices=[("add", _("add the value (negative to subtract)")), ("set", _("set to the value"))],
        initial="add",
    )
    value = forms.DecimalField(label=_("value"), max_digits=14, decimal_places=2)

    def clean_counter(self):
        return self.cleaned_data["counter"].key

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("operation") == "add" and cleaned.get("value") == 0:
            self.add_error("value", _("Adding zero changes nothing."))
        return cleaned


@offer_actions.register
class CounterChangeAction(OfferAction):
    """Add to a member's counter (a negative value subtracts) or set it, in the counter's
    current period. A value set replaces what earlier offers of the event added; what
    later ones add comes on top of it."""

    key = "counter_change"
    label = _("Counter change")
    params = CounterParams

    def setup(self, params):
        self.counter = params["counter"]
        self.operation = params.get("operation", "add")
        self.value = Decimal(params["value"])

    def apply(self, ctx, result, lines, offer, rule, limits):
        if ctx.member is None:
            return
        result.counter_offer_starts[self.counter] = offer.starts_at
        if self.operation == "set":
            result.counter_sets[self.counter] = self.value
            result.counters.pop(self.counter, None)
        else:
            result.counters[self.counter] = result.counters.get(self.counter, ZERO) + self.value
        result.effects.append(Effect(offer.id, offer.name, rule, self.key, self.value, text=self.counter))
