"""Member import from CSV.

Rows are checked and normalised one by one, then written a chunk at a time (one lookup of
existing members per chunk, ``bulk_create`` / ``bulk_update``). A row is *rejected* (with
its line number and reason) when it cannot be stored at all: no identifier, a malformed
date, an unknown gender or status, a phone that belongs to another member. A row whose
phone or email is invalid is *kept*, marked as invalid contact data. Members are matched
by ``external_id`` (else by phone), so importing the same file again changes nothing.
"""

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from loyalty.models import (
    Card,
    CardState,
    Consent,
    ConsentChange,
    ContactChannel,
    Gender,
    Member,
    MemberState,
    RegistrationChannel,
    Status,
)
from loyalty.services.cards import card_number_valid
from loyalty.services.contacts import contacts_normalise
from loyalty.services.members import custom_fields_clean, referral_code_new

PROFILE = ["external_id", "last_name", "first_name", "middle_name", "postal_address", "city"]
CONSENT_COLUMNS = {f"consent_{c.value}": c.value for c in ContactChannel}
TRUE = {"1", "true", "yes", "y", "да", "+"}
FALSE = {"0", "false", "no", "n", "нет", "-"}
COMPARED = [
    *PROFILE,
    "gender",
    "birth_date",
    "phone",
    "phone_raw",
    "phone_status",
    "email",
    "email_raw",
    "email_status",
    "registration_channel",
    "status_id",
    "custom_fields",
]


@dataclass
class RowProblem:
    line: int
    reason: str
    kept: bool  # True: stored, flagged; False: rejected


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    cards_issued: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def rejected(self) -> list[RowProblem]:
        return [p for p in self.problems if not p.kept]

    @property
    def flagged(self) -> list[RowProblem]:
        return [p for p in self.problems if p.kept]


@dataclass
class _Row:
    line: int
    member: Member
    consents: dict[str, bool]
    card_number: str


def _parse_date(value: str, line_field: str) -> dt.date | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(
        _("%(field)s: %(value)s is not a date (YYYY-MM-DD or DD.MM.YYYY)")
        % {"field": line_field, "value": value}
    )


def _parse_row(
    line: int, raw: dict[str, str], statuses: dict[str, int]
) -> tuple[_Row | None, list[RowProblem]]:
    row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
    problems: list[RowProblem] = []
    try:
        gender = row.get("gender", "").lower()
        gender = {"м": "male", "m": "male", "ж": "female", "f": "female"}.get(gender, gender)
        if gender not in Gender.values:
            raise ValueError(_("gender: %(value)s is not one of male, female") % {"value": row["gender"]})
        birth_date = _parse_date(row.get("birth_date", ""), "birth_date")
        registered_at = None
        if row.get("registered_at"):
            registered_at = parse_datetime(row["registered_at"]) or (
                dt.datetime.combine(parse_date(row["registered_at"]), dt.time())
                if parse_date(row["registered_at"])
                else None
            )
            if registered_at is None:
                raise ValueError(
                    _("registered_at: %(value)s is not a date") % {"value": row["registered_at"]}
                )
            if timezone.is_naive(registered_at):
                registered_at = timezone.make_aware(registered_at)
        channel = row.get("registration_channel") or RegistrationChannel.IMPORT
        if channel not in RegistrationChannel.values:
            raise ValueError(_("registration_channel: %(value)s is unknown") % {"value": channel})
        status_id = None
        if row.get("status"):
            if row["status"] not in statuses:
                raise ValueError(_("status: there is no status %(value)s") % {"value": row["status"]})
            status_id = statuses[row["status"]]
        consents = {}
        for column, channel_key in CONSENT_COLUMNS.items():
            value = row.get(column, "").lower()
            if value in TRUE:
                consents[channel_key] = True
            elif value in FALSE:
                consents[channel_key] = False
            elif value:
                raise ValueError(
                    _("%(field)s: %(value)s is not yes or no") % {"field": column, "value": value}
                )
        custom = {k.removeprefix("custom:"): v for k, v in row.items() if k.startswith("custom:") and v}
        try:
            custom = custom_fields_clean(custom)
        except ValidationError as exc:
            raise ValueError("; ".join(f"{k}: {v[0]}" for k, v in exc.message_dict.items())) from exc
        card_number = row.get("card_number", "")
        if card_number and not card_number_valid(card_number):
            raise ValueError(
                _("card_number: %(value)s is not a card number of this program") % {"value": card_number}
            )
    except ValueError as exc:
        return None, [RowProblem(line, str(exc), kept=False)]
    contacts = contacts_normalise(
        phone=row.get("phone", ""),
        email=row.get("email", ""),
        city=row.get("city", ""),
        postal_address=row.get("postal_address", ""),
    )
    if not (row.get("external_id") or contacts.phone or contacts.email):
        return None, [
            RowProblem(
                line, _("no external_id and no valid phone or email to identify the member"), kept=False
            )
        ]
    for field_name, message in contacts.errors().items():
        problems.append(RowProblem(line, f"{field_name}: {message}", kept=True))
    member = Member(
        **{f: row.get(f, "") for f in PROFILE if f != "city"},
        city=contacts.city,
        gender=gender,
        birth_date=birth_date,
        registration_channel=channel,
        status_id=status_id,
        custom_fields=custom,
        state=MemberState.REGISTERED,
        phone=contacts.phone,
        phone_raw=contacts.phone_raw,
        phone_status=contacts.phone_status,
        phone_operator=contacts.phone_operator,
        phone_region=contacts.phone_region,
        email=contacts.email,
        email_raw=contacts.email_raw,
        email_status=contacts.email_status,
        time_zone=contacts.time_zone,
        time_zone_source=contacts.time_zone_source,
    )
    member.external_id = member.external_id or None
    if registered_at:
        member.registered_at = registered_at
    return _Row(line, member, consents, card_number), problems


