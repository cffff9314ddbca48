"""Messages and the contact budget in the back office."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from communications import status as lifecycle
from communications.models import ChannelPolicy, DeviceToken, Message, MessageStatus, Suppression
from communications.services import messages_cancel
from loyalty.admin.mixins import CsvExportMixin, ReadOnlyAdminMixin


class MessageStatusInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = MessageStatus
    fields = ("moment", "status", "reason", "attempt")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description=_("at"))
    def moment(self, obj):
        # To the second, in the viewer's time zone: moves often come within one minute.
        return localtime(obj.at).strftime("%Y-%m-%d %H:%M:%S")


@admin.register(Message)
class MessageAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "status",
        "channel",
        "member_link",
        "address",
        "reason",
        "gateway",
        "attempts",
        "cost",
        "origin",
        "possible_duplicate",
    )
    list_filter = ("status", "channel", "gateway", "origin", "purpose", "possible_duplicate")
    search_fields = ("=ref", "=provider_message_id", "=address", "member__phone")
    date_hierarchy = "created_at"
    list_select_related = ("member", "gateway")
    show_full_result_count = False
    inlines = [MessageStatusInline]
    actions = ["export_csv", "cancel"]
    fieldsets = (
        (None, {"fields": ("ref", "member_link", "channel", "gateway", "address", "purpose", "category")}),
        (
            _("Origin"),
            {"fields": ("origin", "origin_id", "occurrence", "cascade", "cascade_step", "communication")},
        ),
        (_("Content"), {"fields": ("content",)}),
        (
            _("Delivery"),
            {
                "fields": (
                    "status",
                    "status_at",
                    "reason",
                    "attempts",
                    "next_attempt_at",
                    "possible_duplicate",
                    "provider_message_id",
                    "segments",
                    "cost",
                    "sent_at",
                    "delivered_at",
                    "opened_at",
                    "clicked_at",
                    "unsubscribed_at",
                )
            },
        ),
    )

    class Media:
        css = {"all": ["communications/admin.css"]}

    def get_readonly_fields(self, request, obj=None):
        return [f for group in self.fieldsets for f in group[1]["fields"]]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # A message is a record, not a form: no save buttons.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("member"))
    def member_link(self, obj):
        if not obj.member_id:
            return "—"
        url = reverse("admin:loyalty_member_change", args=[obj.member_id])
        return format_html('<a href="{}">{}</a>', url, obj.member)

    @admin.action(description=_("Cancel messages not yet sent"), permissions=["change"])
    def cancel(self, request, queryset):
        ids = list(queryset.filter(status__in=lifecycle.PENDING).values_list("id", flat=True))
        count = messages_cancel(ids=ids, reason=str(_("cancelled by %(user)s") % {"user": request.user}))
        self.message_user(
            request,
            ngettext("%(n)d message cancelled.", "%(n)d messages cancelled.", count) % {"n": count},
            messages.SUCCESS,
        )


@admin.register(Suppression)
class SuppressionAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("channel", "address", "reason", "note", "created_at")
    list_filter = ("channel", "reason")
    search_fields = ("=address",)
    date_hierarchy = "created_at"


@admin.register(DeviceToken)
class DeviceTokenAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = (
        "member",
        "app",
        "platform",
        "short_token",
        "active",
        "registered_at",
        "retired_at",
        "retired_reason",
    )
    list_filter = ("platform", "active", "app")
    search_fields = ("=token", "member__phone")
    raw_id_fields = ("member",)
    readonly_fields = ("retired_at", "retired_reason")

    @admin.display(description=_("token"))
    def short_token(self, obj):
        return f"{obj.token[:16]}…"


@admin.register(ChannelPolicy)
class ChannelPolicyAdmin(admin.ModelAdmin):
    list_display = ("channel", "quiet_start", "quiet_end", "daily_cap", "weekly_cap")
    fields = ("channel", "quiet_start", "quiet_end", "daily_cap", "weekly_cap")

    def get_readonly_fields(self, request, obj=None):
        return ("channel",) if obj else ()
