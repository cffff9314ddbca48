"""Chains in the back office: the list with status and members inside, the editor with a
step per row whose parameters are the step kind's own fields, the lifecycle actions, the
recipes to start from, the report, and the members' passes (read-only)."""

from __future__ import annotations

import copy
import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from communications.chains import step_kinds, step_validate
from communications.models import Chain, ChainEntry, ChainStatus, ChainStep, EntryState, Status
from communications.recipes import chain_from_recipe, recipes
from communications.services.chains import (
    TRANSITIONS,
    chain_activate,
    chain_check,
    chain_pause,
    chain_report,
    chain_save,
    chain_steps_set,
    chain_stop,
    exit_reason_label,
    steps_validate,
)
from loyalty.admin.mixins import ReadOnlyAdminMixin
from loyalty.events import event_types


def _button_label(chain: Chain, status: str) -> str:
    if status == ChainStatus.ACTIVE:
        return _("Resume") if chain.status == ChainStatus.PAUSED else _("Activate")
    return _("Pause") if status == ChainStatus.PAUSED else _("Stop")


STATUS_SERVICES = {
    ChainStatus.ACTIVE: chain_activate,
    ChainStatus.PAUSED: chain_pause,
    ChainStatus.STOPPED: chain_stop,
}


def _event_choices():
    return [(key, str(label)) for key, label in event_types.choices()]


