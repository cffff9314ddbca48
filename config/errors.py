"""Django's own 400, 404 and 500 answers: under ``/api/`` as RFC 9457 problem details,
like every other API error (an unknown path, a body over the size limit, a crash), and
Django's pages elsewhere."""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults

from loyalty.api.problems import problem_body


def _problem(status: int, code: str, title: str, detail: str = "") -> JsonResponse:
    body = problem_body(status, code, title, detail)
    return JsonResponse(body, status=status, content_type="application/problem+json")


def _api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    if not _api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return _problem(400, "too_large", _("The request is too large."))
    return _problem(400, "bad_request", _("The request could not be understood."))


def not_found(request, exception):
    if not _api(request):
        return defaults.page_not_found(request, exception)
    return _problem(
        404, "not_found", _("Not found."), _("No API endpoint at %(path)s.") % {"path": request.path}
    )


def server_error(request):
    if not _api(request):
        return defaults.server_error(request)
    return _problem(500, "server_error", _("The server failed to answer; the error is logged."))
