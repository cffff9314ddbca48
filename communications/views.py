"""Public endpoints a message links to: the open pixel, the click redirect and the
unsubscribe page (which also takes RFC 8058 one-click POSTs)."""

import base64

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from communications.models import Message
from communications.services.tracking import (
    link_signature,
    message_clicked,
    message_opened,
    message_unsubscribe,
)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _message(ref) -> Message:
    message = Message.objects.filter(ref=ref).select_related("member").first()
    if message is None:
        raise Http404
    return message


def opened(request, ref):
    message = Message.objects.filter(ref=ref).first()
    if message is not None:
        message_opened(message=message)
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    return response


def clicked(request, ref):
    url = request.GET.get("u", "")
    signature = request.GET.get("s", "")
    if not url.startswith(("http://", "https://")) or not constant_time_compare(
        signature, link_signature(str(ref), url)
    ):
        raise Http404
    message = Message.objects.filter(ref=ref).first()
    if message is not None:
        message_clicked(message=message, url=url)
    return HttpResponseRedirect(url)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, ref):
    from communications.models import MailingCategory, UnsubscribeReason

    message = _message(ref)
    category = MailingCategory.objects.filter(code=message.category).first() if message.category else None
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        if one_click:
            message_unsubscribe(message=message, source="one-click")
            return HttpResponse(status=200)
        scope = request.POST.get("scope") if request.POST.get("scope") in ("category", "channel") else ""
        reason = UnsubscribeReason.objects.filter(pk=request.POST.get("reason") or 0, active=True).first()
        message_unsubscribe(
            message=message,
            source="link",
            scope=scope or ("category" if category else "channel"),
            reason=reason,
            comment=request.POST.get("comment", "")[:500],
        )
        context = {"message": message, "category": category if scope == "category" else None}
        return render(request, "communications/unsubscribed.html", context)
    context = {
        "message": message,
        "category": category,
        "reasons": UnsubscribeReason.objects.filter(active=True),
    }
    return render(request, "communications/unsubscribe.html", context)


def view_online(request, ref):
    """The email as the member received it, for mail apps that show it badly."""
    from django.utils.html import escape

    from communications.services.rendering import message_content

    message = _message(ref)
    if message.channel != "email":
        raise Http404
    content = message_content(message)
    body = content.get("html") or f"<pre>{escape(content.get('text', ''))}</pre>"
    response = HttpResponse(body, content_type="text/html; charset=utf-8")
    response["X-Robots-Tag"] = "noindex"
    return response
