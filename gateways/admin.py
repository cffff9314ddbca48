"""Gateway settings in the back office: provider, its settings with credentials stored
encrypted (never shown back), sender, price, rate limit, priority; a test message; the
callback address to give the provider; cascades."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from gateways.crypto import secrets_decrypt
from gateways.models import Cascade, CascadeStep, Gateway
from gateways.providers import providers
from gateways.services import callback_url, gateway_save
from loyalty.admin.mixins import CsvExportMixin

PREFIX = "cfg_"


class GatewayForm(forms.ModelForm):
    provider = forms.ChoiceField(label=capfirst(_("provider")), choices=())

    class Meta:
        model = Gateway
        fields = [
            "name",
            "provider",
            "sender",
            "price",
            "price_unit",
            "rate_limit",
            "priority",
            "max_attempts",
            "enabled",
        ]

    def __init__(self, *args, provider_key: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [("", "---------"), *providers.choices()]
        self.provider_key = provider_key if provider_key in providers else ""
        self.config_names: list[str] = []
        if not self.provider_key:
            return
        provider = providers.get(self.provider_key)
        self.fields["provider"].initial = self.provider_key
        stored = secrets_decrypt(self.instance.secrets_encrypted) if self.instance.pk else {}
        for name, field in provider.config_form.base_fields.items():
            field = field.__class__(**_field_kwargs(field))
            if name in provider.sensitive:
                field.widget = forms.PasswordInput(render_value=False)
                if stored.get(name):
                    field.required = False
                    field.help_text = _("Stored encrypted. Leave empty to keep the current value.")
            elif (
                self.instance.pk
                and self.instance.provider == self.provider_key
                and name in self.instance.config
            ):
                field.initial = self.instance.config[name]
            field.label = capfirst(field.label)
            self.fields[PREFIX + name] = field
            self.config_names.append(name)

    def clean(self):
        cleaned = super().clean()
        chosen = cleaned.get("provider")
        if chosen and chosen != self.provider_key:
            raise ValidationError(_("Fill in the settings of the chosen provider below, then save again."))
        return cleaned


def _field_kwargs(field: forms.Field) -> dict:
    kwargs = {
        "required": field.required,
        "label": field.label,
        "initial": field.initial,
        "help_text": field.help_text,
        "widget": field.widget,
    }
    for attr in ("choices", "min_value", "max_value", "max_length", "assume_scheme"):
        if hasattr(field, attr) and getattr(field, attr) is not None:
            kwargs[attr] = getattr(field, attr)
    return kwargs


class TestMessageForm(forms.Form):
    to = forms.CharField(
        label=_("send to"),
        max_length=512,
        help_text=_("Phone in international format, email address or device token, as the channel needs."),
    )
    text = forms.CharField(label=_("text"), required=False, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Gateway)
class GatewayAdmin(CsvExportMixin, admin.ModelAdmin):
    form = GatewayForm
    list_display = (
        "name",
        "provider_label",
        "channel",
        "sender",
        "price",
        "price_unit",
        "rate_limit",
        "priority",
        "enabled",
    )
    list_filter = ("channel", "enabled", "provider")
    search_fields = ("name", "sender")
    readonly_fields = ("callback_address",)
    change_form_template = "admin/gateways/gateway/change_form.html"

    def _provider_key(self, request, obj=None) -> str:
        return request.POST.get("provider") or request.GET.get("provider") or (obj.provider if obj else "")

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["fields"] = GatewayForm.Meta.fields  # provider settings are added by the form itself
        base = super().get_form(request, obj, change=change, **kwargs)
        key = self._provider_key(request, obj)

        class BoundForm(base):
            def __init__(self, *args, **kw):
                super().__init__(*args, provider_key=key, **kw)

        return BoundForm

    def get_fieldsets(self, request, obj=None):
        key = self._provider_key(request, obj)
        config_names = list(providers.get(key).config_form.base_fields) if key in providers else []
        fieldsets = [
            (None, {"fields": ["name", "provider", "enabled", "priority"]}),
            (_("Sending"), {"fields": ["sender", "price", "price_unit", "rate_limit", "max_attempts"]}),
        ]
        if config_names:
            fieldsets.append((_("Provider settings"), {"fields": [PREFIX + n for n in config_names]}))
        if obj and obj.pk:
            fieldsets.append((_("Delivery statuses"), {"fields": ["callback_address"]}))
        return fieldsets

    @admin.display(description=_("callback address"))
    def callback_address(self, obj):
        if not obj.pk:
            return "—"
        return format_html(
            "<code>{}</code><div class='help'>{}</div>",
            callback_url(obj),
            _("Give this address to the provider for status callbacks; it contains this gateway's secret."),
        )

    def save_model(self, request, obj, form, change):
        provider = providers.get(form.provider_key)
        config, secrets = {}, {}
        for name in form.config_names:
            value = form.cleaned_data.get(PREFIX + name)
            (secrets if name in provider.sensitive else config)[name] = value
        obj.provider = form.provider_key
        try:
            gateway_save(gateway=obj, config=config, secrets=secrets)
        except ValidationError as exc:  # the form validated these already; keep the message
            messages.error(request, "; ".join(exc.messages))
            raise

    def get_urls(self):
        return [
            path("<int:pk>/test/", self.admin_site.admin_view(self.test_view), name="gateways_gateway_test"),
            *super().get_urls(),
        ]

    def test_view(self, request, pk):
        from communications.services import dispatch_batch, test_message_send

        gateway = get_object_or_404(Gateway, pk=pk)
        if not self.has_change_permission(request, gateway):
            return redirect("admin:index")
        form = TestMessageForm(request.POST or None)
        message = None
        if request.method == "POST" and form.is_valid():
            text = form.cleaned_data["text"]
            try:
                message = test_message_send(gateway=gateway, to=form.cleaned_data["to"], text=text)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
                message = None
        if message is not None:
            if message.status == "queued":
                dispatch_batch(gateway=gateway)  # send it now so the marketer sees the answer
            message.refresh_from_db()
            messages.info(
                request,
                _("Test message #%(id)s: %(status)s %(reason)s")
                % {"id": message.pk, "status": message.get_status_display(), "reason": message.reason},
            )
            return redirect(reverse("admin:communications_message_change", args=[message.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Send a test message through %(gateway)s") % {"gateway": gateway},
            "gateway": gateway,
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "admin/gateways/gateway/test_message.html", context)


class CascadeStepInline(admin.TabularInline):
    model = CascadeStep
    extra = 2
    fields = ("order", "channel", "gateway", "wait_minutes")


@admin.register(Cascade)
class CascadeAdmin(admin.ModelAdmin):
    list_display = ("name", "steps_summary")
    inlines = [CascadeStepInline]
    search_fields = ("name",)

    @admin.display(description=_("steps"))
    def steps_summary(self, obj):
        return " → ".join(str(step.get_channel_display()) for step in obj.steps.all())