def members_import(
    rows: Iterable[dict[str, str]], *, first_line: int = 2, chunk_size: int = 1000, source: str = "import"
) -> ImportReport:
    """Import member rows (dicts keyed by column name). See the module docstring."""
    report = ImportReport()
    statuses = dict(Status.objects.values_list("code", "pk"))
    chunk: list[_Row] = []
    for line, raw in enumerate(rows, start=first_line):
        parsed, problems = _parse_row(line, raw, statuses)
        report.problems.extend(problems)
        if parsed is not None:
            chunk.append(parsed)
        if len(chunk) >= chunk_size:
            _write_chunk(chunk, report, source)
            chunk = []
    if chunk:
        _write_chunk(chunk, report, source)
    report.problems.sort(key=lambda p: p.line)
    return report


@transaction.atomic
def _write_chunk(rows: list[_Row], report: ImportReport, source: str) -> None:
    by_external = {
        m.external_id: m
        for m in Member.objects.filter(
            external_id__in=[r.member.external_id for r in rows if r.member.external_id]
        )
    }
    phones = [r.member.phone for r in rows if r.member.phone]
    by_phone = {m.phone: m for m in Member.objects.filter(phone__in=phones)}
    creates: list[_Row] = []
    updates: list[Member] = []
    seen_phones: dict[str, int] = {}
    kept: list[tuple[_Row, Member]] = []
    for r in rows:
        new = r.member
        existing = by_external.get(new.external_id) if new.external_id else by_phone.get(new.phone)
        if new.phone:
            owner = by_phone.get(new.phone)
            if (
                (owner is not None and existing is not None and owner.pk != existing.pk)
                or (owner is not None and existing is None and new.external_id)
                or new.phone in seen_phones
            ):
                if owner is not None:
                    reason = _("phone: %(phone)s already belongs to member %(other)s") % {
                        "phone": new.phone,
                        "other": owner.external_id or owner.pk,
                    }
                else:
                    reason = _("phone: %(phone)s is also on line %(line)s") % {
                        "phone": new.phone,
                        "line": seen_phones[new.phone],
                    }
                report.problems.append(RowProblem(r.line, reason, kept=False))
                continue
            seen_phones[new.phone] = r.line
        if existing is None:
            new.referral_code = referral_code_new()
            creates.append(r)
            continue
        changed = [
            f
            for f in COMPARED
            if getattr(existing, f) != getattr(new, f)
            and not (f in ("phone", "phone_raw", "email", "email_raw") and not getattr(new, f))
        ]
        if changed:
            for f in changed:
                setattr(existing, f, getattr(new, f))
            if "phone" in changed or "city" in changed:
                existing.time_zone, existing.time_zone_source = new.time_zone, new.time_zone_source
            updates.append(existing)
            report.updated += 1
        else:
            report.unchanged += 1
        kept.append((r, existing))
    if creates:
        Member.objects.bulk_create([r.member for r in creates])
        if not all(r.member.pk for r in creates):  # databases without RETURNING on bulk insert
            ids = dict(
                Member.objects.filter(
                    referral_code__in=[r.member.referral_code for r in creates]
                ).values_list("referral_code", "pk")
            )
            for r in creates:
                r.member.pk = ids[r.member.referral_code]
        report.created += len(creates)
        kept.extend((r, r.member) for r in creates)
    if updates:
        Member.objects.bulk_update(updates, [*COMPARED, "time_zone", "time_zone_source", "updated_at"])
    _consents(kept, source)
    report.cards_issued += _cards(kept, report)


def _consents(kept: list[tuple[_Row, Member]], source: str) -> None:
    now = timezone.now()
    members = [m.pk for r, m in kept if r.consents]
    current = {(c.member_id, c.channel): c for c in Consent.objects.filter(member_id__in=members)}
    creates, updates, history = [], [], []
    for r, m in kept:
        for channel, granted in r.consents.items():
            consent = current.get((m.pk, channel))
            if consent is not None and consent.granted == granted:
                continue
            if consent is None:
                creates.append(
                    Consent(member_id=m.pk, channel=channel, granted=granted, changed_at=now, source=source)
                )
            else:
                consent.granted, consent.changed_at, consent.source = granted, now, source
                updates.append(consent)
            history.append(
                ConsentChange(member_id=m.pk, channel=channel, granted=granted, changed_at=now, source=source)
            )
    Consent.objects.bulk_create(creates)
    Consent.objects.bulk_update(updates, ["granted", "changed_at", "source"])
    ConsentChange.objects.bulk_create(history)


def _cards(kept: list[tuple[_Row, Member]], report: ImportReport) -> int:
    wanted = {r.card_number: (r, m) for r, m in kept if r.card_number}
    existing = {c.number: c for c in Card.objects.filter(number__in=wanted)}
    new = []
    for number, (r, m) in wanted.items():
        card = existing.get(number)
        if card is None:
            new.append(
                Card(number=number, member_id=m.pk, state=CardState.ACTIVATED, activated_at=timezone.now())
            )
        elif card.member_id not in (None, m.pk):
            report.problems.append(
                RowProblem(
                    r.line,
                    _("card_number: %(number)s belongs to another member") % {"number": number},
                    kept=True,
                )
            )
        elif card.member_id is None:
            card.member_id = m.pk
            card.save(update_fields=["member"])
    Card.objects.bulk_create(new)
    return len(new)


def csv_rows(text: str) -> Iterator[dict[str, str]]:
    """Rows of a UTF-8 CSV (comma or semicolon separated, BOM tolerated)."""
    text = text.lstrip("\ufeff")
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    yield from csv.DictReader(io.StringIO(text), delimiter=delimiter)
