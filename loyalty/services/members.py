"""Members: profile writes with contact normalisation, status, consent, lifecycle."""

import datetime as dt
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty.models import (
    Consent,
    ConsentChange,
    ContactChannel,
    CustomField,
    CustomFieldKind,
    Member,
    MemberState,
    Status,
    StatusChange,
)
from loyalty.services.contacts import ContactData, contacts_normalise
from loyalty.services.errors import TAKEN, DomainError
from loyalty.services.events import event_record

REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# The profile fields member_create / member_update accept, in form order.
PROFILE_FIELDS = (
    "external_id",
    "last_name",
    "first_name",
    "middle_name",
    "gender",
    "birth_date",
    "phone",
    "email",
    "postal_address",
    "city",
    "time_zone",
    "children",
    "pets",
    "custom_fields",
    "registered_at",
    "registration_channel",
    "language",
    "referrer",
)


def referral_code_new() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(8))


def contacts_apply(member: Member, data: ContactData, *, keep_manual_zone: bool = True) -> None:
    """Copy normalised contact data onto ``member`` (not saved)."""
    member.city = data.city
    member.phone, member.phone_raw = data.phone, data.phone_raw
    member.phone_status, member.phone_operator = data.phone_status, data.phone_operator
    member.phone_region = data.phone_region
    member.email, member.email_raw, member.email_status = data.email, data.email_raw, data.email_status
    if not (keep_manual_zone and member.time_zone_source == "manual" and member.time_zone):
        member.time_zone, member.time_zone_source = data.time_zone, data.time_zone_source


def custom_fields_clean(values: dict[str, Any], *, require: bool = False) -> dict[str, Any]:
    """Validate custom field values against the managed field set; returns them with
    values coerced to JSON-friendly types. Raises ``ValidationError`` keyed
    ``custom_fields.<code>``."""
    if not isinstance(values, dict):
        raise ValidationError({"custom_fields": _("Custom fields must be an object.")})
    fields = {f.code: f for f in CustomField.objects.filter(active=True)}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for code, value in values.items():
        field = fields.get(code)
        if field is None:
            errors[f"custom_fields.{code}"] = _("There is no active custom field %(code)s.") % {"code": code}
            continue
        if value in (None, ""):
            continue
        try:
            clean[code] = _coerce(field, value)
        except (ValueError, TypeError, InvalidOperation):
            errors[f"custom_fields.{code}"] = _("%(value)s is not a valid %(kind)s.") % {
                "value": value,
                "kind": field.get_kind_display().lower(),
            }
    if require:
        for code, field in fields.items():
            if field.required and code not in clean:
                errors[f"custom_fields.{code}"] = _("%(label)s is required.") % {"label": field.label}
    if errors:
        raise ValidationError(errors)
    return clean


def _coerce(field: CustomField, value: Any) -> Any:
    match field.kind:
        case CustomFieldKind.NUMBER:
            return str(Decimal(str(value)))
        case CustomFieldKind.DATE:
            return dt.date.fromisoformat(str(value)).isoformat()
        case CustomFieldKind.BOOLEAN:
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in {"1", "true", "yes", "да", "y"}:
                return True
            if lowered in {"0", "false", "no", "нет", "n"}:
                return False
            raise ValueError(value)
        case CustomFieldKind.CHOICE:
            if str(value) not in field.choices:
                raise ValueError(value)
            return str(value)
        case _:
            return str(value)


def family_clean(member: Member) -> None:
    """Children are ``{name, birth_date, gender}`` objects, pets a list of kinds."""
    errors = {}
    children = member.children if member.children is not None else []
    if not isinstance(children, list) or not all(isinstance(c, dict) for c in children):
        errors["children"] = _("Children must be a list of objects with name, birth_date and gender.")
    else:
        for i, child in enumerate(children):
            unknown = set(child) - {"name", "birth_date", "gender"}
            if unknown:
                errors["children"] = _("Child %(n)s has unknown fields: %(fields)s") % {
                    "n": i + 1,
                    "fields": ", ".join(sorted(unknown)),
                }
            elif child.get("birth_date"):
                try:
                    dt.date.fromisoformat(str(child["birth_date"]))
                except ValueError:
                    errors["children"] = _("Child %(n)s: %(value)s is not a date (YYYY-MM-DD).") % {
                        "n": i + 1,
                        "value": child["birth_date"],
                    }
    pets = member.pets if member.pets is not None else []
    if not isinstance(pets, list) or not all(isinstance(p, str) and p.strip() for p in pets):
        errors["pets"] = _('Pets must be a list of words, e.g. ["cat", "dog"].')
    if errors:
        raise ValidationError(errors)