class ChainForm(forms.ModelForm):
    turn_on = forms.ChoiceField(label=gettext_lazy("turn-on event"), choices=_event_choices)
    turn_off = forms.MultipleChoiceField(
        label=gettext_lazy("turn-off events"),
        choices=_event_choices,
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text=gettext_lazy("Any of them ends the chain for the member."),
    )

    class Meta:
        model = Chain
        fields = [
            "name",
            "description",
            "campaign",
            "category",
            "turn_on",
            "turn_off",
            "reentry",
            "reentry_days",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.label = capfirst(field.label)

    def _post_clean(self):
        super()._post_clean()
        try:
            chain_check(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)


# --- steps: one row per step, the kind's parameters as fields --------------------------------------


def _param_name(kind: str, name: str) -> str:
    return f"{kind}__{name}"


def _kind_fields() -> dict[str, forms.Field]:
    """Every kind's parameter fields, named ``<kind>__<parameter>``; only the chosen
    kind's are read, and validated by its own form."""
    fields: dict[str, forms.Field] = {}
    for cls in step_kinds:
        for name, base in cls.params.base_fields.items():
            field = copy.deepcopy(base)
            field.required = False
            field.label = capfirst(field.label)
            fields[_param_name(cls.key, name)] = field
    return fields


class ChainStepFormBase(forms.ModelForm):
    kind = forms.ChoiceField(label=capfirst(gettext_lazy("step")), choices=step_kinds.choices)

    class Meta:
        model = ChainStep
        fields = ["order", "kind", "name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk and instance.kind in step_kinds:
            for name, value in (instance.params or {}).items():
                key = _param_name(instance.kind, name)
                if key in self.fields:
                    self.initial[key] = value

    def _raw_params(self, kind: str) -> dict:
        cls = step_kinds.get(kind)
        data = {}
        for name in cls.params.base_fields:
            key = self.add_prefix(_param_name(kind, name))
            value = self.fields[_param_name(kind, name)].widget.value_from_datadict(
                self.data, self.files, key
            )
            if value not in (None, "", []):
                data[name] = value
        return data

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        # Only the chosen kind's fields count; what was typed into the others is ignored.
        for name in list(self._errors or {}):
            if "__" in name and not name.startswith(f"{kind}__"):
                del self._errors[name]
        if not kind or kind not in step_kinds or any(n.startswith(f"{kind}__") for n in self._errors):
            return cleaned
        try:
            cleaned["params"] = step_validate(kind, self._raw_params(kind))
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                field = _param_name(kind, name)
                self.add_error(field if field in self.fields else None, errors)
        return cleaned


ChainStepForm = type("ChainStepForm", (ChainStepFormBase,), _kind_fields())


STEP_ERROR = re.compile(r"steps\[(\d+)\]\.(\w+)")


class ChainStepFormSet(forms.BaseInlineFormSet):
    def kept_forms(self) -> list[forms.Form]:
        return [
            form
            for form in self.forms
            if getattr(form, "cleaned_data", None)
            and not self._should_delete_form(form)
            and (form.instance.pk or form.has_changed())
        ]

    def steps(self) -> list[dict]:
        return [
            {
                "order": form.cleaned_data["order"],
                "kind": form.cleaned_data["kind"],
                "name": form.cleaned_data.get("name") or "",
                "params": form.cleaned_data.get("params", {}),
            }
            for form in self.kept_forms()
        ]

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms if not self._should_delete_form(form)):
            return
        kept = self.kept_forms()
        try:
            steps_validate(self.steps())
        except ValidationError as exc:
            leftover = []
            for key, errors in exc.message_dict.items():
                found = STEP_ERROR.fullmatch(key)
                form = kept[int(found[1])] if found else None
                name = found[2] if found else ""
                if form is not None and _param_name(form.cleaned_data["kind"], name) in form.fields:
                    form.add_error(_param_name(form.cleaned_data["kind"], name), errors)
                elif form is not None and name in form.fields:
                    form.add_error(name, errors)
                else:
                    leftover += errors
            if leftover:
                raise ValidationError(leftover) from exc


class ChainStepInline(admin.StackedInline):
    model = ChainStep
    form = ChainStepForm
    formset = ChainStepFormSet
    extra = 1
    classes = ("chain-steps",)
    fieldsets = [
        (None, {"fields": ("order", "kind", "name")}),
        *[
            (
                cls.label,
                {
                    "fields": tuple(_param_name(cls.key, name) for name in cls.params.base_fields),
                    "classes": ("chain-kind", f"chain-kind-{cls.key}"),
                    "description": cls.help,
                },
            )
            for cls in step_kinds
            if cls.params.base_fields
        ],
    ]


# --- chains ---------------------------------------------------------------------------------------


class TurnOnFilter(admin.SimpleListFilter):
    title = gettext_lazy("turn-on event")
    parameter_name = "turn_on"

    def lookups(self, request, model_admin):
        keys = Chain.objects.order_by().values_list("turn_on", flat=True).distinct()
        return sorted(((key, str(event_types.label(key))) for key in keys), key=lambda kv: kv[1])

    def queryset(self, request, queryset):
        return queryset.filter(turn_on=self.value()) if self.value() else queryset


@admin.register(Chain)
class ChainAdmin(admin.ModelAdmin):
    form = ChainForm
    inlines = [ChainStepInline]
    list_display = ("name", "status", "turn_on_label", "turn_off_labels", "members_active", "report_link")
    list_filter = ("status", TurnOnFilter)
    search_fields = ("name",)
    readonly_fields = ("status",)
    fieldsets = (
        (None, {"fields": ("name", "description", "status", "campaign", "category")}),
        (gettext_lazy("Turning on and off"), {"fields": ("turn_on", "turn_off", "reentry", "reentry_days")}),
    )
    actions = ["activate", "pause", "stop"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(active_count=Count("entries", filter=Q(entries__state=EntryState.ACTIVE)))
        )

    @admin.display(description=gettext_lazy("turn-on event"), ordering="turn_on")
    def turn_on_label(self, obj):
        return event_types.label(obj.turn_on)

    @admin.display(description=gettext_lazy("turn-off events"))
    def turn_off_labels(self, obj):
        return ", ".join(str(event_types.label(key)) for key in obj.turn_off or []) or "—"

    @admin.display(description=gettext_lazy("members in the chain"), ordering="active_count")
    def members_active(self, obj):
        count = obj.active_count
        url = reverse("admin:communications_chainentry_changelist")
        return format_html('<a href="{}?chain__id__exact={}&state__exact=active">{}</a>', url, obj.pk, count)

    @admin.display(description="")
    def report_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:communications_chain_report", args=[obj.pk]), _("Report")
        )

    def save_model(self, request, obj, form, change):
        chain_save(chain=obj)

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            if isinstance(formset, ChainStepFormSet):
                chain_steps_set(chain=form.instance, steps=formset.steps())
                # The steps were written by the service; the history entry names the chain only.
                formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def _set_status(self, request, queryset, status: str) -> None:
        done = 0
        for chain in queryset:
            try:
                STATUS_SERVICES[status](chain=chain)
                done += 1
            except ValidationError as exc:
                messages.error(request, f"{chain}: {' '.join(exc.messages)}")
        if done:
            messages.success(
                request,
                _("%(n)s chains are now %(status)s.") % {"n": done, "status": ChainStatus(status).label},
            )

    @admin.action(
        description=gettext_lazy("Activate (or resume) the selected chains"), permissions=["change"]
    )
    def activate(self, request, queryset):
        self._set_status(request, queryset, ChainStatus.ACTIVE)

    @admin.action(description=gettext_lazy("Pause the selected chains"), permissions=["change"])
    def pause(self, request, queryset):
        self._set_status(request, queryset, ChainStatus.PAUSED)

    @admin.action(
        description=gettext_lazy("Stop the selected chains (members in them leave)"), permissions=["change"]
    )
    def stop(self, request, queryset):
        self._set_status(request, queryset, ChainStatus.STOPPED)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("recipes/", view(self.recipes_view), name="communications_chain_recipes"),
            path("<int:pk>/report/", view(self.report_view), name="communications_chain_report"),
            path("<int:pk>/status/<str:status>/", view(self.status_view), name="communications_chain_status"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        chain = self.get_object(request, object_id)
        transitions = sorted(TRANSITIONS.get(chain.status, ())) if chain else []
        extra_context = {
            **(extra_context or {}),
            "transitions": [(status, _button_label(chain, status)) for status in transitions],
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def status_view(self, request, pk, status):
        chain = get_object_or_404(Chain, pk=pk)
        if request.method != "POST" or status not in STATUS_SERVICES:
            return redirect("admin:communications_chain_change", pk)
        if not self.has_change_permission(request, chain):
            raise PermissionDenied
        try:
            STATUS_SERVICES[status](chain=chain)
            messages.success(
                request, _("The chain is now %(status)s.") % {"status": ChainStatus(status).label}
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("admin:communications_chain_change", pk)

    def recipes_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            key = request.POST.get("recipe", "")
            if key in recipes:
                chain = chain_from_recipe(key, name=request.POST.get("name", "").strip() or None)
                messages.success(
                    request,
                    _("The chain is made as a draft. Edit its message templates, then activate it."),
                )
                return redirect("admin:communications_chain_change", chain.pk)
            messages.error(request, _("Choose a recipe."))
        rows = []
        for recipe in recipes.values():
            rows.append(
                {
                    "recipe": recipe,
                    "turn_on": event_types.label(recipe.turn_on),
                    "turn_off": ", ".join(str(event_types.label(k)) for k in recipe.turn_off) or "—",
                    "steps": [
                        (spec.name or step_kinds.label(spec.kind), step_kinds.label(spec.kind))
                        for spec in recipe.steps
                    ],
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Start a chain from a recipe"),
            "rows": rows,
        }
        return render(request, "admin/communications/chain/recipes.html", context)

    def report_view(self, request, pk):
        chain = get_object_or_404(Chain, pk=pk)
        if not self.has_view_permission(request, chain):
            raise PermissionDenied
        report = chain_report(chain)
        statuses = [s for s in Status.values if any(s in f.messages for f in report.steps)]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Report: %(chain)s") % {"chain": chain},
            "chain": chain,
            "report": report,
            "statuses": [(s, Status(s).label) for s in statuses],
            "rows": [
                {
                    "figures": f,
                    "messages": [f.messages.get(s, 0) for s in statuses],
                    "is_send": f.step.kind == "send",
                }
                for f in report.steps
            ],
            "entries_url": reverse("admin:communications_chainentry_changelist")
            + f"?chain__id__exact={chain.pk}",
        }
        return render(request, "admin/communications/chain/report.html", context)


# --- members' passes --------------------------------------------------------------------------------


@admin.register(ChainEntry)
class ChainEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "chain",
        "member_link",
        "step",
        "state",
        "entered_at",
        "due_at",
        "left_at",
        "why_it_ended",
    )
    list_filter = ("chain", "state")
    search_fields = ("member__phone", "member__last_name", "=member__id")
    list_select_related = ("chain", "member")
    show_full_result_count = False
    fields = (
        "chain",
        "member_link",
        "occurrence",
        "step",
        "state",
        "entered_at",
        "step_at",
        "anchor_at",
        "due_at",
        "left_at",
        "why_it_ended",
        "payload",
    )
    readonly_fields = fields

    @admin.display(description=gettext_lazy("member"), ordering="member")
    def member_link(self, obj):
        url = reverse("admin:loyalty_member_change", args=[obj.member_id])
        return format_html('<a href="{}">{}</a>', url, obj.member)

    @admin.display(description=gettext_lazy("why it ended"), ordering="exit_reason")
    def why_it_ended(self, obj):
        if obj.state == EntryState.EXITED:
            return exit_reason_label(obj.exit_reason)
        return "—"
