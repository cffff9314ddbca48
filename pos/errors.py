"""Problems of the point-of-sale API and its exception handler: the project's problem
details (``loyalty.api.problems``) with three differences: not enough bonuses is
402 Payment Required, a unique-constraint race is 409, and lookups name what was not
found in a stable ``code``."""

from django.db import IntegrityError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, status

from loyalty.api.problems import problem, problem_exception_handler
from loyalty.services.errors import DomainError, InsufficientBonuses


class PosNotFound(DomainError):
    code = "not_found"
    title = gettext_lazy("Not found.")
    http_status = 404


class PointOfSaleNotFound(PosNotFound):
    code = "point_of_sale_not_found"
    title = gettext_lazy("No such point of sale.")


class CardNotFound(PosNotFound):
    code = "card_not_found"
    title = gettext_lazy("No such card.")


class MemberNotFound(PosNotFound):
    code = "member_not_found"
    title = gettext_lazy("No such member.")


class ReceiptNotFound(PosNotFound):
    code = "receipt_not_found"
    title = gettext_lazy("No such receipt.")


class ReceiptExists(DomainError):
    code = "receipt_exists"
    title = gettext_lazy("A receipt with this id was already confirmed at this point of sale.")


class RefundIdUsed(DomainError):
    code = "refund_id_used"
    title = gettext_lazy("This refund id was already used for another receipt.")


class IdempotencyKeyMissing(DomainError):
    code = "idempotency_key_required"
    title = gettext_lazy("This request needs an Idempotency-Key header.")
    http_status = 400


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    title = gettext_lazy("The idempotency key was used for a different request.")
    http_status = 422


class IdempotencyInProgress(DomainError):
    code = "idempotency_in_progress"
    title = gettext_lazy("A request with this idempotency key is still being processed.")
    http_status = 409


def _indexed(detail):
    """DRF reports errors of list items keyed by position (``{0: {...}}``); as lists they
    are named ``lines[0].quantity`` like the receipt services name them."""
    if isinstance(detail, dict):
        if detail and all(isinstance(k, int) for k in detail):
            items = [[] for _i in range(max(detail) + 1)]
            for index, value in detail.items():
                items[index] = _indexed(value)
            return items
        return {key: _indexed(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_indexed(item) for item in detail]
    return detail


def pos_exception_handler(exc, context):
    if isinstance(exc, exceptions.ValidationError):
        exc.detail = _indexed(exc.detail)
    if isinstance(exc, InsufficientBonuses):
        return problem(status.HTTP_402_PAYMENT_REQUIRED, exc.code, str(exc.title), str(exc), **exc.extra)
    if isinstance(exc, IntegrityError):
        return problem(
            status.HTTP_409_CONFLICT,
            "conflict",
            _("The request conflicts with one made at the same time."),
            _("Repeat it to see the outcome."),
        )
    return problem_exception_handler(exc, context)
