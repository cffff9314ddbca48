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
    message = _message(ref)
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        message_unsubscribe(message=message, source="one-click" if one_click else "link")
        if one_click:
            return HttpResponse(status=200)
        return render(request, "communications/unsubscribed.html", {"message": message})
    return render(request, "communications/unsubscribe.html", {"message": message})
