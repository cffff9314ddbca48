"""Members in the back office: list with search by phone in any format, card, email or
name; a member page with profile, contact quality, cards, balances, point history,
receipts and events; manual bonus adjustment; contact-quality summary."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty import selectors
from loyalty.admin.mixins import CsvExportMixin
from loyalty.admin.panels import member_panels
from loyalty.models import (
    ContactChannel,
    Currency,
    CustomField,
    Member,
    Status,
)
from loyalty.services import ledger
from loyalty.services.contacts import contacts_normalise, phone_region_name
from loyalty.services.errors import DomainError
from loyalty.services.members import (
    PROFILE_FIELDS,
    consent_set,
    custom_fields_clean,
    member_block,
    member_create,
    member_set_status,
    member_unblock,
    member_update,
)

CONSENT_FIELDS = {f"consent_{c.value}": c for c in ContactChannel}
PROFILE_FORM_FIELDS = list(PROFILE_FIELDS)


class MemberAdminForm(forms.ModelForm):
    """Contacts are normalised here exactly as the API and import do; a bad phone or
    email is refused on its own field."""

    consent_sms = forms.BooleanField(label=_("SMS"), required=False)
    consent_email = forms.BooleanField(label=_("Email"), required=False)
    consent_push = forms.BooleanField(label=_("Push"), required=False)
    consent_viber = forms.BooleanField(label=_("Viber"), required=False)
    consent_social = forms.BooleanField(label=_("Social networks"), required=False)

    class Meta:
        model = Member
        fields = [*PROFILE_FORM_FIELDS, "preferred_categories", "state", "blocked_reason", "status"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial.setdefault("phone", self.instance.phone or self.instance.phone_raw)
            self.initial.setdefault("email", self.instance.email or self.instance.email_raw)
            consents = selectors.member_consents(member=self.instance)
        else:
            consents = {}
        for name, channel in CONSENT_FIELDS.items():
            current = consents.get(channel)
            self.initial[name] = bool(current and current.granted)
        if "custom_fields" in self.fields:
            fields = ", ".join(
                f"{f.code} ({f.get_kind_display()})" for f in CustomField.objects.filter(active=True)
            )
            self.fields["custom_fields"].help_text = _("Fields of the managed field set: %(fields)s") % {
                "fields": fields or "—"
            }

    def clean(self):
        cleaned = super().clean()
        data = contacts_normalise(
            phone=cleaned.get("phone", ""),
            email=cleaned.get("email", ""),
            city=cleaned.get("city", ""),
            postal_address=cleaned.get("postal_address", ""),
        )
        for field, message in data.errors().items():
            self.add_error(field, message)
        if data.phone and Member.objects.filter(phone=data.phone).exclude(pk=self.instance.pk).exists():
            self.add_error("phone", _("This phone number belongs to another member."))
        try:
            cleaned["custom_fields"] = custom_fields_clean(cleaned.get("custom_fields") or {})
        except ValidationError as exc:
            self.add_error("custom_fields", "; ".join(f"{k}: {v[0]}" for k, v in exc.message_dict.items()))
        return cleaned


@admin.register(Member)
class MemberAdmin(CsvExportMixin, admin.ModelAdmin):
    form = MemberAdminForm
    change_form_template = "admin/loyalty/member/change_form.html"
    change_list_template = "admin/loyalty/member/change_list.html"
    list_display = (
        "full_name",
        "phone",
        "email",
        "city",
        "state",
        "status",
        "phone_status",
        "email_status",
        "registered_at",
    )
    csv_fields = (
        "external_id",
        "last_name",
        "first_name",
        "middle_name",
        "gender",
        "birth_date",
        "phone",
        "phone_status",
        "phone_operator",
        "email",
        "email_status",
        "city",
        "time_zone",
        "state",
        "status",
        "registered_at",
        "registration_channel",
    )
    list_filter = (
        "state",
        "status",
        "gender",
        "registration_channel",
        "phone_status",
        "email_status",
        "time_zone",
        "registered_at",
    )
    search_fields = ("last_name", "first_name", "email", "phone", "external_id")
    search_help_text = _("Phone in any format, card number, email, external id or name.")
    list_select_related = ("status",)
    autocomplete_fields = ("referrer",)
    filter_horizontal = ("preferred_categories",)
    readonly_fields = (
        "phone_raw",
        "phone_status",
        "phone_operator",
        "phone_region_label",
        "email_raw",
        "email_status",
        "time_zone_source",
        "referral_code",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (
            None,
            {"fields": ("external_id", ("last_name", "first_name", "middle_name"), ("gender", "birth_date"))},
        ),
        (
            _("Contacts"),
            {
                "fields": (
                    ("phone", "phone_raw"),
                    ("phone_status", "phone_operator", "phone_region_label"),
                    ("email", "email_raw", "email_status"),
                    "postal_address",
                    "city",
                    ("time_zone", "time_zone_source"),
                    "language",
                )
            },
        ),
        (_("Consents"), {"fields": tuple(CONSENT_FIELDS)}),
        (_("Questionnaire"), {"fields": ("preferred_categories", "children", "pets", "custom_fields")}),
        (
            _("Program"),
            {
                "fields": (
                    ("registered_at", "registration_channel"),
                    ("state", "blocked_reason"),
                    "status",
                    ("referral_code", "referrer"),
                    ("created_at", "updated_at"),
                )
            },
        ),
    )

    actions = ["export_csv", "block_members", "unblock_members"]

    def get_readonly_fields(self, request, obj=None):
        # Blocking goes through its action (reason, event); the state is shown, not edited.
        return (*self.readonly_fields, "state", "blocked_reason") if obj else self.readonly_fields

    @admin.action(description=_("Block selected members"), permissions=["change"])
    def block_members(self, request, queryset):
        reason = gettext("Blocked in the back office by %(user)s") % {"user": request.user}
        for member in queryset:
            member_block(member=member, reason=reason)
        self.message_user(request, gettext("%(count)d member(s) blocked.") % {"count": queryset.count()})

    @admin.action(description=_("Unblock selected members"), permissions=["change"])
    def unblock_members(self, request, queryset):
        reason = gettext("Unblocked in the back office by %(user)s") % {"user": request.user}
        for member in queryset:
            member_unblock(member=member, reason=reason)
        self.message_user(request, gettext("%(count)d member(s) unblocked.") % {"count": queryset.count()})

    @admin.display(description=_("phone region"))
    def phone_region_label(self, obj: Member) -> str:
        return phone_region_name(obj.phone, obj.phone_region) or "—"

    @admin.display(description=_("name"), ordering="last_name")
    def full_name(self, obj: Member) -> str:
        return obj.full_name or "—"

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return selectors.members_search(queryset, search_term), True

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in PROFILE_FORM_FIELDS if f in form.cleaned_data}
        if change:
            changed = {f: v for f, v in data.items() if f in form.changed_data}
            member = member_update(member=obj, **changed) if changed else obj
            member.state, member.blocked_reason = (
                form.cleaned_data["state"],
                form.cleaned_data["blocked_reason"],
            )
            member.save(update_fields=["state", "blocked_reason", "updated_at"])
        else:
            data = {k: v for k, v in data.items() if v not in (None, "")}
            member = member_create(state=form.cleaned_data["state"], **data)
        status = form.cleaned_data.get("status")
        if member.status_id != (status.pk if status else None):
            member_set_status(
                member=member,
                status=status,
                reason=gettext("Set in the back office"),
                changed_by=request.user,
            )
        for name, channel in CONSENT_FIELDS.items():
            if name in form.changed_data or not change:
                if not change and not form.cleaned_data[name]:
                    continue
                consent_set(
                    member=member,
                    channel=channel,
                    granted=form.cleaned_data[name],
                    source="back_office",
                    changed_by=request.user,
                )
        form.instance = member
        obj.pk = member.pk

    def save_related(self, request, form, formsets, change):
        form.instance.preferred_categories.set(form.cleaned_data.get("preferred_categories", []))
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        member = self.get_object(request, object_id)
        extra = extra_context or {}
        if member is not None:
            extra.update(
                {
                    "balances": selectors.member_balances(member=member),
                    "cards": selectors.member_cards(member=member),
                    "ledger_entries": selectors.member_ledger_history(member=member),
                    "receipts": selectors.member_receipts(member=member),
                    "events": selectors.member_events(member=member),
                    "consents": selectors.member_consents(member=member),
                    "status_changes": member.status_changes.select_related("status_from", "status_to")[:20],
                    "can_adjust": request.user.has_perm("loyalty.adjust_bonuses"),
                    "extra_panels": [p for p in (panel(member) for panel in member_panels) if p],
                }
            )
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="loyalty_member_adjust",
            ),
            path(
                "contact-quality/",
                self.admin_site.admin_view(self.quality_view),
                name="loyalty_member_quality",
            ),
            *super().get_urls(),
        ]

    def adjust_view(self, request, object_id):
        """Manual accrual or deduction with a required reason (operators, admins)."""
        if not request.user.has_perm("loyalty.adjust_bonuses"):
            raise PermissionDenied
        member = get_object_or_404(Member, pk=object_id)
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            account = ledger.account_get_or_create(member=member, currency=form.cleaned_data["currency"])
            try:
                ledger.bonus_adjust(
                    account=account,
                    amount=form.cleaned_data["amount"],
                    operator=request.user,
                    reason=form.cleaned_data["reason"],
                    expires_at=form.cleaned_data.get("expires_at"),
                )
            except DomainError as exc:
                form.add_error("amount", str(exc))
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                self.message_user(request, gettext("The balance was adjusted."), messages.SUCCESS)
                return redirect(reverse("admin:loyalty_member_change", args=[member.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Adjust bonuses: %(member)s") % {"member": member},
            "member": member,
            "form": form,
            "opts": self.model._meta,
            "balances": selectors.member_balances(member=member),
        }
        return TemplateResponse(request, "admin/loyalty/member/adjust.html", context)

    def quality_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": _("Contact data quality"),
            "rows": selectors.contact_quality_summary(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/loyalty/member/quality.html", context)


class AdjustmentForm(forms.Form):
    currency = forms.ModelChoiceField(label=_("Currency"), queryset=Currency.objects.all(), empty_label=None)
    amount = forms.DecimalField(
        label=_("Amount"),
        max_digits=14,
        decimal_places=2,
        help_text=_("Positive to add points, negative to take them away."),
    )
    reason = forms.CharField(label=_("Reason"), max_length=255)
    expires_at = forms.DateTimeField(
        label=_("Expires at"), required=False, help_text=_("For added points; empty: never.")
    )

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise ValidationError(_("The adjustment cannot be zero."))
        return amount


@admin.register(Status)
class StatusAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("name", "code", "rank")
    search_fields = ("name", "code")


@admin.register(CustomField)
class CustomFieldAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("label", "code", "kind", "required", "active", "order")
    list_filter = ("kind", "required", "active")
    search_fields = ("label", "code")
