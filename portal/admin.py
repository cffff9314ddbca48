"""The personal account in the back office: targeted content with a phone-width preview
and its effective display window; the one-time codes and the mobile app's tokens,
read-only (codes and tokens are shown without their hashes, addresses partly masked)."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Q
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from loyalty.admin.mixins import ReadOnlyAdminMixin
from loyalty.models import Member
from loyalty.selectors import members_search
from portal.models import LoginCode, MemberToken, TargetedContent
from portal.services.auth import address_parse, token_revoke
from portal.services.content import window


def local(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def address_mask(address: str) -> str:
    """Enough of a phone or email to recognise it, not enough to write to it."""
    if "@" in address:
        name, _at, domain = address.partition("@")
        return f"{name[:2]}***@{domain}"
    if len(address) <= 6:
        return "*" * len(address)
    return f"{address[:5]}{'*' * (len(address) - 7)}{address[-2:]}"


PREVIEW_FIELDS = ("title", "text", "link", "link_label")


# --- targeted content ------------------------------------------------------------------------------


class TargetedContentForm(forms.ModelForm):
    link = forms.URLField(label=_("link"), required=False, max_length=200, assume_scheme="https")

    class Meta:
        model = TargetedContent
        fields = [
            "title", "text", "image", "link", "link_label", "in_account", "in_app", "audience", "offer",
            "shown_from", "lead_days", "shown_until", "order", "published",
        ]  # fmt: skip
        widgets = {"text": forms.Textarea(attrs={"rows": 5})}

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("in_account") and not cleaned.get("in_app"):
            self.add_error(
                "in_account",
                gettext("Choose where it is shown: the personal account, the mobile app or both."),
            )
        if cleaned.get("link_label") and not cleaned.get("link"):
            self.add_error("link", gettext("Give the address the button leads to, or leave its label empty."))
        start, end = cleaned.get("shown_from"), cleaned.get("shown_until")
        if start and end and end <= start:
            self.add_error("shown_until", gettext("The end of the display must come after its start."))
        elif "lead_days" not in self.errors:
            draft = TargetedContent(
                shown_from=start,
                shown_until=end,
                lead_days=cleaned.get("lead_days") or 0,
                offer=cleaned.get("offer"),
            )
            first, last = window(draft)
            if first and last and last <= first:
                self.add_error(
                    "shown_from" if start else "lead_days",
                    gettext("The advertised offer ends before the display starts: nobody would see it."),
                )
        return cleaned


class PlacementFilter(admin.SimpleListFilter):
    title = _("placement")
    parameter_name = "placement"

    def lookups(self, request, model_admin):
        return [("account", _("personal account")), ("app", _("mobile app"))]

    def queryset(self, request, queryset):
        if self.value() == "account":
            return queryset.filter(in_account=True)
        if self.value() == "app":
            return queryset.filter(in_app=True)
        return queryset


class AudienceKindFilter(admin.SimpleListFilter):
    title = _("shown to")
    parameter_name = "to"

    def lookups(self, request, model_admin):
        return [("everyone", _("every member")), ("audience", _("a target audience (personal offer)"))]

    def queryset(self, request, queryset):
        if self.value() == "everyone":
            return queryset.filter(audience__isnull=True)
        if self.value() == "audience":
            return queryset.filter(audience__isnull=False)
        return queryset


@admin.register(TargetedContent)
class TargetedContentAdmin(admin.ModelAdmin):
    form = TargetedContentForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("title", "placement", "shown_to", "display_window", "offer", "order", "published")
    list_editable = ("order", "published")
    list_filter = ("published", PlacementFilter, AudienceKindFilter, "audience")
    list_select_related = ("audience", "offer")
    search_fields = ("title", "text")
    autocomplete_fields = ("audience", "offer")
    readonly_fields = ("effective_window",)
    change_form_template = "admin/portal/targetedcontent/change_form.html"
    fieldsets = (
        (None, {"fields": ("title", "text", "image", "link", "link_label")}),
        (_("Where and to whom"), {"fields": ("in_account", "in_app", "audience", "offer")}),
        (
            _("When"),
            {"fields": ("shown_from", "lead_days", "shown_until", "effective_window", "order", "published")},
        ),
    )

    @admin.display(description=_("placement"))
    def placement(self, obj):
        places = [
            label for on, label in ((obj.in_account, gettext("account")), (obj.in_app, gettext("app"))) if on
        ]
        return ", ".join(places) or "—"

    @admin.display(description=_("shown to"), ordering="audience__name")
    def shown_to(self, obj):
        return obj.audience or gettext("every member")

    @admin.display(description=_("display window"))
    def display_window(self, obj):
        start, end = window(obj)
        return f"{local(start) if start else '…'} – {local(end) if end else '…'}"

    @admin.display(description=_("effective display window"))
    def effective_window(self, obj):
        if obj is None or obj.pk is None:
            return gettext("Shown after saving.")
        start, end = window(obj)
        parts = [
            gettext("from %(at)s") % {"at": local(start)} if start else gettext("from publication"),
            gettext("until %(at)s") % {"at": local(end)} if end else gettext("until unpublished"),
        ]
        derived = obj.offer_id and (obj.shown_from is None or obj.shown_until is None)
        note = (
            gettext("Derived from the advertised offer where a date of its own is empty.") if derived else ""
        )
        return format_html('{}<p class="help">{}</p>', " ".join(parts), note)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["preview"] = self._preview(context["adminform"].form, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _preview(self, form, obj) -> dict:
        """The card as the form holds it (unsaved edits included); on a read-only page, as saved."""
        source = {name: form[name].value() for name in PREVIEW_FIELDS if name in form.fields}
        if not source and obj is not None:
            source = {name: getattr(obj, name) for name in PREVIEW_FIELDS}
        link = (source.get("link") or "").strip()
        image_url = ""
        if obj is not None and obj.image:
            image_url = reverse("admin:portal_targetedcontent_image", args=[obj.pk])
        return {
            "title": source.get("title") or "",
            "text": source.get("text") or "",
            # Only a web address becomes a link: an unsaved "javascript:" never runs here.
            "link": link if link.lower().startswith(("https://", "http://")) else "",
            "link_label": source.get("link_label") or gettext("More"),
            "image_url": image_url,
        }

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/image/", view(self.image_view), name="portal_targetedcontent_image"),
            *super().get_urls(),
        ]

    def image_view(self, request, pk):
        """The stored image for the preview (media files are not served publicly)."""
        content = get_object_or_404(TargetedContent, pk=pk)
        if not self.has_view_permission(request, content):
            raise PermissionDenied
        if not content.image:
            raise Http404
        try:
            return FileResponse(content.image.open("rb"))
        except FileNotFoundError:
            raise Http404 from None


# --- codes and tokens ------------------------------------------------------------------------------


@admin.register(LoginCode)
class LoginCodeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "channel", "address_shown", "purpose", "member", "ip", "attempts", "state")
    list_filter = ("channel", "purpose")
    list_select_related = ("member",)
    search_fields = ("address",)
    search_help_text = _("The full phone number or email the code went to.")
    date_hierarchy = "created_at"
    fields = (
        "created_at", "channel", "address_shown", "purpose", "member", "ip",
        "attempts", "expires_at", "used_at",
    )  # fmt: skip
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        # Exact addresses only: the list must not become a way to read them out by prefix.
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            address = address_parse(term).value
        except ValidationError:
            return queryset.none(), False
        return queryset.filter(address=address), False

    @admin.display(description=_("address"))
    def address_shown(self, obj):
        return address_mask(obj.address)

    @admin.display(description=_("state"))
    def state(self, obj):
        if obj.used_at:
            return gettext("used")
        if obj.expires_at <= timezone.now():
            return gettext("expired")
        return gettext("valid")


@admin.register(MemberToken)
class MemberTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("member_link", "name", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("member",)
    search_fields = ("member__phone", "member__email", "name")
    search_help_text = _("The member's phone, email, card number or name, or the device.")
    fields = ("member_link", "name", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        members = members_search(Member.objects.all(), term).values("pk")
        return queryset.filter(Q(member__in=members) | Q(name__icontains=term)), False

    @admin.display(description=_("member"), ordering="member")
    def member_link(self, obj):
        url = reverse("admin:loyalty_member_change", args=[obj.member_id])
        return format_html('<a href="{}">{}</a>', url, obj.member)

    def has_revoke_permission(self, request) -> bool:
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(description=_("Revoke the selected tokens (the app signs out)"), permissions=["revoke"])
    def revoke(self, request, queryset):
        now = timezone.now()
        tokens = list(queryset.filter(revoked_at__isnull=True))
        for token in tokens:
            token_revoke(token=token, now=now)
        self.message_user(
            request,
            ngettext("%(n)d token is revoked.", "%(n)d tokens are revoked.", len(tokens))
            % {"n": len(tokens)},
        )
