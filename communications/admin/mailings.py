"""Mailings in the back office: the form, the preliminary cost, test sends, launch /
pause / resume / cancel, the report and the calendar; campaigns, mailing categories,
unsubscribe reasons and subscription changes."""

import calendar
import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from communications.admin.templates import preview_data
from communications.models import (
    Campaign,
    CategoryOptOut,
    Mailing,
    MailingCategory,
    MailingStatus,
    Origin,
    SubscriptionChange,
    UnsubscribeReason,
)
from communications.services import mailings as service
from loyalty.admin.mixins import ReadOnlyAdminMixin


def money(value) -> str:
    from django.conf import settings

    return f"{number_format(value, decimal_pos=2, use_l10n=True)} {settings.LOYALTY['CURRENCY']}"


class MailingForm(forms.ModelForm):
    class Meta:
        model = Mailing
        fields = [
            "name", "campaign", "category", "channel", "cascade", "gateway", "template", "audience",
            "segment", "control_share", "schedule", "send_at", "local_date", "local_time", "expires_hours",
        ]  # fmt: skip

    def clean(self):
        cleaned = super().clean()
        draft = Mailing(**{name: cleaned.get(name) for name in self.Meta.fields if name in cleaned})
        try:
            service.mailing_validate(draft, launching=False)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                if field not in self.errors:  # a missing required field says so once
                    self.add_error(field if field in self.fields else None, errors)
        return cleaned


