"""Members' feedback in the back office: contact-center operators read a thread, answer it
(with an optional file, optionally closing it), take it in progress, close or reopen it.

What the member wrote is shown, never edited. Attachments are not public media: they are
streamed here, to staff allowed to view feedback, under the name the sender gave them."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from communications.models import Feedback, FeedbackMessage, FeedbackStatus, FeedbackTopic
from communications.services.feedback import MAX_TEXT, attachment_check, feedback_answer, feedback_set_status
from loyalty.models import Member
from loyalty.selectors import members_search

OPEN = (FeedbackStatus.NEW, FeedbackStatus.IN_PROGRESS)


def status_counts() -> dict[str, int]:
    """Threads per status (one query)."""
    rows = Feedback.objects.order_by().values_list("status").annotate(n=Count("pk"))
    return {status: n for status, n in rows}


@admin.register(FeedbackTopic)
class FeedbackTopicAdmin(admin.ModelAdmin):
    list_display = ("topic", "order", "active", "threads")
    list_editable = ("order", "active")
    search_fields = ("name",)

    @admin.display(description=_("name"), ordering="name")
    def topic(self, obj):
        return str(obj)  # a seeded topic in the viewer's language

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(threads_count=Count("feedback"))

    @admin.display(description=_("threads"), ordering="threads_count")
    def threads(self, obj):
        return obj.threads_count


class StatusFilter(admin.SimpleListFilter):
    """The statuses with their counts, and "waiting for an operator" (new or in progress)."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        counts = status_counts()
        waiting = sum(counts.get(s, 0) for s in OPEN)
        return [
            ("open", gettext("waiting for an operator (%(n)s)") % {"n": waiting}),
            *[(value, f"{label} ({counts.get(value, 0)})") for value, label in FeedbackStatus.choices],
        ]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(status__in=OPEN)
        if self.value() in FeedbackStatus.values:
            return queryset.filter(status=self.value())
        return queryset


class AssignedFilter(admin.SimpleListFilter):
    title = _("operator")
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        operators = get_user_model().objects.filter(
            pk__in=Feedback.objects.filter(assigned_to__isnull=False).values("assigned_to")
        )
        return [
            ("me", _("assigned to me")),
            ("nobody", _("not assigned")),
            *[(str(user.pk), user.get_full_name() or user.get_username()) for user in operators],
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assigned_to=request.user)
        if value == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assigned_to_id=int(value))
        return queryset


