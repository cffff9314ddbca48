"""The members' personal account pages. Thin: each view reads through
``portal.services`` (the same calls serve the member API) and renders a template.

The address a code was sent to lives in the session, never in a URL; pages show only the
signed-in member's own data, and anything of another member's is "not found".
"""

from __future__ import annotations

import contextlib
import functools
import io
import zoneinfo

import segno
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from communications.models import FeedbackMessage, FeedbackTopic, UnsubscribeReason
from communications.services import feedback as feedback_services
from communications.services.subscriptions import category_set, channel_set, subscriptions_of
from loyalty.services.errors import DomainError
from offers import personal
from portal import forms
from portal.models import CodePurpose, MemberPassword
from portal.services import account, auth, content, profile
from portal.session import member_login, member_logout, session_member

CHANNEL = "personal_account"
PENDING = "portal_pending"  # the address (and registration data) a code was sent to


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def member_required(view):
    """Only for a signed-in member; shows times in the member's zone and pages in their
    language."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        member = session_member(request)
        if member is None:
            target = reverse("portal:sign_in")
            if request.method == "GET":
                return redirect(f"{target}?next={request.path}")
            return redirect(target)
        request.member = member
        if member.time_zone:
            with contextlib.suppress(zoneinfo.ZoneInfoNotFoundError, ValueError):
                timezone.activate(zoneinfo.ZoneInfo(member.time_zone))
        if member.language:
            translation.activate(member.language)
            request.LANGUAGE_CODE = member.language
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    return wrapper


def _errors_to_form(form, exc: ValidationError, default: str = "__all__") -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            field = name if name in form.fields else None
            for error in errors:
                form.add_error(field, error)
    else:
        for error in exc.messages:
            form.add_error(default if default in form.fields else None, error)


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return reverse("portal:home")


# --- signing in -------------------------------------------------------------------------
def sign_in(request):
    if session_member(request) is not None:
        return redirect("portal:home")
    form = forms.LoginForm(request.POST or None)
    password_form = forms.PasswordLoginForm(prefix="pw")
    if request.method == "POST" and form.is_valid():
        address = form.cleaned_data["login"]
        try:
            auth.code_request(address=address, ip=_client_ip(request))
        except auth.CodeThrottled as exc:
            form.add_error("login", str(exc))
        else:
            request.session[PENDING] = {
                "channel": address.channel,
                "value": address.value,
                "purpose": CodePurpose.SIGN_IN,
                "next": _next_url(request),
            }
            return redirect("portal:code")
    return render(
        request,
        "portal/sign_in.html",
        {"form": form, "password_form": password_form, "next": request.GET.get("next", "")},
    )


@require_POST
def sign_in_password(request):
    form = forms.PasswordLoginForm(request.POST, prefix="pw")
    if form.is_valid():
        try:
            member = profile.password_sign_in(
                address=form.cleaned_data["login"], password=form.cleaned_data["password"]
            )
        except DomainError as exc:
            form.add_error("password", str(exc))
        else:
            member_login(request, member)
            return redirect(_next_url(request))
    return render(
        request,
        "portal/sign_in.html",
        {"form": forms.LoginForm(), "password_form": form, "password_open": True},
    )


def _pending(request) -> tuple[auth.Address, dict] | None:
    pending = request.session.get(PENDING)
    if not pending:
        return None
    return auth.Address(pending["channel"], pending["value"]), pending


def code(request):
    found = _pending(request)
    if found is None:
        return redirect("portal:sign_in")
    address, pending = found
    form = forms.CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            if pending["purpose"] == CodePurpose.REGISTER:
                data = pending["profile"]
                member = profile.register(
                    address=address,
                    code=form.cleaned_data["code"],
                    channel=CHANNEL,
                    consents=pending["consents"],
                    card_number=pending.get("card_number", ""),
                    **data,
                )
            else:
                member = auth.sign_in(address=address, code=form.cleaned_data["code"])
        except DomainError as exc:
            form.add_error("code", str(exc))
        except ValidationError as exc:
            _errors_to_form(form, exc, "code")
        else:
            target = pending.get("next") or reverse("portal:home")
            member_login(request, member)
            if pending["purpose"] == CodePurpose.REGISTER:
                messages.success(request, _("Welcome to the program!"))
            return redirect(target)
    return render(
        request, "portal/code.html", {"form": form, "address": _masked(address), "pending": pending}
    )


@require_POST
def code_resend(request):
    found = _pending(request)
    if found is None:
        return redirect("portal:sign_in")
    address, pending = found
    try:
        auth.code_request(address=address, purpose=pending["purpose"], ip=_client_ip(request))
    except auth.CodeThrottled as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("A new code was sent."))
    return redirect("portal:code")


def _masked(address: auth.Address) -> str:
    value = address.value
    if address.channel == "email":
        name, _at, domain = value.partition("@")
        return f"{name[:2]}***@{domain}"
    return f"{value[:-7]}***{value[-4:]}" if len(value) > 7 else value


def register(request):
    if session_member(request) is not None:
        return redirect("portal:home")
    form = forms.RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        address = form.cleaned_data["login"]
        data = form.cleaned_data
        try:
            # Throttled first, so the card check below cannot probe card numbers faster
            # than codes may be asked for. A member's own address just gets a code too
            # (the code step signs them in): the form does not tell who is a member.
            auth.code_request(address=address, purpose=CodePurpose.REGISTER, ip=_client_ip(request))
        except auth.CodeThrottled as exc:
            form.add_error("login", str(exc))
        else:
            try:
                if data.get("card_number"):
                    profile.card_free_check(data["card_number"])
            except ValidationError as exc:
                form.add_error("card_number", exc.messages[0])
            else:
                request.session[PENDING] = {
                    "channel": address.channel,
                    "value": address.value,
                    "purpose": CodePurpose.REGISTER,
                    "consents": form.consents(),
                    "card_number": data.get("card_number", ""),
                    "profile": {
                        "first_name": data["first_name"],
                        "last_name": data.get("last_name", ""),
                        "birth_date": data["birth_date"].isoformat() if data.get("birth_date") else None,
                        "language": translation.get_language() or settings.LANGUAGE_CODE,
                    },
                }
                return redirect("portal:code")
    return render(request, "portal/register.html", {"form": form})


@require_POST
def sign_out(request):
    member_logout(request)
    return redirect("portal:sign_in")


# --- pages ------------------------------------------------------------------------------
@member_required
def home(request):
    member = request.member
    return render(
        request,
        "portal/home.html",
        {
            "section": "home",
            "balance": account.balance_section(member),
            "status": account.status_section(member),
            "card": account.card_section(member),
            "offers": content.contents_for(member)[:3],
        },
    )


@member_required
def card_qr(request):
    """The member's card number as a QR code (SVG) to show at the till."""
    card = account.card_section(request.member)
    if card is None:
        raise Http404
    buffer = io.BytesIO()
    segno.make(card.number, error="m").save(buffer, kind="svg", scale=6, border=2, dark="#111", xmldecl=False)
    response = HttpResponse(buffer.getvalue(), content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=3600"
    return response


def content_image(request, content_id: int):
    """A published material's image, for the pages and the app (uploads are not served
    publicly; promotional images are, once published)."""
    from portal.models import TargetedContent

    item = TargetedContent.objects.filter(pk=content_id, published=True).exclude(image="").first()
    if item is None:
        raise Http404
    response = FileResponse(item.image.open("rb"))
    response["Cache-Control"] = "public, max-age=3600"
    return response


@member_required
def history(request):
    member = request.member
    tab = request.GET.get("tab", "receipts")
    ctx = {"section": "history", "tab": tab}
    if tab == "movements":
        try:
            offset = max(0, int(request.GET.get("offset", 0)))
        except ValueError:
            offset = 0
        entries = account.movements_page(member, limit=51, offset=offset)
        ctx.update(
            movements=[(e, account.movement_reason(e)) for e in entries[:50]],
            next_offset=offset + 50 if len(entries) > 50 else None,
        )
    else:
        try:
            before = int(request.GET.get("before", 0)) or None
        except ValueError:
            before = None
        receipts = account.receipts_page(member, before_id=before, limit=21)
        shown = receipts[:20]
        bonuses = account.receipt_bonuses(shown)
        ctx.update(
            receipts=[(r, bonuses[r.pk]) for r in shown],
            next_before=shown[-1].pk if len(receipts) > 20 else None,
        )
    return render(request, "portal/history.html", ctx)


@member_required
def receipt(request, receipt_id: int):
    found = account.receipt_of(request.member, receipt_id)
    if found is None:
        raise Http404
    bonuses = account.receipt_bonuses([found])[found.pk]
    return render(
        request, "portal/receipt.html", {"section": "history", "receipt": found, "bonuses": bonuses}
    )


@member_required
def offers(request):
    items = content.contents_for(request.member, personal=False)
    return render(request, "portal/offers.html", {"section": "offers", "items": items, "personal": False})


@member_required
def personal_offers(request):
    items = content.contents_for(request.member, personal=True)
    return render(request, "portal/offers.html", {"section": "personal", "items": items, "personal": True})


@member_required
def personal_products(request):
    member = request.member
    programs = personal.programs_open()
    submitted: dict[int, set[int]] = {}  # a refused choice is shown as it was ticked
    if request.method == "POST":
        program = next((p for p in programs if str(p.pk) == request.POST.get("program")), None)
        if program is None:
            raise Http404
        chosen = request.POST.getlist("products")
        try:
            personal.picks_set(member=member, program=program, product_ids=chosen)
        except ValidationError as exc:
            for error in exc.messages:
                messages.error(request, error)
            submitted = {program.pk: {int(pk) for pk in chosen if pk.isdigit()}}
        except ValueError:
            messages.error(request, _("Choose products from the list."))
        else:
            messages.success(request, _("Your choice is saved."))
            return redirect("portal:products")
    picks = {**personal.picks_of(member, programs), **submitted}
    lists = [(p, personal.program_products(p), picks.get(p.pk, set())) for p in programs]
    return render(request, "portal/products.html", {"section": "products", "lists": lists})


@member_required
def profile_page(request):
    member = request.member
    initial = {f: getattr(member, f) for f in profile.EDITABLE if f not in ("time_zone",)}
    initial["language"] = member.language or translation.get_language()
    form = forms.ProfileForm(request.POST or None, initial=initial, prefix="profile")
    if request.method == "POST" and form.is_valid():
        try:
            profile.profile_update(member=member, channel=CHANNEL, **form.cleaned_data)
        except ValidationError as exc:
            _errors_to_form(form, exc)
        else:
            messages.success(request, _("Your details are saved."))
            response = redirect("portal:profile")
            response.set_cookie(settings.LANGUAGE_COOKIE_NAME, form.cleaned_data["language"], samesite="Lax")
            return response
    return render(request, "portal/profile.html", _profile_context(request, form))


def _profile_context(request, form, **extra):
    member = request.member
    fields = profile.questionnaire_fields()
    return {
        "section": "profile",
        "form": form,
        "contact_form": extra.get("contact_form") or forms.ContactForm(prefix="contact"),
        "card_form": extra.get("card_form") or forms.CardForm(prefix="card"),
        "password_form": extra.get("password_form") or forms.PasswordForm(prefix="password"),
        "questionnaire": extra.get("questionnaire")
        or forms.questionnaire_form(fields, member.custom_fields, None),
        "has_questionnaire": bool(fields),
        "cards": account.member_cards(member),
        "has_password": MemberPassword.objects.filter(member=member).exists(),
        "member": member,
    }


@member_required
@require_POST
def questionnaire(request):
    member = request.member
    fields = profile.questionnaire_fields()
    form = forms.questionnaire_form(fields, member.custom_fields, request.POST)
    if form.is_valid():
        values = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in form.cleaned_data.items()}
        values = {k: v for k, v in values.items() if v not in (None, "")}
        try:
            profile.questionnaire_submit(member=member, values=values, channel=CHANNEL)
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                field = name.removeprefix("custom_fields.")
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, _("Thank you for filling in the questionnaire."))
            return redirect("portal:profile")
    initial = {f: getattr(member, f) for f in profile.EDITABLE if f != "time_zone"}
    return render(
        request,
        "portal/profile.html",
        _profile_context(request, forms.ProfileForm(initial=initial, prefix="profile"), questionnaire=form),
    )