@admin.register(Mailing)
class MailingAdmin(admin.ModelAdmin):
    form = MailingForm
    list_display = ("name", "status", "channel", "audience_name", "when", "prepared_count", "campaign")
    list_filter = ("status", "channel", "campaign", "category")
    search_fields = ("name",)
    date_hierarchy = "created_at"
    list_select_related = ("audience", "segment", "campaign")
    change_form_template = "admin/communications/mailing/change_form.html"
    change_list_template = "admin/communications/mailing/change_list.html"
    readonly_fields = (
        "status", "preview", "estimate_view", "progress", "audience_count", "control_count",
        "excluded_count", "prepared_count", "launched_at", "prepared_at", "finished_at", "error",
    )  # fmt: skip

    def get_fieldsets(self, request, obj=None):
        sets = [
            (None, {"fields": ("name", "campaign", "category")}),
            (_("Channel and content"), {"fields": ("channel", "cascade", "gateway", "template", "preview")}),
            (_("Audience"), {"fields": ("audience", "segment", "control_share")}),
            (_("Schedule"), {"fields": ("schedule", "send_at", "local_date", "local_time", "expires_hours")}),
            (_("Preliminary cost"), {"fields": ("estimate_view",)}),
        ]
        if obj is not None and obj.status != MailingStatus.DRAFT:
            sets.append(
                (
                    _("Progress"),
                    {
                        "fields": (
                            "status", "progress", "audience_count", "control_count", "excluded_count",
                            "prepared_count", "launched_at", "prepared_at", "finished_at", "error",
                        )
                    },
                )
            )  # fmt: skip
        elif obj is not None and obj.error:
            sets.append((_("Progress"), {"fields": ("status", "error")}))
        return sets

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.editable:
            return [*MailingForm.Meta.fields, *self.readonly_fields]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description=_("audience"))
    def audience_name(self, obj):
        return obj.audience or obj.segment or "—"

    @admin.display(description=_("send"))
    def when(self, obj):
        if obj.schedule == "at" and obj.send_at:
            return timezone.localtime(obj.send_at).strftime("%Y-%m-%d %H:%M")
        if obj.schedule == "local" and obj.local_date:
            return gettext("%(date)s %(time)s local") % {"date": obj.local_date, "time": obj.local_time}
        return obj.get_schedule_display()

    @admin.display(description=_("preview"))
    def preview(self, obj):
        if obj is None or not obj.template_id:
            return "—"
        member = None
        if obj.audience_id:
            member = obj.audience.members.order_by("pk").first()
        data = preview_data(obj.template, member)
        if "error" in data:
            return format_html('<span class="errornote">{}</span>', data["error"])
        content = data["content"]
        head = content.get("subject") or content.get("title") or ""
        body = content.get("text") or content.get("body") or ""
        extra = ""
        if "sms" in data:
            extra = gettext("%(n)s characters, %(enc)s, %(segments)s segment(s)") % {
                "n": data["sms"]["characters"],
                "enc": data["sms"]["encoding"],
                "segments": data["sms"]["segments"],
            }
        return format_html(
            '<div class="mailing-preview"><strong>{}</strong><div style="white-space:pre-wrap">{}</div>'
            '<p class="help">{} {} · <a href="{}">{}</a></p></div>',
            head,
            body[:1000],
            gettext("With the data of %(member)s.") % {"member": member}
            if member
            else gettext("With example values."),
            extra,
            reverse("admin:communications_messagetemplate_change", args=[obj.template_id]),
            gettext("Open the template (phone and desktop preview)"),
        )

    @admin.display(description=_("preliminary cost"))
    def estimate_view(self, obj):
        e = obj.estimate if obj else {}
        if not e:
            return gettext("Not estimated yet: press “Estimate the cost”.")
        rows = [
            (gettext("audience"), number_format(e["audience"], force_grouping=True)),
            (gettext("control group"), number_format(e["control"], force_grouping=True)),
            (
                gettext("unreachable (no consent, contact or suppressed)"),
                number_format(e["unreachable"], force_grouping=True),
            ),
            (gettext("messages"), number_format(e["reachable"], force_grouping=True)),
            (gettext("SMS segments per message"), e.get("segments", "1")),
            (gettext("price per message"), money(e["price"])),
            (gettext("cost"), money(e["cost"])),
            (gettext("gateway"), e.get("gateway", "")),
        ]
        table = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        at = timezone.localtime(dt.datetime.fromisoformat(e["at"])).strftime("%Y-%m-%d %H:%M")
        return format_html(
            '<table class="estimate">{}</table><p class="help">{}</p>',
            table,
            gettext("as of %(at)s") % {"at": at},
        )

    @admin.display(description=_("progress"))
    def progress(self, obj):
        report = service.mailing_report(obj)
        return format_html(
            '<progress max="100" value="{}"></progress> {}% · {} <a href="{}">{}</a>',
            report["progress"],
            report["progress"],
            gettext("sent %(sent)s, delivered %(delivered)s, failed %(failed)s, waiting %(waiting)s")
            % report,
            reverse("admin:communications_mailing_report", args=[obj.pk]),
            gettext("Report"),
        )

    # --- lifecycle buttons ---------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("calendar/", view(self.calendar_view), name="communications_mailing_calendar"),
            path("<int:pk>/report/", view(self.report_view), name="communications_mailing_report"),
            path("<int:pk>/do/<str:action>/", view(self.action_view), name="communications_mailing_action"),
            *super().get_urls(),
        ]

    ACTIONS = {
        "estimate": (service.mailing_estimate, _("The preliminary cost is updated.")),
        "launch": (service.mailing_launch, _("The mailing is launched.")),
        "pause": (service.mailing_pause, _("The mailing is paused.")),
        "resume": (service.mailing_resume, _("The mailing goes on.")),
        "cancel": (service.mailing_cancel, _("The mailing is cancelled.")),
    }

    def action_view(self, request, pk, action):
        return require_POST(self._action)(request, pk, action)

    def _action(self, request, pk, action):
        mailing = get_object_or_404(Mailing, pk=pk)
        if not self.has_change_permission(request, mailing):
            raise PermissionDenied
        if action == "test":
            return self._test_send(request, mailing)
        if action not in self.ACTIONS:
            raise PermissionDenied
        fn, done = self.ACTIONS[action]
        try:
            fn(mailing=mailing)
        except ValidationError as exc:
            for message in exc.messages:
                messages.error(request, message)
        else:
            messages.success(request, done)
        return redirect(reverse("admin:communications_mailing_change", args=[pk]))

    def _test_send(self, request, mailing):
        from communications.admin.templates import member_lookup
        from communications.templating import RenderError

        member = member_lookup(request.POST.get("member", ""))
        if member is None and mailing.audience_id:
            member = mailing.audience.members.order_by("pk").first()
        try:
            sent = service.template_test_send(template=mailing.template, member=member)
        except RenderError as exc:
            messages.error(request, str(exc))
        else:
            if sent:
                messages.success(
                    request, gettext("The test message went to %(n)s watcher(s).") % {"n": len(sent)}
                )
            else:
                messages.warning(request, gettext("No active watcher has an address on this channel."))
        return redirect(reverse("admin:communications_mailing_change", args=[mailing.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["mailing"] = obj
        context["action_url"] = lambda name: (
            reverse("admin:communications_mailing_action", args=[obj.pk, name]) if obj else ""
        )
        if obj is not None:
            context["mailing_actions"] = [
                (name, label, reverse("admin:communications_mailing_action", args=[obj.pk, name]))
                for name, label, allowed in [
                    ("estimate", gettext("Estimate the cost"), obj.status == MailingStatus.DRAFT),
                    ("test", gettext("Send a test to watchers"), True),
                    ("launch", gettext("Launch"), obj.status == MailingStatus.DRAFT),
                    (
                        "pause",
                        gettext("Pause"),
                        obj.status
                        in (MailingStatus.SENDING, MailingStatus.SCHEDULED, MailingStatus.PREPARING),
                    ),
                    ("resume", gettext("Resume"), obj.status == MailingStatus.PAUSED),
                    (
                        "cancel",
                        gettext("Cancel"),
                        obj.status not in (MailingStatus.DONE, MailingStatus.CANCELLED, MailingStatus.DRAFT),
                    ),
                ]
                if allowed
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- report and calendar --------------------------------------------------------------------
    def report_view(self, request, pk):
        mailing = get_object_or_404(Mailing, pk=pk)
        if not self.has_view_permission(request, mailing):
            raise PermissionDenied
        if mailing.status == MailingStatus.SENDING:
            service.mailing_finish_if_idle(mailing=mailing)
        report = service.mailing_report(mailing)
        peak = max([max(v["sent"], v["delivered"]) for _h, v in report["timeline"]] or [1])
        timeline = [
            (timezone.localtime(hour), v, round(100 * v["sent"] / peak), round(100 * v["delivered"] / peak))
            for hour, v in report["timeline"]
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Report: %(name)s") % {"name": mailing.name},
            "mailing": mailing,
            "report": report,
            "cost": money(report["cost"]),
            "timeline": timeline,
            "messages_url": reverse("admin:communications_message_changelist")
            + f"?origin__exact={Origin.MAILING}&origin_id={mailing.pk}",
            "refresh": mailing.status in (MailingStatus.SENDING, MailingStatus.PREPARING),
            "opts": self.model._meta,
        }
        return render(request, "admin/communications/mailing/report.html", context)

    def calendar_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        try:
            year = int(request.GET.get("year", today.year))
            month = int(request.GET.get("month", today.month))
            first = dt.date(year, month, 1)
        except ValueError:
            first = today.replace(day=1)
        days = service.mailing_calendar(year=first.year, month=first.month)
        weeks = []
        for week in calendar.Calendar().monthdatescalendar(first.year, first.month):
            weeks.append(
                [
                    {
                        "date": d,
                        "in_month": d.month == first.month,
                        "entries": days.get(d, []),
                        "volume": sum(e["volume"] for e in days.get(d, [])),
                        "today": d == today,
                    }
                    for d in week
                ]
            )
        prev_month = (first - dt.timedelta(days=1)).replace(day=1)
        next_month = (first + dt.timedelta(days=32)).replace(day=1)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Mailing calendar"),
            "month": first,
            "weeks": weeks,
            "weekdays": [WEEKDAYS_ABBR[i] for i in range(7)],  # Monday first, translated
            "prev": prev_month,
            "next": next_month,
            "total": sum(sum(e["volume"] for e in v) for v in days.values()),
            "opts": self.model._meta,
        }
        return render(request, "admin/communications/mailing/calendar.html", context)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "mailings_count", "messages_count", "created_at")
    search_fields = ("name",)

    @admin.display(description=_("mailings"))
    def mailings_count(self, obj):
        return obj.mailings.count()

    @admin.display(description=_("messages"))
    def messages_count(self, obj):
        return obj.mailings.aggregate(n=Sum("prepared_count"))["n"] or 0


@admin.register(MailingCategory)
class MailingCategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "order", "active", "opted_out")
    list_editable = ("order", "active")
    search_fields = ("name", "code")
    prepopulated_fields = {"code": ("name",)}

    @admin.display(description=_("members opted out"))
    def opted_out(self, obj):
        return obj.opt_outs.count()


@admin.register(UnsubscribeReason)
class UnsubscribeReasonAdmin(admin.ModelAdmin):
    list_display = ("reason", "order", "active")
    list_editable = ("order", "active")

    @admin.display(description=_("reason"), ordering="text")
    def reason(self, obj):
        return str(obj)  # a seeded reason in the viewer's language


@admin.register(SubscriptionChange)
class SubscriptionChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "member", "channel", "category", "subscribed", "reason", "source")
    list_filter = ("subscribed", "channel", "category", "reason", "source")
    search_fields = ("member__phone", "member__email", "comment")
    date_hierarchy = "at"
    list_select_related = ("member", "category", "reason")


@admin.register(CategoryOptOut)
class CategoryOptOutAdmin(admin.ModelAdmin):
    list_display = ("member", "category", "created_at")
    list_filter = ("category",)
    search_fields = ("member__phone", "member__email")
    raw_id_fields = ("member",)
