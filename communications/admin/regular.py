"""Regular notifications in the back office: the three tasks are set up once (no adding or
deleting), edited in place, and can be run on the spot."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.http import HttpResponseRedirect
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from communications.models import MessageTemplate, RegularKind, RegularTask
from communications.services.regular import regular_run
from gateways.models import CHANNEL_CHOICES

CHANNEL_LABELS = dict(CHANNEL_CHOICES)
SLOT_LABELS = [
    _("First channel"),
    _("Second channel"),
    _("Third channel"),
    _("Fourth channel"),
    _("Fifth channel"),
]
SLOTS = [f"channel_{i + 1}" for i in range(len(SLOT_LABELS))]
LEFT_OUT = {"no template": _("no template"), "no gateway": _("no enabled gateway")}


def _slot(label) -> forms.ChoiceField:
    return forms.ChoiceField(label=label, choices=[("", "—"), *CHANNEL_CHOICES], required=False)


class TemplateChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: MessageTemplate) -> str:
        return f"{obj.get_channel_display()}: {obj.name}"


class RegularTaskForm(forms.ModelForm):
    """The channels in order of preference as one choice per place; the templates must be
    for those channels, one each."""

    templates = TemplateChoices(
        queryset=MessageTemplate.objects.order_by("channel", "name"),
        required=False,
        label=_("Templates"),
        widget=FilteredSelectMultiple(_("templates"), is_stacked=False),
        help_text=_("One per channel; a channel without a template is passed over."),
    )

    channel_1 = _slot(SLOT_LABELS[0])
    channel_2 = _slot(SLOT_LABELS[1])
    channel_3 = _slot(SLOT_LABELS[2])
    channel_4 = _slot(SLOT_LABELS[3])
    channel_5 = _slot(SLOT_LABELS[4])

    class Meta:
        model = RegularTask
        fields = [
            "enabled",
            "send_time",
            "days_before",
            "min_amount",
            "currency",
            "templates",
            "category",
            "bonus_amount",
            "bonus_currency",
            "bonus_lifetime_days",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        channels = list(self.instance.channels or []) if self.instance.pk else []
        if "bonus_currency" in self.fields:
            self.fields["bonus_currency"].help_text = _("Empty: the program's default currency.")
        if "bonus_lifetime_days" in self.fields:
            self.fields["bonus_lifetime_days"].help_text = _("Empty: the bonuses never expire.")
        for index, name in enumerate(SLOTS):
            self.fields[name].initial = channels[index] if index < len(channels) else ""

    def clean(self):
        cleaned = super().clean()
        chosen: list[str] = []
        for name in SLOTS:
            channel = cleaned.get(name)
            if not channel:
                continue
            if channel in chosen:
                self.add_error(name, _("%(channel)s is chosen twice.") % {"channel": CHANNEL_LABELS[channel]})
            else:
                chosen.append(channel)
        cleaned["channels"] = chosen
        seen: dict[str, MessageTemplate] = {}
        for template in cleaned.get("templates") or []:
            if template.channel not in chosen:
                self.add_error(
                    "templates",
                    _("%(template)s is for %(channel)s, which is not among the channels.")
                    % {"template": template.name, "channel": template.get_channel_display()},
                )
            elif template.channel in seen:
                self.add_error(
                    "templates",
                    _("Choose one template for %(channel)s.") % {"channel": template.get_channel_display()},
                )
            seen[template.channel] = template
        if cleaned.get("enabled") and not any(channel in seen for channel in chosen):
            raise forms.ValidationError(_("To switch it on, choose a channel and a template for it."))
        if (
            self.instance.kind == RegularKind.BIRTHDAY
            and cleaned.get("bonus_lifetime_days") == 0
            and (cleaned.get("bonus_amount") or 0) > 0
        ):
            self.add_error("bonus_lifetime_days", _("Leave it empty for bonuses that never expire."))
        return cleaned

    def save(self, commit=True):
        self.instance.channels = self.cleaned_data["channels"]
        return super().save(commit)


def figures_html(figures: dict):
    """A run's figures as a short list (see ``regular_task_run``)."""
    if not figures:
        return "—"
    if figures.get("skipped") == "disabled":
        return _("not run: switched off")
    if figures.get("skipped"):
        return _("not run: another run was in progress")
    queued = figures.get("queued") or {}
    rows = [
        (_("time zones where the hour had come"), figures.get("zones", 0)),
        (_("members concerned"), figures.get("found", 0)),
        (_("of them not notified before"), figures.get("new", 0)),
        (
            _("messages queued"),
            ", ".join(f"{CHANNEL_LABELS.get(ch, ch)}: {n}" for ch, n in queued.items()) or "0",
        ),
    ]
    if "accrued" in figures:
        rows.append((_("birthday bonuses accrued"), figures["accrued"]))
    for channel, why in (figures.get("left_out") or {}).items():
        rows.append(
            (
                _("passed over: %(channel)s") % {"channel": CHANNEL_LABELS.get(channel, channel)},
                LEFT_OUT.get(why, why),
            )
        )
    return format_html("<ul class='regular-figures'>{}</ul>", format_html_join("", "<li>{}: {}</li>", rows))


@admin.register(RegularTask)
class RegularTaskAdmin(admin.ModelAdmin):
    form = RegularTaskForm
    list_display = (
        "kind",
        "enabled",
        "days_before",
        "send_time",
        "channel_order",
        "last_run_at",
        "last_figures",
    )
    list_display_links = ("kind",)
    readonly_fields = ("last_run_at", "last_figures")
    actions = ["run_now"]
    list_filter = ()

    def has_add_permission(self, request):
        return False  # set up once: the three rows come with the installation

    def has_delete_permission(self, request, obj=None):
        return False

    def get_fieldsets(self, request, obj=None):
        kind = obj.kind if obj else ""
        main = ["enabled", "send_time", "days_before"]
        fieldsets = [(None, {"fields": main})]
        if kind == RegularKind.BIRTHDAY:
            fieldsets.append(
                (_("Birthday bonuses"), {"fields": ["bonus_amount", "bonus_currency", "bonus_lifetime_days"]})
            )
        else:
            main += ["min_amount", "currency"]
        fieldsets += [
            (_("Channels"), {"fields": [*SLOTS, "templates", "category"]}),
            (_("Last run"), {"fields": ["last_run_at", "last_figures"]}),
        ]
        return fieldsets

    @admin.display(description=_("channels in order of preference"))
    def channel_order(self, obj: RegularTask) -> str:
        return " → ".join(str(CHANNEL_LABELS.get(ch, ch)) for ch in obj.channels or []) or "—"

    @admin.display(description=_("last run's figures"))
    def last_figures(self, obj: RegularTask):
        return figures_html(obj.last_run)

    def _run(self, request, tasks) -> None:
        kinds = [task.kind for task in tasks]
        for kind, figures in regular_run(kinds=kinds).items():
            level = messages.WARNING if "skipped" in figures else messages.SUCCESS
            label = RegularKind(kind).label
            self.message_user(request, format_html("{}: {}", label, figures_html(figures)), level)

    @admin.action(description=_("Run now"), permissions=["change"])
    def run_now(self, request, queryset):
        self._run(request, list(queryset))

    def response_change(self, request, obj):
        if "_run_now" in request.POST and self.has_change_permission(request, obj):
            self.message_user(request, _("The settings were saved."), messages.SUCCESS)
            self._run(request, [obj])
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)
