"""Offers in the back office: the list with status, period and reach; the builder; the
lifecycle buttons; counters."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from loyalty.admin.mixins import CsvExportMixin, EventTypeFilter
from loyalty.templatetags.loyalty_tags import money, points
from offers.admin.builder import (
    SettingsForm,
    SimulationForm,
    rule_views,
    rules_from_post,
    simulate,
    structure_of,
)
from offers.catalog import offer_actions, offer_events, offer_filters
from offers.models import Counter, Offer, OfferReach, OfferStatus, OfferVersion
from offers.reach import reach_refreshed_at
from offers.services import (
    TRANSITIONS,
    offer_delete,
    offer_delete_refusal,
    offer_save,
    offer_set_status,
)


class OfferVersionInline(admin.TabularInline):
    model = OfferVersion
    fields = ("number", "created_at", "created_by")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Offer)
class OfferAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "event_label",
        "status",
        "period",
        "priority",
        "receipts",
        "members",
        "discount_given",
        "bonus_given",
        "builder_link",
    )
    list_filter = ("status", EventTypeFilter)
    search_fields = ("name",)
    readonly_fields = (
        "status",
        "version",
        "rules_summary",
        "receipts",
        "members",
        "discount_given",
        "bonus_given",
    )
    fields = ("name", "description", *readonly_fields)
    inlines = [OfferVersionInline]

    list_select_related = ("reach",)

    def changelist_view(self, request, extra_context=None):
        refreshed = reach_refreshed_at()
        subtitle = (
            _("Receipts, members, discount and bonuses as of %(time)s; counted every five minutes.")
            % {"time": date_format(timezone.localtime(refreshed), "DATETIME_FORMAT")}
            if refreshed
            else _("Receipts, members, discount and bonuses are counted every five minutes.")
        )
        return super().changelist_view(request, {"subtitle": subtitle, **(extra_context or {})})

    @staticmethod
    def _reach(obj) -> OfferReach:
        try:
            return obj.reach
        except OfferReach.DoesNotExist:
            return OfferReach()

    @admin.display(description=gettext_lazy("event"))
    def event_label(self, obj):
        from loyalty.events import event_types

        return event_types.label(obj.event_type)

    @admin.display(description=gettext_lazy("period"))
    def period(self, obj):
        start = obj.starts_at.strftime("%Y-%m-%d") if obj.starts_at else "…"
        end = obj.ends_at.strftime("%Y-%m-%d") if obj.ends_at else "…"
        return f"{start} – {end}"

    @admin.display(description=gettext_lazy("receipts"), ordering="reach__receipts")
    def receipts(self, obj):
        return self._reach(obj).receipts

    @admin.display(description=gettext_lazy("members"), ordering="reach__members")
    def members(self, obj):
        return self._reach(obj).members

    @admin.display(description=gettext_lazy("discount given"), ordering="reach__discount")
    def discount_given(self, obj):
        return money(self._reach(obj).discount)

    @admin.display(description=gettext_lazy("bonuses given"), ordering="reach__bonus")
    def bonus_given(self, obj):
        return points(self._reach(obj).bonus)

    @admin.display(description="")
    def builder_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:offers_offer_builder", args=[obj.pk]), _("Open builder")
        )

    @admin.display(description=gettext_lazy("rules"))
    def rules_summary(self, obj):
        lines = []
        for i, rule in enumerate(obj.rules, start=1):
            filters = ", ".join(
                str(offer_filters.get(f["key"]).label) for f in rule["filters"] if f["key"] in offer_filters
            )
            actions = ", ".join(
                str(offer_actions.get(a["key"]).label) for a in rule["actions"] if a["key"] in offer_actions
            )
            lines.append(
                _("Rule %(n)s: if %(filters)s → %(actions)s")
                % {"n": i, "filters": filters or _("always"), "actions": actions}
            )
        return format_html("<br>".join(["{}"] * len(lines)), *lines) if lines else "—"

    # Only a draft is deleted (``offer_delete``): an offer that was active is kept with
    # the receipts it priced.
    def has_delete_permission(self, request, obj=None):
        if obj is not None and offer_delete_refusal(obj):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        offer_delete(offer=obj)

    def delete_queryset(self, request, queryset):
        for offer in queryset:
            offer_delete(offer=offer)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            func, name, description = actions["delete_selected"]
            actions["delete_selected"] = (self._drafts_only(func), name, description)
        return actions

    def _drafts_only(self, delete_selected):
        """Django's "delete selected" over the drafts among the chosen offers; each other
        offer is named with the reason it stays."""

        def action(modeladmin, request, queryset):
            kept = {offer.pk: refusal for offer in queryset if (refusal := offer_delete_refusal(offer))}
            for refusal in kept.values():
                self.message_user(request, refusal, messages.WARNING)
            drafts = queryset.exclude(pk__in=kept)
            if drafts.exists():
                return delete_selected(modeladmin, request, drafts)
            return None

        return action

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:offers_offer_builder_new")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("builder/", view(self.builder_view), name="offers_offer_builder_new"),
            path("<int:pk>/builder/", view(self.builder_view), name="offers_offer_builder"),
            path("<int:pk>/status/<str:status>/", view(self.status_view), name="offers_offer_status"),
            *super().get_urls(),
        ]

    def status_view(self, request, pk, status):
        offer = get_object_or_404(Offer, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, offer):
            return redirect("admin:offers_offer_builder", pk)
        try:
            offer_set_status(offer=offer, status=status, user=request.user)
            messages.success(
                request, _("The offer is now %(status)s.") % {"status": OfferStatus(status).label}
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("admin:offers_offer_builder", pk)

    def builder_view(self, request, pk=None):
        offer = get_object_or_404(Offer, pk=pk) if pk else Offer()
        can_change = self.has_change_permission(request, offer) if pk else self.has_add_permission(request)
        editable = can_change and offer.status not in (OfferStatus.FINISHED, OfferStatus.ARCHIVED)
        errors: dict[str, list[str]] = {}
        rules = offer.rules or [{"filters": [], "actions": []}]
        settings_form = SettingsForm(instance=offer)
        simulation_form = SimulationForm(prefix="sim")
        simulation = None
        if request.method == "POST" and editable:
            structure = json.loads(request.POST.get("structure") or "[]")
            rules = rules_from_post(request.POST, structure)
            settings_form = SettingsForm(request.POST, instance=offer)
            op = request.POST.get("op", "")
            if op == "add_rule":
                rules.append({"filters": [], "actions": []})
            elif op.startswith("remove_rule:"):
                index = int(op.split(":")[1])
                if 0 <= index < len(rules):
                    rules.pop(index)
            elif op.startswith(("add_filter:", "add_action:")):
                kind, index = op.split(":")
                part = "filters" if kind == "add_filter" else "actions"
                key = request.POST.get(f"new_{part}_{index}", "")
                registry = offer_filters if part == "filters" else offer_actions
                if key in registry and int(index) < len(rules):
                    rules[int(index)][part].append({"key": key, "params": {}})
            elif op.startswith("remove:"):
                _op, index, part, j = op.split(":")
                del rules[int(index)][part][int(j)]
            elif op in ("save", "simulate") and settings_form.is_valid():
                fields = {k: v for k, v in settings_form.cleaned_data.items()}
                if op == "save":
                    try:
                        offer = offer_save(offer=offer, rules=rules, user=request.user, **fields)
                        messages.success(request, _("The offer is saved."))
                        return redirect("admin:offers_offer_builder", offer.pk)
                    except ValidationError as exc:
                        errors = exc.message_dict
                        for name in list(errors):
                            if name in settings_form.fields:
                                settings_form.add_error(name, errors.pop(name))
                        messages.error(request, _("Please correct the errors below."))
                else:
                    simulation_form = SimulationForm(request.POST, prefix="sim")
                    if simulation_form.is_valid():
                        from offers.services import rules_validate

                        try:
                            draft = Offer(**{k: v for k, v in fields.items()}, pk=offer.pk or 0)
                            draft.rules = rules_validate(event_type=fields["event_type"], rules=rules)
                            ctx, result = simulate(draft, simulation_form)
                            simulation = {"ctx": ctx, "result": result}
                        except ValidationError as exc:
                            errors = exc.message_dict
        if request.method == "POST" and request.POST.get("op") != "simulate":
            # Keep the sample receipt the marketer typed while they edit the rules.
            simulation_form = SimulationForm(
                prefix="sim",
                initial={name: request.POST.get(f"sim-{name}", "") for name in SimulationForm.base_fields},
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": offer.name if offer.pk else _("New offer"),
            "offer": offer,
            "editable": editable,
            "settings_form": settings_form,
            "rules": rule_views(rules, errors),
            "structure": structure_of(rules),
            "filter_choices": offer_filters.choices(),
            "action_choices": offer_actions.choices(),
            "rule_errors": {k: v for k, v in errors.items() if k == "rules" or k.endswith(".actions")},
            "simulation_form": simulation_form,
            "simulation": simulation,
            "transitions": [(s, OfferStatus(s).label) for s in sorted(TRANSITIONS[offer.status])]
            if offer.pk
            else [],
            "event_label": dict(offer_events.choices()).get(offer.event_type, ""),
        }
        return render(request, "admin/offers/offer/builder.html", context)


@admin.register(Counter)
class CounterAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "period")
    search_fields = ("name", "key")