@member_required
@require_POST
def contact_change(request):
    member = request.member
    form = forms.ContactForm(request.POST, prefix="contact")
    if form.is_valid():
        address = form.cleaned_data["login"]
        try:
            auth.code_request(
                address=address, purpose=CodePurpose.BIND, member=member, ip=_client_ip(request)
            )
        except auth.CodeThrottled as exc:
            form.add_error("login", str(exc))
        else:
            request.session["portal_bind"] = {"channel": address.channel, "value": address.value}
            return redirect("portal:contact_confirm")
    return render(
        request,
        "portal/profile.html",
        _profile_context(request, _plain_profile_form(request), contact_form=form),
    )


def _plain_profile_form(request):
    member = request.member
    initial = {f: getattr(member, f) for f in profile.EDITABLE if f != "time_zone"}
    return forms.ProfileForm(initial=initial, prefix="profile")


@member_required
def contact_confirm(request):
    pending = request.session.get("portal_bind")
    if not pending:
        return redirect("portal:profile")
    address = auth.Address(pending["channel"], pending["value"])
    form = forms.CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            profile.contact_confirm(
                member=request.member, address=address, code=form.cleaned_data["code"], channel=CHANNEL
            )
        except DomainError as exc:
            form.add_error("code", str(exc))
        except ValidationError as exc:
            _errors_to_form(form, exc, "code")
        else:
            del request.session["portal_bind"]
            messages.success(request, _("The contact is confirmed and saved."))
            return redirect("portal:profile")
    return render(
        request,
        "portal/code.html",
        {"form": form, "address": _masked(address), "section": "profile", "confirming": True},
    )


