"""Message templates in the back office: per-channel fields, the metavariable list, a
live preview with a chosen member's real data (email side by side at phone and desktop
widths, SMS length and segments), and a test send to the watchers."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from communications.models import CHANNEL_PARTS, MessageTemplate, Watcher
from communications.models.templates import LITERAL_PARTS
from communications.services.mailings import template_test_send
from communications.services.rendering import content_for_channel
from communications.templating import (
    RenderError,
    metavariables,
    render_for_member,
    render_parts,
    template_record_errors,
)
from gateways.providers._sms import sms_length
from loyalty.models import Member

ALL_PART_FIELDS = sorted({field for parts in CHANNEL_PARTS.values() for field in parts.values()})


def member_lookup(value: str) -> Member | None:
    """A member by id, phone, email or card number, as typed in a preview or test form."""
    from loyalty.services.contacts import phone_search_key

    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit() and len(value) < 10:
        return Member.objects.filter(pk=int(value)).first()
    if "@" in value:
        return Member.objects.filter(email__iexact=value).first()
    phone = phone_search_key(value)
    if phone:
        found = Member.objects.filter(phone=phone).first()
        if found:
            return found
    return Member.objects.filter(cards__number=value).first()


def preview_data(template: MessageTemplate, member: Member | None) -> dict:
    """The template rendered for ``member`` (example values without one), per channel."""
    parts = template.parts()
    extra = {"event": {}, "offer": {}, "unsubscribe_url": "#unsubscribe", "view_online_url": "#view"}
    try:
        if member is not None:
            rendered = render_for_member(parts, member.pk, extra)
        else:
            rendered = render_parts(parts, {**metavariables.examples(), **extra})
    except RenderError as exc:
        return {"error": str(exc)}
    content = content_for_channel(template.channel, template.channel, rendered)
    data: dict = {"content": content}
    if template.channel in ("sms", "viber", "social"):
        length = sms_length(content.get("text", ""))
        data["sms"] = {
            "characters": len(content.get("text", "")),
            "encoding": "GSM-7" if length.encoding == "gsm7" else "UCS-2",
            "segments": length.segments,
            "per_segment": length.per_segment,
        }
    return data


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["name", "channel", "description", *ALL_PART_FIELDS]
        widgets = {
            "text": forms.Textarea(attrs={"rows": 5, "data-live": "1"}),
            "html": forms.Textarea(attrs={"rows": 14, "class": "vLargeTextField", "data-live": "1"}),
        }


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ("name", "channel", "description", "updated_at")
    list_filter = ("channel",)
    search_fields = ("name", "text", "subject")
    change_form_template = "admin/communications/messagetemplate/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "channel", "description")}),
        (
            _("Content"),
            {
                "fields": tuple(f for f in ALL_PART_FIELDS),
                "description": _("Only the fields of the chosen channel are used."),
            },
        ),
    )

    def get_fieldsets(self, request, obj=None):
        order = [
            "subject", "preheader", "title", "text", "html", "image", "link",
            "button_text", "button_url", "social_template_id",
        ]  # fmt: skip
        return ((None, {"fields": ("name", "channel", "description")}), (_("Content"), {"fields": order}))

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["metavariables"] = sorted(metavariables, key=lambda v: (v.group, v.name))
        context["channel_fields"] = {ch: sorted(parts.values()) for ch, parts in CHANNEL_PARTS.items()}
        context["preview_url"] = reverse("admin:communications_messagetemplate_preview")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.preview_view), name="communications_messagetemplate_preview"),
            path("<int:pk>/test/", view(self.test_view), name="communications_messagetemplate_test"),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """Render the form's current fields (unsaved edits included) for a member."""
        if not self.has_view_permission(request):
            return JsonResponse({"error": gettext("Not allowed.")}, status=403)
        data = request.POST if request.method == "POST" else request.GET
        template = MessageTemplate(
            channel=data.get("channel") or "sms",
            **{field: data.get(field, "") for field in ALL_PART_FIELDS},
        )
        if data.get("pk") and not any(data.get(f) for f in ALL_PART_FIELDS):
            template = get_object_or_404(MessageTemplate, pk=data["pk"])
        member = member_lookup(data.get("member", ""))
        errors = template_record_errors(template)
        out = preview_data(template, member) if not errors else {}
        out["errors"] = {field: [str(e) for e in errs] for field, errs in errors.items()}
        out["member"] = str(member) if member else ""
        if data.get("member") and member is None:
            out["errors"]["member"] = [gettext("No member found by this id, phone, email or card number.")]
        return JsonResponse(out)

    def test_view(self, request, pk):
        template = get_object_or_404(MessageTemplate, pk=pk)
        if not self.has_change_permission(request, template):
            return redirect("admin:index")
        form = TemplateTestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            member = form.cleaned_data["member_obj"]
            try:
                sent = template_test_send(
                    template=template, member=member, watchers=form.cleaned_data["watchers"]
                )
            except (RenderError, ValidationError) as exc:
                form.add_error(None, str(exc))
            else:
                if not sent:
                    form.add_error(
                        "watchers", gettext("None of the chosen watchers has an address on this channel.")
                    )
                else:
                    messages.success(
                        request,
                        ngettext(
                            "The test message went to %(n)d watcher.",
                            "The test message went to %(n)d watchers.",
                            len(sent),
                        )
                        % {"n": len(sent)},
                    )
                    return redirect(reverse("admin:communications_messagetemplate_change", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Send a test of %(template)s") % {"template": template},
            "object": template,
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "admin/communications/messagetemplate/test_send.html", context)


class TemplateTestForm(forms.Form):
    member = forms.CharField(
        label=_("with the data of member"),
        required=False,
        help_text=_("Id, phone, email or card number. Empty: example values."),
    )
    watchers = forms.ModelMultipleChoiceField(
        label=_("watchers"),
        queryset=Watcher.objects.filter(active=True),
        widget=forms.CheckboxSelectMultiple,
    )

    def clean_member(self):
        value = self.cleaned_data["member"]
        self.cleaned_data["member_obj"] = member_lookup(value)
        if value and self.cleaned_data["member_obj"] is None:
            raise ValidationError(gettext("No member found by this id, phone, email or card number."))
        return value


class WatcherForm(forms.ModelForm):
    class Meta:
        model = Watcher
        fields = ["name", "phone", "email", "push_token", "active"]

    def clean_phone(self):
        from loyalty.services.contacts import phone_parse

        value = self.cleaned_data["phone"]
        return phone_parse(value).e164 if value else ""

    def clean_email(self):
        from loyalty.services.contacts import email_parse

        value = self.cleaned_data["email"]
        return email_parse(value) if value else ""


@admin.register(Watcher)
class WatcherAdmin(admin.ModelAdmin):
    list_display = ("name", "phone", "email", "active")
    list_filter = ("active",)
    search_fields = ("name", "phone", "email")

    form = WatcherForm


__all__ = ["LITERAL_PARTS", "MessageTemplateAdmin", "WatcherAdmin", "member_lookup", "preview_data"]
