"""Status callbacks from providers: ``/gateways/callback/<gateway id>/<secret>/``.

The secret in the URL authenticates the provider (each gateway has its own, and the
provider's own scheme, where it has one, is checked by the adapter). The endpoint is
idempotent and tolerant of order: the sink moves a message only forward, so a repeated
or late callback changes nothing. Answers 200 with an empty body, as providers expect.
"""

import hmac
import logging

from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from gateways.hooks import status_sink
from gateways.models import Gateway
from gateways.providers import CallbackRejected
from gateways.services import gateway_provider

log = logging.getLogger(__name__)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def callback(request, gateway_id: int, token: str):
    gateway = Gateway.objects.filter(pk=gateway_id).first()
    if gateway is None or not hmac.compare_digest(gateway.webhook_token, token):
        raise Http404
    try:
        updates = gateway_provider(gateway).parse_callback(request)
    except CallbackRejected as exc:
        log.warning("callback for gateway %s rejected: %s", gateway.pk, exc)
        return HttpResponseBadRequest(str(exc))
    moved = status_sink(gateway=gateway, updates=updates)
    log.info("callback for gateway %s: %s updates, %s messages moved", gateway.pk, len(updates), moved)
    return HttpResponse(status=200)
