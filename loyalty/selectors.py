"""Reads: balances, point history, contact quality. No writes here."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from loyalty import refcache
from loyalty.models import (
    BonusAccount,
    Card,
    Consent,
    ContactChannel,
    ContactStatus,
    Currency,
    LedgerEntry,
    LotRemainder,
    Member,
    MemberEvent,
    Receipt,
    ReceiptKind,
    ReceiptState,
)
from loyalty.prepared import PreparedRead
from loyalty.services.contacts import phone_search_key

ZERO = Decimal("0")


def member_accounts_sql(member_id: str) -> dict[str, str]:
    """A ``PreparedRead`` extra value: the accounts of the member whose id is the SQL
    ``member_id`` (an alias's column), as ``[[id, currency id, available, pending], ...]``
    with the amounts as text (exact), or null; on PostgreSQL (elsewhere the caller reads
    the accounts itself)."""
    return {
        "postgresql": (
            "(SELECT json_agg(json_build_array(a.id, a.currency_id, a.available::text, a.pending::text)) "
            f"FROM {BonusAccount._meta.db_table} a WHERE a.member_id = {member_id})"
        )
    }


# Bonus currencies are read through the reference cache for this long (a currency not in
# the cached ones is looked up at once).
CURRENCY_SECONDS = 30.0


@dataclass(frozen=True)
class _Currencies:
    by_code: dict[str, Currency]
    by_id: dict[int, Currency]


def _currencies(fresh: bool = False) -> _Currencies:
    def load() -> _Currencies:
        rows = list(Currency.objects.all())
        return _Currencies(by_code={c.code: c for c in rows}, by_id={c.pk: c for c in rows})

    if fresh:
        refcache.forget(("currencies",))
    return refcache.cached(("currencies",), load, ttl=CURRENCY_SECONDS)


def currencies_by_code(codes: set[str]) -> dict[str, Currency]:
    """The program's currencies by code, from the reference cache; read again when one
    of ``codes`` is not among them (a currency added since)."""
    known = _currencies()
    if not codes <= known.by_code.keys():
        known = _currencies(fresh=True)
    return known.by_code


def currency_by_id(pk: int) -> Currency:
    known = _currencies()
    if pk not in known.by_id:
        known = _currencies(fresh=True)
    return known.by_id[pk]


def member_accounts_keep(member: Member, accounts) -> None:
    """Keep the accounts read by ``member_accounts_sql`` where ``member.bonus_accounts.all()``
    finds them, as ``prefetch_related`` leaves them: each with its member and its
    currency (from the reference cache) and without its creation time (read on use)."""
    names = ["id", "member_id", "currency_id", "available", "pending"]
    kept = []
    for pk, currency_id, available, pending in accounts or ():
        account = BonusAccount.from_db(
            member._state.db, names, [pk, member.pk, currency_id, Decimal(available), Decimal(pending)]
        )
        BonusAccount.currency.field.set_cached_value(account, currency_by_id(currency_id))
        BonusAccount.member.field.set_cached_value(account, member)
        kept.append(account)
    cache = getattr(member, "_prefetched_objects_cache", {})
    member._prefetched_objects_cache = {**cache, "bonus_accounts": kept}


@dataclass(frozen=True)
class Balance:
    account_id: int
    currency_code: str
    currency_name: str
    available: Decimal
    pending: Decimal
    expiring: Decimal
    expiring_days: int
    next_expiry: dt.datetime | None
    next_activation: dt.datetime | None
    # Held for purchases a till reserved and has not confirmed or cancelled yet (already
    # out of ``available``).
    reserved: Decimal = ZERO


def member_balances(
    *, member: Member, expiring_days: int = 30, now: dt.datetime | None = None
) -> list[Balance]:
    """Available, pending, soon-expiring and reserved points per currency (three
    queries)."""
    now = now or timezone.now()
    horizon = now + dt.timedelta(days=expiring_days)
    accounts = list(BonusAccount.objects.filter(member=member).select_related("currency"))
    # Reservations hold the default currency (receipts.receipt_hold).
    reserved = (
        Receipt.objects.filter(
            member=member, kind=ReceiptKind.SALE, state=ReceiptState.CALCULATED, bonus_paid__gt=0
        ).aggregate(s=Sum("bonus_paid"))["s"]
        or ZERO
    )
    soon = {
        row["account_id"]: row
        for row in LotRemainder.objects.filter(account__in=accounts)
        .values("account_id")
        .annotate(
            expiring=Sum("available", filter=Q(expires_at__gt=now, expires_at__lte=horizon)),
            next_expiry=Min("expires_at", filter=Q(expires_at__gt=now)),
            next_activation=Min("activates_at", filter=Q(pending__gt=0)),
        )
    }
    out = []
    for account in accounts:
        row = soon.get(account.pk, {})
        out.append(
            Balance(
                account_id=account.pk,
                currency_code=account.currency.code,
                currency_name=account.currency.label,
                available=account.available,
                pending=account.pending,
                expiring=(row.get("expiring") or ZERO),
                expiring_days=expiring_days,
                next_expiry=row.get("next_expiry"),
                next_activation=row.get("next_activation"),
                reserved=reserved if account.currency.is_default else ZERO,
            )
        )
    return out


# A member's account in a currency, read on every confirmed purchase: the SQL is written
# once (see loyalty.prepared).
ACCOUNT_OF_MEMBER = PreparedRead(BonusAccount, where="{t}.member_id = %s AND {t}.currency_id = %s")


def account_available(*, member_id: int, currency_id: int) -> Decimal:
    """What the member can spend in the currency now (zero without an account); one
    prepared query (the tills ask after every confirmation)."""
    account = ACCOUNT_OF_MEMBER.first(member_id, currency_id)
    return account.available if account else Decimal(0)


def member_ledger_history(*, member: Member, limit: int | None = 50) -> QuerySet[LedgerEntry]:
    """Newest ledger movements with what caused them (operation, receipt, operator)."""
    entries = (
        LedgerEntry.objects.filter(account__member=member)
        .select_related("operation", "operation__receipt", "operation__operator", "account__currency", "lot")
        .order_by("-created_at", "-id")
    )
    return entries[:limit] if limit else entries


def member_receipts(*, member: Member, limit: int = 20) -> QuerySet[Receipt]:
    return (
        Receipt.objects.filter(member=member)
        .select_related("point_of_sale", "card")
        .order_by("-purchased_at", "-id")[:limit]
    )


def member_events(*, member: Member, limit: int = 50) -> QuerySet[MemberEvent]:
    return (
        MemberEvent.objects.filter(member=member)
        .select_related("point_of_sale")
        .order_by("-occurred_at", "-id")[:limit]
    )


def member_cards(*, member: Member) -> QuerySet[Card]:
    return Card.objects.filter(member=member).order_by("-issued_at")


def member_consents(*, member: Member) -> dict[str, Consent]:
    return {c.channel: c for c in Consent.objects.filter(member=member)}


def members_search(queryset: QuerySet[Member], term: str) -> QuerySet[Member]:
    """Phone in any format, card number, email or name."""
    term = term.strip()
    if not term:
        return queryset
    e164 = phone_search_key(term)
    condition = (
        Q(cards__number=term)
        | Q(email__iexact=term)
        | Q(external_id=term)
        | Q(last_name__istartswith=term)
        | Q(first_name__istartswith=term)
    )
    if e164:
        condition |= Q(phone=e164)
    parts = term.split()
    if len(parts) >= 2:
        condition |= Q(last_name__iexact=parts[0], first_name__istartswith=parts[1])
    return queryset.filter(condition).distinct()


def contact_quality_summary() -> list[dict]:
    """Per month of registration: members, valid phone, valid email, and members
    contactable on each channel (valid contact and consent). One query."""
    consent = {
        channel: Q(consents__channel=channel, consents__granted=True)
        for channel in (ContactChannel.SMS, ContactChannel.EMAIL, ContactChannel.PUSH, ContactChannel.VIBER)
    }
    valid_phone = Q(phone_status=ContactStatus.VALID)
    valid_email = Q(email_status=ContactStatus.VALID)
    rows = (
        Member.objects.annotate(month=TruncMonth("registered_at"))
        .values("month")
        .annotate(
            members=Count("id", distinct=True),
            valid_phone=Count("id", filter=valid_phone, distinct=True),
            invalid_phone=Count("id", filter=Q(phone_status=ContactStatus.INVALID), distinct=True),
            valid_email=Count("id", filter=valid_email, distinct=True),
            invalid_email=Count("id", filter=Q(email_status=ContactStatus.INVALID), distinct=True),
            sms=Count("id", filter=valid_phone & consent[ContactChannel.SMS], distinct=True),
            viber=Count("id", filter=valid_phone & consent[ContactChannel.VIBER], distinct=True),
            email=Count("id", filter=valid_email & consent[ContactChannel.EMAIL], distinct=True),
            push=Count("id", filter=consent[ContactChannel.PUSH], distinct=True),
        )
        .order_by("-month")
    )
    return list(rows)