def _profile_check(member: Member, data: ContactData) -> None:
    errors: dict = data.errors()
    try:
        family_clean(member)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if data.phone and Member.objects.filter(phone=data.phone).exclude(pk=member.pk).exists():
        errors["phone"] = ValidationError(_("This phone number belongs to another member."), code=TAKEN)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def member_create(
    *,
    phone: str = "",
    email: str = "",
    city: str = "",
    postal_address: str = "",
    state: str = MemberState.REGISTERED,
    consents: dict[str, bool] | None = None,
    consent_source: str = "",
    **profile: Any,
) -> Member:
    """Create a member. Invalid phone or email is refused with a field error; a phone
    already used by another member too."""
    unknown = set(profile) - set(PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"unknown profile fields: {sorted(unknown)}")
    data = contacts_normalise(phone=phone, email=email, city=city, postal_address=postal_address)
    member = Member(city=city, postal_address=postal_address, state=state, **profile)
    if profile.get("time_zone"):
        member.time_zone_source = "manual"
    _profile_check(member, data)
    contacts_apply(member, data)
    if "custom_fields" in profile:
        member.custom_fields = custom_fields_clean(profile["custom_fields"])
    member.referral_code = referral_code_new()
    member.full_clean(exclude=["referral_code", "phone", "email"])
    member.save()
    for channel, granted in (consents or {}).items():
        consent_set(member=member, channel=channel, granted=granted, source=consent_source or "registration")
    if state in (MemberState.REGISTERED, MemberState.ACTIVATED):
        event_record(
            member=member,
            event_type="registration_completed",
            channel=member.registration_channel,
            payload={"referrer_id": member.referrer_id} if member.referrer_id else {},
        )
        if member.referrer_id:
            event_record(
                member=member.referrer, event_type="friend_invited", payload={"friend_id": member.pk}
            )
    return member


@transaction.atomic
def member_update(*, member: Member, channel: str = "back_office", **changes: Any) -> Member:
    """Change profile fields. Contacts are re-normalised; binding a new phone or email
    records ``phone_bound`` / ``email_bound``."""
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"unknown profile fields: {sorted(unknown)}")
    old_phone, old_email = member.phone, member.email
    for field, value in changes.items():
        setattr(member, field, value)
    if "time_zone" in changes:
        member.time_zone_source = "manual" if changes["time_zone"] else ""
    data = contacts_normalise(
        phone=changes.get("phone", member.phone_raw or member.phone),
        email=changes.get("email", member.email_raw or member.email),
        city=member.city,
        postal_address=member.postal_address,
    )
    _profile_check(member, data)
    contacts_apply(member, data)
    if "custom_fields" in changes:
        member.custom_fields = custom_fields_clean(changes["custom_fields"])
    member.full_clean(exclude=["phone", "email"])
    member.save()
    if member.phone and member.phone != old_phone:
        event_record(member=member, event_type="phone_bound", channel=channel)
    if member.email and member.email != old_email:
        event_record(member=member, event_type="email_bound", channel=channel)
    return member


@transaction.atomic
def consent_set(
    *, member: Member, channel: str, granted: bool, source: str, changed_by=None, at=None
) -> Consent:
    """Record consent given or withdrawn on one channel (with when and how)."""
    if channel not in ContactChannel.values:
        raise ValidationError({"channel": _("Unknown channel %(channel)s.") % {"channel": channel}})
    at = at or timezone.now()
    consent, created = Consent.objects.get_or_create(
        member=member,
        channel=channel,
        defaults={"granted": granted, "changed_at": at, "source": source},
    )
    if not created and consent.granted == granted:
        return consent
    if not created:
        consent.granted, consent.changed_at, consent.source = granted, at, source
        consent.save(update_fields=["granted", "changed_at", "source"])
    ConsentChange.objects.create(
        member=member, channel=channel, granted=granted, changed_at=at, source=source, changed_by=changed_by
    )
    event_record(
        member=member,
        event_type="consent_changed",
        channel=source,
        payload={"channel": channel, "granted": granted},
    )
    return consent


@transaction.atomic
def member_set_status(*, member: Member, status: Status | None, reason: str, changed_by=None) -> Member:
    """Change the member's tier; history and a ``status_changed`` event follow."""
    if member.status_id == (status.pk if status else None):
        return member
    previous = member.status
    member.status = status
    member.save(update_fields=["status", "updated_at"])
    StatusChange.objects.create(
        member=member, status_from=previous, status_to=status, reason=reason, changed_by=changed_by
    )
    event_record(
        member=member,
        event_type="status_changed",
        payload={
            "from": previous.code if previous else None,
            "to": status.code if status else None,
            "reason": reason,
        },
    )
    return member


@transaction.atomic
def member_activate(*, member: Member) -> Member:
    if member.state == MemberState.BLOCKED:
        raise DomainError(_("A blocked member cannot be activated."))
    if member.state != MemberState.ACTIVATED:
        member.state = MemberState.ACTIVATED
        member.save(update_fields=["state", "updated_at"])
    return member


@transaction.atomic
def member_block(*, member: Member, reason: str) -> Member:
    if not reason.strip():
        raise ValidationError({"reason": _("Give a reason for blocking.")})
    member.state, member.blocked_reason = MemberState.BLOCKED, reason.strip()
    member.save(update_fields=["state", "blocked_reason", "updated_at"])
    event_record(member=member, event_type="member_blocked", payload={"reason": reason})
    return member


@transaction.atomic
def member_unblock(*, member: Member, reason: str) -> Member:
    if not reason.strip():
        raise ValidationError({"reason": _("Give a reason for unblocking.")})
    if member.state == MemberState.BLOCKED:
        has_active_card = member.cards.filter(state="activated").exists()
        member.state = MemberState.ACTIVATED if has_active_card else MemberState.REGISTERED
        member.blocked_reason = ""
        member.save(update_fields=["state", "blocked_reason", "updated_at"])
    return member
