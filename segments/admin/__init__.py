"""Back office for segments: the segment builder with live count and summary in words,
snapshots and their history, upload to a target audience; audiences with import and
export; the RFM page; RFM and global control group settings. Analysts read, marketers
edit (``loyalty.roles``)."""

import csv
import io
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty.admin.mixins import CsvExportMixin
from loyalty.models import Member
from segments import services
from segments.metrics import metrics
from segments.models import (
    AudienceMember,
    GlobalControlGroup,
    MemberRFM,
    RFMMonthly,
    RFMSegment,
    RFMSettings,
    Segment,
    SegmentCount,
    TargetAudience,
)
from segments.rules import RuleError, rule_words


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["name", "description", "auto_refresh", "rule"]
        widgets = {"rule": forms.HiddenInput, "description": forms.Textarea(attrs={"rows": 2})}


@admin.register(Segment)
class SegmentAdmin(CsvExportMixin, admin.ModelAdmin):
    form = SegmentForm
    change_form_template = "admin/segments/segment/builder.html"
    list_display = ("name", "member_count", "refreshed_at", "auto_refresh", "updated_at")
    list_filter = ("auto_refresh",)
    search_fields = ("name", "description")
    actions = ["export_csv", "refresh_selected", "duplicate_selected"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(
            {
                "metric_catalog": metrics.catalog(),
                "preview_url": reverse("admin:segments_segment_preview"),
                "counts": SegmentCount.objects.filter(segment=obj)[:20] if obj else [],
                "audiences": TargetAudience.objects.all() if obj else [],
                "can_edit": self.has_change_permission(request, obj)
                if obj
                else self.has_add_permission(request),
            }
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.preview_view), name="segments_segment_preview"),
            path("<int:pk>/refresh/", view(self.refresh_view), name="segments_segment_refresh"),
            path("<int:pk>/duplicate/", view(self.duplicate_view), name="segments_segment_duplicate"),
            path("<int:pk>/upload/", view(self.upload_view), name="segments_segment_upload"),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """Live count and the rule in words while the marketer edits (POST JSON)."""
        if not self.has_view_permission(request) or request.method != "POST":
            raise PermissionDenied
        try:
            rule = json.loads(request.body or b"{}").get("rule")
            count = services.segment_count(rule)
            return JsonResponse({"count": count, "words": rule_words(rule)})
        except (RuleError, ValueError, AttributeError) as exc:
            return JsonResponse({"error": str(exc)}, status=400)

    def _segment_for_change(self, request, pk) -> Segment:
        segment = get_object_or_404(Segment, pk=pk)
        if not self.has_change_permission(request, segment) or request.method != "POST":
            raise PermissionDenied
        return segment

    def refresh_view(self, request, pk):
        segment = self._segment_for_change(request, pk)
        result = services.segment_materialise(segment)
        self.message_user(
            request,
            gettext("Snapshot refreshed: %(n)s members (+%(added)s / −%(removed)s).")
            % {"n": result.members, "added": result.added, "removed": result.removed},
            messages.SUCCESS,
        )
        return redirect(reverse("admin:segments_segment_change", args=[pk]))

    def duplicate_view(self, request, pk):
        segment = self._segment_for_change(request, pk)
        copy = services.segment_duplicate(segment, user=request.user)
        self.message_user(request, gettext("Segment duplicated."), messages.SUCCESS)
        return redirect(reverse("admin:segments_segment_change", args=[copy.pk]))

    def upload_view(self, request, pk):
        """Put the segment's members into a target audience (new or existing)."""
        segment = self._segment_for_change(request, pk)
        audience_id = request.POST.get("audience")
        name = (request.POST.get("new_audience") or "").strip()
        if name:
            audience, _created = TargetAudience.objects.get_or_create(name=name)
        elif audience_id:
            audience = get_object_or_404(TargetAudience, pk=audience_id)
        else:
            self.message_user(request, gettext("Choose an audience or name a new one."), messages.ERROR)
            return redirect(reverse("admin:segments_segment_change", args=[pk]))
        if segment.refreshed_at is None:
            services.segment_materialise(segment)
            segment.refresh_from_db()
        added = services.audience_fill_from_segment(
            audience, segment, replace=request.POST.get("replace") == "on"
        )
        self.message_user(
            request,
            gettext("%(added)s member(s) added to the audience %(audience)s.")
            % {"added": added, "audience": audience.name},
            messages.SUCCESS,
        )
        return redirect(reverse("admin:segments_targetaudience_change", args=[audience.pk]))

    @admin.action(description=_("Refresh snapshots of selected segments"), permissions=["change"])
    def refresh_selected(self, request, queryset):
        for segment in queryset:
            services.segment_materialise(segment)
        self.message_user(request, gettext("%(n)s snapshot(s) refreshed.") % {"n": queryset.count()})

    @admin.action(description=_("Duplicate selected segments"), permissions=["add"])
    def duplicate_selected(self, request, queryset):
        for segment in queryset:
            services.segment_duplicate(segment, user=request.user)
        self.message_user(request, gettext("%(n)s segment(s) duplicated.") % {"n": queryset.count()})


class AudienceImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("One phone (any format), email, card number or external id per line; UTF-8."),
    )