class FeedbackForm(forms.ModelForm):
    """The thread's topic and operator, and the operator's answer (sent by ``save_model``)."""

    answer = forms.CharField(
        label=_("answer"), required=False, max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 6})
    )
    answer_attachment = forms.FileField(label=_("attachment"), required=False)
    answer_close = forms.BooleanField(
        label=_("answer and close"),
        required=False,
        help_text=_("The member cannot write to a closed thread; they open a new one."),
    )

    class Meta:
        model = Feedback
        fields = ["topic", "assigned_to"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "assigned_to" in self.fields:
            self.fields["assigned_to"].queryset = get_user_model().objects.filter(
                is_staff=True, is_active=True
            )

    def clean(self):
        cleaned = super().clean()
        text = (cleaned.get("answer") or "").strip()
        cleaned["answer"] = text
        wants_answer = (
            "_answer" in self.data or cleaned.get("answer_attachment") or cleaned.get("answer_close")
        )
        if wants_answer and not text and "answer" not in self.errors:
            self.add_error("answer", gettext("Write the answer."))
        try:
            attachment_check(cleaned.get("answer_attachment"))
        except ValidationError as exc:
            self.add_error("answer_attachment", exc.message_dict["attachment"])
        return cleaned


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    form = FeedbackForm
    list_display = ("subject", "status", "topic", "member_link", "updated_at", "assigned_to")
    list_display_links = ("subject",)
    list_filter = (StatusFilter, "topic", AssignedFilter)
    list_select_related = ("member", "topic", "assigned_to")
    search_fields = ("subject", "member__phone", "member__email")
    search_help_text = _("The subject, or the member's phone, email, card number or name.")
    ordering = ("-updated_at", "-pk")
    readonly_fields = ("subject", "member_link", "status", "created_at", "updated_at")
    change_form_template = "admin/communications/feedback/change_form.html"

    # Threads are opened by members; what they wrote stays as written.
    def has_add_permission(self, request):
        return False

    def get_fieldsets(self, request, obj=None):
        main = ("subject", "member_link", "status", "created_at", "updated_at", "topic", "assigned_to")
        sets = [(None, {"fields": main})]
        if obj is not None and self.has_change_permission(request, obj):
            sets.append((_("Answer"), {"fields": ("answer", "answer_attachment", "answer_close")}))
        return sets

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        members = members_search(Member.objects.all(), term).values("pk")
        return queryset.filter(Q(subject__icontains=term) | Q(member__in=members)), False

    def changelist_view(self, request, extra_context=None):
        new = status_counts().get(FeedbackStatus.NEW, 0)
        title = gettext("Feedback: %(new)s new") % {"new": new} if new else gettext("Feedback: nothing new")
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    @admin.display(description=_("member"), ordering="member")
    def member_link(self, obj):
        url = reverse("admin:loyalty_member_change", args=[obj.member_id])
        return format_html('<a href="{}">{}</a>', url, obj.member)

    def save_model(self, request, obj, form, change):
        # Only what the form edits: the status and times belong to the services.
        fields = [name for name in ("topic", "assigned_to") if name in form.changed_data]
        if fields:
            obj.save(update_fields=fields)
        if form.cleaned_data.get("answer"):
            feedback_answer(
                feedback=obj,
                operator=request.user,
                text=form.cleaned_data["answer"],
                attachment=form.cleaned_data.get("answer_attachment"),
                close=bool(form.cleaned_data.get("answer_close")),
            )
            request._feedback_answered = True

    def response_change(self, request, obj):
        if getattr(request, "_feedback_answered", False):
            messages.success(request, gettext("The answer is sent; the member is notified."))
            return HttpResponseRedirect(reverse("admin:communications_feedback_change", args=[obj.pk]))
        return super().response_change(request, obj)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["thread"] = list(obj.messages.select_related("operator"))
            can_change = self.has_change_permission(request, obj)
            context["feedback_actions"] = [
                (name, label, reverse("admin:communications_feedback_status", args=[obj.pk, name]))
                for name, (label, _status, allowed) in self.ACTIONS.items()
                if can_change and obj.status in allowed
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- status buttons and attachments --------------------------------------------------------
    ACTIONS = {
        "take": (
            _("Take in progress"),
            FeedbackStatus.IN_PROGRESS,
            (FeedbackStatus.NEW, FeedbackStatus.ANSWERED),
        ),
        "close": (_("Close"), FeedbackStatus.CLOSED, (*OPEN, FeedbackStatus.ANSWERED)),
        "reopen": (_("Reopen"), FeedbackStatus.IN_PROGRESS, (FeedbackStatus.CLOSED,)),
    }
    DONE = {
        "take": _("The thread is yours: in progress."),
        "close": _("The thread is closed."),
        "reopen": _("The thread is open again."),
    }

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/do/<str:action>/", view(self.status_view), name="communications_feedback_status"),
            path(
                "<int:pk>/attachment/<int:message_pk>/",
                view(self.attachment_view),
                name="communications_feedback_attachment",
            ),
            *super().get_urls(),
        ]

    def status_view(self, request, pk, action):
        return require_POST(self._status)(request, pk, action)

    def _status(self, request, pk, action):
        feedback = get_object_or_404(Feedback, pk=pk)
        if not self.has_change_permission(request, feedback) or action not in self.ACTIONS:
            raise PermissionDenied
        _label, status, allowed = self.ACTIONS[action]
        if feedback.status in allowed:
            feedback_set_status(feedback=feedback, status=status, operator=request.user)
            messages.success(request, self.DONE[action])
        else:
            messages.warning(
                request, gettext("The thread is %(status)s now.") % {"status": feedback.get_status_display()}
            )
        return redirect(reverse("admin:communications_feedback_change", args=[pk]))

    def attachment_view(self, request, pk, message_pk):
        message = get_object_or_404(
            FeedbackMessage.objects.select_related("feedback"), pk=message_pk, feedback_id=pk
        )
        if not self.has_view_permission(request, message.feedback):
            raise PermissionDenied
        if not message.attachment:
            raise Http404
        try:
            handle = message.attachment.open("rb")
        except FileNotFoundError:
            raise Http404 from None
        # Always a download: a file a member uploaded is never rendered in the back office's origin.
        return FileResponse(handle, as_attachment=True, filename=message.attachment_name or "attachment")
