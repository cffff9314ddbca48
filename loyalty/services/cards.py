"""Cards: issue, bind, activate, block, unblock, replace."""

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty.models import Card, CardKind, CardState, Member, MemberState, PointOfSale
from loyalty.services.errors import CardStateError
from loyalty.services.events import event_record


def luhn_check_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def card_number_valid(number: str) -> bool:
    cfg = settings.LOYALTY
    return (
        number.isdigit()
        and len(number) == cfg["CARD_NUMBER_LENGTH"]
        and number.startswith(cfg["CARD_NUMBER_PREFIX"])
        and luhn_check_digit(number[:-1]) == number[-1]
    )


def card_number_new() -> str:
    """A fresh number in the configured format: prefix, random digits, Luhn digit."""
    cfg = settings.LOYALTY
    body_len = cfg["CARD_NUMBER_LENGTH"] - len(cfg["CARD_NUMBER_PREFIX"]) - 1
    body = cfg["CARD_NUMBER_PREFIX"] + "".join(secrets.choice("0123456789") for _ in range(body_len))
    return body + luhn_check_digit(body)


@transaction.atomic
def card_issue(
    *,
    number: str = "",
    kind: str = CardKind.PHYSICAL,
    member: Member | None = None,
    point_of_sale: PointOfSale | None = None,
) -> Card:
    """Issue a card (a new number when none is given); bound to ``member`` if given."""
    for _attempt in range(5):
        candidate = number or card_number_new()
        try:
            with transaction.atomic():
                card = Card.objects.create(
                    number=candidate, kind=kind, member=member, issued_at_point=point_of_sale
                )
            break
        except IntegrityError as exc:
            if number:
                raise CardStateError(_("Card %(number)s already exists.") % {"number": number}) from exc
    else:  # pragma: no cover - five random collisions in a row
        raise CardStateError(_("Could not find a free card number."))
    event_record(
        event_type="card_issued",
        member=member,
        point_of_sale=point_of_sale,
        payload={"card": card.number},
    )
    return card


def _state_error(card: Card) -> CardStateError:
    return CardStateError(
        _("Card %(number)s is %(state)s.")
        % {"number": card.number, "state": card.get_state_display().lower()}
    )


@transaction.atomic
def card_bind(*, card: Card, member: Member) -> Card:
    card = Card.objects.select_for_update().get(pk=card.pk)
    if card.member_id and card.member_id != member.pk:
        raise CardStateError(_("Card %(number)s belongs to another member.") % {"number": card.number})
    if card.state in (CardState.BLOCKED, CardState.REPLACED):
        raise _state_error(card)
    card.member = member
    card.save(update_fields=["member"])
    return card


@transaction.atomic
def card_activate(*, card: Card, channel: str = "") -> Card:
    """Activate a bound card; the member becomes activated too."""
    card = Card.objects.select_for_update().get(pk=card.pk)
    if card.member_id is None:
        raise CardStateError(_("Bind the card to a member before activating it."))
    if card.state == CardState.ACTIVATED:
        return card
    if card.state != CardState.ISSUED:
        raise _state_error(card)
    card.state, card.activated_at = CardState.ACTIVATED, timezone.now()
    card.save(update_fields=["state", "activated_at"])
    member = card.member
    if member.state in (MemberState.CLIENT, MemberState.REGISTERED):
        member.state = MemberState.ACTIVATED
        member.save(update_fields=["state", "updated_at"])
    event_record(event_type="card_activated", member=member, channel=channel, payload={"card": card.number})
    return card


@transaction.atomic
def card_block(*, card: Card, reason: str) -> Card:
    card = Card.objects.select_for_update().get(pk=card.pk)
    if not reason.strip():
        from django.core.exceptions import ValidationError

        raise ValidationError({"reason": _("Give a reason for blocking.")})
    if card.state in (CardState.BLOCKED, CardState.REPLACED):
        raise _state_error(card)
    card.state, card.blocked_at, card.block_reason = CardState.BLOCKED, timezone.now(), reason.strip()
    card.save(update_fields=["state", "blocked_at", "block_reason"])
    event_record(
        event_type="card_blocked", member=card.member, payload={"card": card.number, "reason": reason}
    )
    return card


@transaction.atomic
def card_unblock(*, card: Card) -> Card:
    card = Card.objects.select_for_update().get(pk=card.pk)
    if card.state != CardState.BLOCKED:
        raise CardStateError(_("Card %(number)s is not blocked.") % {"number": card.number})
    card.state = CardState.ACTIVATED if card.activated_at else CardState.ISSUED
    card.blocked_at, card.block_reason = None, ""
    card.save(update_fields=["state", "blocked_at", "block_reason"])
    return card


@transaction.atomic
def card_replace(*, card: Card, new_number: str = "", reason: str = "") -> Card:
    """Replace a card with a new one for the same member. The balance stays with the
    member (it lives on the member's accounts), so nothing else moves; the old card is
    marked replaced and points at the new one."""
    card = Card.objects.select_for_update().get(pk=card.pk)
    if card.member_id is None:
        raise CardStateError(_("Only a card that belongs to a member can be replaced."))
    if card.kind == CardKind.VIRTUAL:
        raise CardStateError(_("A virtual card cannot be replaced."))
    if card.state == CardState.REPLACED:
        raise CardStateError(_("Card %(number)s is already replaced.") % {"number": card.number})
    new = card_issue(number=new_number, kind=card.kind, member=card.member)
    if card.activated_at:
        new.state, new.activated_at = CardState.ACTIVATED, timezone.now()
        new.save(update_fields=["state", "activated_at"])
    card.state, card.replaced_by = CardState.REPLACED, new
    card.block_reason = reason or card.block_reason
    card.save(update_fields=["state", "replaced_by", "block_reason"])
    event_record(
        event_type="card_replaced",
        member=card.member,
        payload={"old": card.number, "new": new.number, "reason": reason},
    )
    return new