@member_required
@require_POST
def card_bind(request):
    form = forms.CardForm(request.POST, prefix="card")
    if form.is_valid():
        try:
            profile.card_bind_by_number(member=request.member, number=form.cleaned_data["card_number"])
        except ValidationError as exc:
            for error in exc.messages:
                form.add_error("card_number", error)
        else:
            messages.success(request, _("The card is added to your account."))
            return redirect("portal:profile")
    return render(
        request,
        "portal/profile.html",
        _profile_context(request, _plain_profile_form(request), card_form=form),
    )


@member_required
@require_POST
def password(request):
    if request.POST.get("remove"):
        profile.password_remove(member=request.member)
        messages.success(request, _("The password is removed; sign in with a code."))
        return redirect("portal:profile")
    form = forms.PasswordForm(request.POST, prefix="password")
    if form.is_valid():
        try:
            profile.password_set(member=request.member, password=form.cleaned_data["password"])
        except ValidationError as exc:
            for error in exc.messages:
                form.add_error("password", error)
        else:
            messages.success(request, _("The password is set."))
            return redirect("portal:profile")
    return render(
        request,
        "portal/profile.html",
        _profile_context(request, _plain_profile_form(request), password_form=form),
    )


@member_required
def subscriptions(request):
    member = request.member
    reason_form = forms.UnsubscribeReasonForm(request.POST or None)
    if request.method == "POST" and reason_form.is_valid():
        reason = reason_form.cleaned_data.get("reason")
        comment = reason_form.cleaned_data.get("comment", "")
        current = subscriptions_of(member)
        for channel in current.channels:
            wanted = request.POST.get(f"channel_{channel}") == "on"
            channel_set(
                member=member,
                channel=channel,
                subscribed=wanted,
                source=CHANNEL,
                reason=reason,
                comment=comment,
            )
        for category, _on in current.categories:
            wanted = request.POST.get(f"category_{category.pk}") == "on"
            category_set(
                member=member,
                category=category,
                subscribed=wanted,
                source=CHANNEL,
                reason=reason,
                comment=comment,
            )
        messages.success(request, _("Your subscriptions are saved."))
        return redirect("portal:subscriptions")
    subs = subscriptions_of(member)
    return render(
        request,
        "portal/subscriptions.html",
        {
            "section": "subscriptions",
            "channels": [(c, _channel_label(c), on) for c, on in subs.channels.items()],
            "categories": subs.categories,
            "reason_form": reason_form,
            "has_reasons": UnsubscribeReason.objects.filter(active=True).exists(),
        },
    )


