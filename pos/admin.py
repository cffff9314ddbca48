"""API keys in the back office: creating one shows its secret once; revoking stops it."""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from pos.models import ApiKey
from pos.services import api_key_create, api_key_revoke


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("name", "partner", "point_of_sale")

    def clean(self):
        cleaned = super().clean()
        pos, partner = cleaned.get("point_of_sale"), cleaned.get("partner")
        if pos is not None and partner is not None and pos.partner_id != partner.pk:
            self.add_error("point_of_sale", _("The point of sale belongs to another partner."))
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "partner", "point_of_sale", "active", "created_at", "last_used_at")
    list_filter = ("active", "partner")
    search_fields = ("name", "prefix", "partner__name")
    list_select_related = ("partner", "point_of_sale")
    readonly_fields = ("prefix", "active", "created_at", "last_used_at")
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "partner", "point_of_sale")
        return ("name", "partner", "point_of_sale", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "partner", "point_of_sale") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = api_key_create(name=obj.name, partner=obj.partner, point_of_sale=obj.point_of_sale)
        obj.pk = issued.api_key.pk
        obj.prefix = issued.api_key.prefix
        self.message_user(
            request,
            gettext(
                "Copy the key now: it is shown only this once (only its hash is kept). "
                "The client sends the header Authorization: Api-Key %(token)s"
            )
            % {"token": issued.token},
            messages.WARNING,
        )

    @admin.action(description=_("Revoke selected API keys"), permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        for key in queryset.filter(active=True):
            api_key_revoke(api_key=key)
            count += 1
        self.message_user(request, gettext("%(count)d key(s) revoked.") % {"count": count}, messages.SUCCESS)
