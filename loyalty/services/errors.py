from django.utils.translation import gettext_lazy as _

# The code of a field's ValidationError when the value is another record's (a phone of
# another member): the APIs answer 409 ``taken`` when every refused field is taken.
TAKEN = "taken"


class DomainError(Exception):
    """A business rule refused the operation. ``code`` is stable (API clients switch on
    it); ``title`` is the human kind of problem; the message says what exactly."""

    code = "domain_error"
    title = _("The operation was refused.")
    http_status = 409

    def __init__(self, message: str = "", **extra) -> None:
        super().__init__(message or str(self.title))
        self.extra = extra


class InsufficientBonuses(DomainError):
    code = "insufficient_bonuses"
    title = _("Not enough bonuses.")


class CardStateError(DomainError):
    code = "card_state"
    title = _("The card cannot do that in its current state.")


class MemberBlocked(DomainError):
    code = "member_blocked"
    title = _("The member is blocked.")


class ReceiptStateError(DomainError):
    code = "receipt_state"
    title = _("The receipt cannot do that in its current state.")


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    title = _("The idempotency key was used for a different request.")
    http_status = 422
