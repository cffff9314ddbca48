"""What a member changes about themselves: profile, questionnaire, contacts (confirmed by
a code), cards, registration, an optional password. The pages and the member API call
these, so both behave the same."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty.models import Card, CustomField, Member, MemberEvent
from loyalty.services.cards import card_bind
from loyalty.services.errors import CardStateError
from loyalty.services.events import event_record, event_report
from loyalty.services.members import custom_fields_clean, member_create, member_update
from portal.models import CodeChannel, CodePurpose, MemberPassword
from portal.services.auth import Address, CodeInvalid, code_verify, member_by_address

# What a member may change themselves (contacts go through ``contact_confirm``).
EDITABLE = ("first_name", "middle_name", "last_name", "gender", "birth_date", "city", "language", "time_zone")


def profile_update(*, member: Member, channel: str, **changes: Any) -> Member:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationError({name: _("This field cannot be changed here.") for name in sorted(unknown)})
    return member_update(member=member, channel=channel, **changes)


def questionnaire_fields() -> list[CustomField]:
    return list(CustomField.objects.filter(active=True).order_by("order", "pk"))


def answers_save(*, member: Member, values: dict[str, Any], require: bool = False) -> Member:
    """Merge answers to the managed field set into the member's; answers to fields since
    retired are kept as they were."""
    clean = custom_fields_clean(values, require=require)
    member.custom_fields = {**member.custom_fields, **clean}
    member.save(update_fields=["custom_fields", "updated_at"])
    return member


@transaction.atomic
def questionnaire_submit(*, member: Member, values: dict[str, Any], channel: str) -> bool:
    """Save the questionnaire's answers (all required fields must be filled). Records
    ``questionnaire_filled`` the first time it is complete; returns whether it did."""
    answers_save(member=member, values=values, require=True)
    if MemberEvent.objects.filter(member=member, event_type="questionnaire_filled").exists():
        return False
    event_record(member=member, event_type="questionnaire_filled", channel=channel)
    return True


def contact_confirm(*, member: Member, address: Address, code: str, channel: str) -> Member:
    """Bind a new phone or email after the confirmation code the member asked for
    (``phone_bound`` / ``email_bound`` fire). Whether the contact belongs to someone else
    is told only after the code proves the member holds it."""
    code_verify(address=address, code=code, purpose=CodePurpose.BIND, member=member)
    owner = member_by_address(address)
    if owner is not None and owner.pk != member.pk:
        raise ValidationError({"login": _("This contact belongs to another member of the program.")})
    field = "phone" if address.channel == CodeChannel.SMS else "email"
    return member_update(member=member, channel=channel, **{field: address.value})


def card_free_check(number: str, member: Member | None = None) -> Card:
    """The card with this number if nobody has bound it yet (or ``member`` has). Another
    member's card is answered as not found, so numbers cannot be probed."""
    number = "".join(ch for ch in (number or "") if ch.isdigit())
    card = Card.objects.filter(number=number).first() if number else None
    if card is None or (card.member_id and (member is None or card.member_id != member.pk)):
        raise ValidationError({"card_number": _("There is no free card with this number.")})
    return card


CARD_TRIES_PER_HOUR = 10


def card_bind_by_number(*, member: Member, number: str) -> Card:
    """Bind a card the member holds: only a card nobody has bound yet (or their own).
    Ten wrong numbers an hour and the member must wait, so free cards cannot be found
    by trying numbers."""
    from django.core.cache import cache

    key = f"portal:card-tries:{member.pk}"
    if cache.get(key, 0) >= CARD_TRIES_PER_HOUR:
        raise ValidationError({"card_number": _("Too many wrong card numbers. Try again in an hour.")})
    try:
        card = card_free_check(number, member)
    except ValidationError:
        cache.add(key, 0, timeout=3600)
        cache.incr(key)
        raise
    try:
        return card_bind(card=card, member=member)
    except CardStateError as exc:
        raise ValidationError({"card_number": str(exc)}) from exc


def register(
    *,
    address: Address,
    code: str,
    channel: str,
    consents: dict[str, bool],
    card_number: str = "",
    **profile: Any,
) -> Member:
    """Create a member from the portal or the app after the registration code: profile,
    consents per channel, and optionally a card they already hold. Nothing is told about
    the address or the card before the code proves the person holds the address; an
    address that already belongs to a member signs that member in."""
    unknown = set(profile) - set(EDITABLE)
    if unknown:
        raise ValidationError({name: _("This field cannot be set here.") for name in sorted(unknown)})
    code_verify(address=address, code=code, purpose=CodePurpose.REGISTER)  # outside: wrong tries count
    existing = member_by_address(address)
    if existing is not None:
        return existing
    with transaction.atomic():
        contact = {"phone": address.value} if address.channel == CodeChannel.SMS else {"email": address.value}
        member = member_create(
            **contact,
            consents=consents,
            consent_source=channel,
            registration_channel=channel,
            **profile,
        )
        if card_number:
            card_bind_by_number(member=member, number=card_number)
    return member


# --- the optional password ---------------------------------------------------------------
PASSWORD_TRIES = 5
PASSWORD_LOCK = dt.timedelta(minutes=15)


def password_set(*, member: Member, password: str) -> None:
    from django.contrib.auth.password_validation import validate_password

    try:
        validate_password(password)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    MemberPassword.objects.update_or_create(
        member=member, defaults={"password": make_password(password), "failed": 0, "locked_until": None}
    )


def password_remove(*, member: Member) -> None:
    MemberPassword.objects.filter(member=member).delete()


def password_sign_in(*, address: Address, password: str, now: dt.datetime | None = None) -> Member:
    """Sign in with the member's password; five wrong ones lock it for a quarter of an hour."""
    now = now or timezone.now()
    member = member_by_address(address)
    row = MemberPassword.objects.filter(member=member).first() if member else None
    if row is None:
        check_password(password, None)  # the same work whether or not there is a password
        raise CodeInvalid(_("Wrong login or password."))
    if row.locked_until and row.locked_until > now:
        raise CodeInvalid(_("Too many wrong passwords. Sign in with a code, or try again later."))
    if not check_password(password, row.password):
        row.failed += 1
        row.locked_until = now + PASSWORD_LOCK if row.failed >= PASSWORD_TRIES else None
        row.save(update_fields=["failed", "locked_until"])
        raise CodeInvalid(_("Wrong login or password."))
    if row.failed:
        row.failed, row.locked_until = 0, None
        row.save(update_fields=["failed", "locked_until"])
    return member


# --- what the app reports -------------------------------------------------------------
def app_event_report(
    *, member: Member, event_type: str, payload: dict, channel: str
) -> tuple[MemberEvent, bool]:
    """Record an event the app reports (app installed, social activity, ...). An
    installation counts once per member: a repeat returns the first one. Returns the
    event and whether it was recorded now."""
    return event_report(event_type=event_type, member=member, channel=channel, payload=payload)
