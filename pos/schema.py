"""OpenAPI pieces of the point-of-sale API: the API-key security scheme and the problem
responses every operation declares."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

PROBLEM_TYPE = "application/problem+json"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "pos.auth.ApiKeyAuthentication"
    name = "PosApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": str(
                _("The partner's API key as `Api-Key <prefix>.<secret>` (shown once, on creation).")
            ),
        }


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details with the project's stable ``code``."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    code = serializers.CharField(help_text=_("Stable machine-readable kind of problem."))
    detail = serializers.CharField(required=False)
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text=_("Field errors by field name, e.g. lines[0].quantity."),
    )

    class Meta:
        ref_name = "PosProblem"


_DESCRIPTIONS = {
    400: _("Invalid input: `errors` names each field (code `invalid`), or a missing Idempotency-Key."),
    401: _("No API key, or an invalid or revoked one."),
    402: _("Not enough bonuses to pay that much (code `insufficient_bonuses`)."),
    404: _("Unknown point of sale, card, member or receipt (or one of another partner)."),
    409: _("Conflicts with the state of the receipt or card, or the key's first request is still running."),
    422: _("The Idempotency-Key was used for a different request (code `idempotency_key_reused`)."),
    429: _("Too many requests for this API key."),
}


def problems(*statuses: int) -> dict:
    """Responses for ``extend_schema``: each status as problem details."""
    return {
        (status, PROBLEM_TYPE): OpenApiResponse(ProblemSerializer, description=str(_DESCRIPTIONS[status]))
        for status in statuses
    }


RETRY_AFTER = {
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
    "description": "Seconds to wait before the next request with this API key.",
}


def retry_after_on_429(result, generator, request, public):
    """Schema hook: every 429 answer says ``Retry-After`` (the throttles always send it)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("429") if isinstance(operation, dict) else None
            if answer is not None:
                answer.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
    return result