def _channel_label(channel: str) -> str:
    from loyalty.models import ContactChannel

    return ContactChannel(channel).label


@member_required
def feedback_list(request):
    member = request.member
    form = forms.FeedbackForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            thread = feedback_services.feedback_open(
                member=member,
                topic=data.get("topic"),
                subject=data["subject"],
                text=data["text"],
                attachment=data.get("attachment"),
            )
        except ValidationError as exc:
            _errors_to_form(form, exc, "text")
        else:
            messages.success(request, _("Your message is sent to support."))
            return redirect("portal:feedback_thread", feedback_id=thread.pk)
    return render(
        request,
        "portal/feedback_list.html",
        {
            "section": "feedback",
            "threads": feedback_services.feedback_list(member),
            "form": form,
            "has_topics": FeedbackTopic.objects.filter(active=True).exists(),
        },
    )


@member_required
def feedback_thread(request, feedback_id: int):
    member = request.member
    thread = feedback_services.feedback_of(member, feedback_id)
    if thread is None:
        raise Http404
    form = forms.ReplyForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            feedback_services.feedback_reply(
                feedback=thread,
                member=member,
                text=form.cleaned_data["text"],
                attachment=form.cleaned_data.get("attachment"),
            )
        except ValidationError as exc:
            _errors_to_form(form, exc, "text")
        else:
            return redirect("portal:feedback_thread", feedback_id=thread.pk)
    return render(
        request, "portal/feedback_thread.html", {"section": "feedback", "thread": thread, "form": form}
    )


@member_required
def feedback_attachment(request, feedback_id: int, message_id: int):
    message = (
        FeedbackMessage.objects.filter(
            pk=message_id, feedback_id=feedback_id, feedback__member=request.member
        )
        .exclude(attachment="")
        .first()
    )
    if message is None:
        raise Http404
    return FileResponse(
        message.attachment.open("rb"), as_attachment=True, filename=message.attachment_name or "file"
    )