@admin.register(TargetAudience)
class TargetAudienceAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("name", "member_count", "updated_at")
    search_fields = ("name", "description")
    fields = ("name", "description")
    change_form_template = "admin/segments/targetaudience/change_form.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/members/", view(self.members_view), name="segments_targetaudience_members"),
            path("<int:pk>/import/", view(self.import_view), name="segments_targetaudience_import"),
            path("<int:pk>/export/", view(self.export_view), name="segments_targetaudience_export"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            page = AudienceMember.objects.filter(audience=obj).select_related("member").order_by("-added_at")
            context.update(
                {
                    "audience_members": page[:100],
                    "import_form": AudienceImportForm(),
                    "can_edit": self.has_change_permission(request, obj),
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def members_view(self, request, pk):
        """Add a member found by phone, email, card or external id; or remove one."""
        audience = get_object_or_404(TargetAudience, pk=pk)
        if not self.has_change_permission(request, audience) or request.method != "POST":
            raise PermissionDenied
        if remove := request.POST.get("remove"):
            services.audience_remove(audience, Member.objects.filter(pk=remove))
            self.message_user(request, gettext("Member removed."), messages.SUCCESS)
        else:
            report = services.audience_import(audience, [request.POST.get("identifier", "")])
            if report.added:
                self.message_user(request, gettext("Member added."), messages.SUCCESS)
            elif report.already:
                self.message_user(
                    request, gettext("The member is already in the audience."), messages.WARNING
                )
            elif report.ambiguous:
                self.message_user(
                    request, gettext("Several members match; be more specific."), messages.ERROR
                )
            else:
                self.message_user(request, gettext("No member matches."), messages.ERROR)
        return redirect(reverse("admin:segments_targetaudience_change", args=[pk]))

    def import_view(self, request, pk):
        audience = get_object_or_404(TargetAudience, pk=pk)
        if not self.has_change_permission(request, audience) or request.method != "POST":
            raise PermissionDenied
        form = AudienceImportForm(request.POST, request.FILES)
        if not form.is_valid():
            self.message_user(request, gettext("Choose a CSV file."), messages.ERROR)
            return redirect(reverse("admin:segments_targetaudience_change", args=[pk]))
        try:
            text = form.cleaned_data["file"].read().decode("utf-8-sig")
        except UnicodeDecodeError:
            self.message_user(request, gettext("The file is not UTF-8 text."), messages.ERROR)
            return redirect(reverse("admin:segments_targetaudience_change", args=[pk]))
        values = [row[0] if row else "" for row in csv.reader(io.StringIO(text), delimiter=";")]
        report = services.audience_import(audience, values)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import into %(audience)s") % {"audience": audience.name},
            "audience": audience,
            "report": report,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/segments/targetaudience/import_report.html", context)

    def export_view(self, request, pk):
        audience = get_object_or_404(TargetAudience, pk=pk)
        if not self.has_view_permission(request, audience):
            raise PermissionDenied

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        members = Member.objects.filter(audiences=audience).order_by("pk")

        def rows():
            yield "\ufeff"
            yield writer.writerow(["id", "external_id", "last_name", "first_name", "phone", "email"])
            for m in members.values_list(
                "pk", "external_id", "last_name", "first_name", "phone", "email"
            ).iterator(chunk_size=5000):
                yield writer.writerow(["" if v is None else v for v in m])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audience-{audience.pk}.csv"'
        return response


@admin.register(RFMSettings)
class RFMSettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "method", "window_days", "updated_at")
    change_list_template = "admin/segments/rfm.html"

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not RFMSettings.objects.exists()

    def get_urls(self):
        return [
            path(
                "recompute/", self.admin_site.admin_view(self.recompute_view), name="segments_rfm_recompute"
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        """The RFM page: R×F grid with members, revenue and average receipt per cell, and
        the named segments' sizes by month."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        settings_obj = RFMSettings.current()
        cells = {(c["r"], c["f"]): c for c in services.rfm_grid()}
        grid = [
            [
                cells.get((r, f)) or {"r": r, "f": f, "segment": services.rfm_segment_for(r, f)}
                for f in range(1, 6)
            ]
            for r in range(5, 0, -1)
        ]
        labels = dict(RFMSegment.choices)
        for row in grid:
            for cell in row:
                cell["label"] = labels[cell["segment"]]
        months = sorted({m.month for m in RFMMonthly.objects.all()})[-12:]
        by_month = {(m.month, m.segment): m.members for m in RFMMonthly.objects.filter(month__in=months)}
        trends = [
            {"segment": label, "key": key, "values": [by_month.get((month, key), 0) for month in months]}
            for key, label in RFMSegment.choices
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": _("RFM segmentation"),
            "opts": self.model._meta,
            "settings_obj": settings_obj,
            "grid": grid,
            "months": months,
            "trends": trends,
            "scored": MemberRFM.objects.count(),
            "computed_at": MemberRFM.objects.order_by("-computed_at")
            .values_list("computed_at", flat=True)
            .first(),
            "can_recompute": self.has_change_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.change_list_template, context)

    def recompute_view(self, request):
        if not self.has_change_permission(request) or request.method != "POST":
            raise PermissionDenied
        result = services.rfm_recompute()
        self.message_user(
            request,
            gettext("RFM recomputed: %(n)s members scored, %(moved)s moved, %(s).1f s.")
            % {"n": result.scored, "moved": result.changed, "s": result.seconds},
            messages.SUCCESS,
        )
        return redirect(reverse("admin:segments_rfmsettings_changelist"))


@admin.register(GlobalControlGroup)
class GlobalControlGroupAdmin(admin.ModelAdmin):
    list_display = ("__str__", "enabled", "share_percent", "salt", "updated_at")

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not GlobalControlGroup.objects.exists()
