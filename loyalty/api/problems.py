"""One exception handler: every error leaves the API as RFC 9457 problem details with a
stable ``code``; field errors are listed under ``errors`` by field name."""

import math
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from loyalty.services.errors import TAKEN, DomainError


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix or "non_field_errors"
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
        return out
    if isinstance(detail, list):
        out = {}
        for i, item in enumerate(detail):
            name = f"{prefix}[{i}]" if isinstance(item, dict | list) else prefix
            for k, v in _flatten(item, name).items():
                out.setdefault(k, []).extend(v)
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def problem_body(status_code: int, code: str, title: str, detail: str = "", **extra) -> dict:
    body = {"type": f"about:blank#{code}", "title": title, "status": status_code, "code": code}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return body


def problem(status_code: int, code: str, title: str, detail: str = "", **extra) -> Response:
    body = problem_body(status_code, code, title, detail, **extra)
    return Response(body, status=status_code, content_type="application/problem+json")


def _title(code: str, status_code: int) -> str:
    """A stable title per kind of problem (what happened); ``detail`` says this time's
    specifics."""
    titles = {
        "parse_error": _("The request body could not be read."),
        "not_authenticated": _("Authentication is needed."),
        "authentication_failed": _("Authentication failed."),
        "permission_denied": _("Not allowed."),
        "not_found": _("Not found."),
        "method_not_allowed": _("Method not allowed."),
        "not_acceptable": _("The requested answer format is not available."),
        "unsupported_media_type": _("Unsupported media type."),
        "throttled": _("Too many requests."),
    }
    return str(titles.get(code) or HTTPStatus(status_code).phrase)


def _all_taken(exc: DjangoValidationError) -> bool:
    """Every field the error refuses is refused as another record's value."""
    if not hasattr(exc, "error_dict") or not exc.error_dict:
        return False
    return all(error.code == TAKEN for errors in exc.error_dict.values() for error in errors)


def problem_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return problem(exc.http_status, exc.code, str(exc.title), str(exc), **exc.extra)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        if _all_taken(exc):
            errors = _flatten(detail)
            field, messages = next(iter(errors.items()))
            return problem(
                status.HTTP_409_CONFLICT,
                TAKEN,
                _("The value belongs to another record."),
                f"{field}: {messages[0]}",
                errors=errors,
            )
        exc = exceptions.ValidationError(detail)
    if isinstance(exc, Http404):
        return problem(404, "not_found", _("Not found."))
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.items()), ("", [""]))
        return problem(
            status.HTTP_400_BAD_REQUEST,
            "invalid",
            _("The request has invalid fields."),
            f"{first[0]}: {first[1][0]}" if first[0] else "",
            errors=errors,
        )
    code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    code = code if isinstance(code, str) else "error"
    detail = str(exc.detail) if hasattr(exc, "detail") else ""
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        # DRF formats the seconds into its text before translating it, so its Russian
        # catalog never matches; said here whole.
        wait = math.ceil(exc.wait)
        detail = ngettext("Try again in %(n)d second.", "Try again in %(n)d seconds.", wait) % {"n": wait}
    result = problem(response.status_code, code, _title(code, response.status_code), detail)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            result[header] = response[header]
    return result
