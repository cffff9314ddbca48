"""Building the engine's context from the database: a bounded number of queries, and
only the member data the active offers' filters need."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from loyalty import refcache
from loyalty.models import BonusAccount, Member, PointOfSale, Product, Receipt, ReceiptKind, ReceiptState
from loyalty.prepared import PreparedRead
from loyalty.services.catalog import catalog_version
from offers.engine import Context, Line, MemberInfo
from offers.models import Counter, CounterPeriod, CounterValue, PersonalProduct


@dataclass(frozen=True)
class LineIn:
    sku: str
    quantity: Decimal
    price: Decimal
    name: str = ""


def offer_period_start(offer_starts_at: dt.datetime | None) -> dt.date:
    """Where an "offer period" counter starts: the offer's start date in the program's
    zone (the beginning of time for an offer without a start)."""
    if offer_starts_at is None:
        return dt.date(2000, 1, 1)
    return local_time(offer_starts_at, settings.TIME_ZONE).date()


def period_start(period: str, local: dt.datetime, offer_starts_at: dt.datetime | None = None) -> dt.date:
    if period == CounterPeriod.OFFER:
        return offer_period_start(offer_starts_at)
    day = local.date()
    if period == CounterPeriod.DAY:
        return day
    if period == CounterPeriod.WEEK:
        return day - dt.timedelta(days=day.weekday())
    if period == CounterPeriod.MONTH:
        return day.replace(day=1)
    return dt.date(2000, 1, 1)


def local_time(now: dt.datetime, zone_name: str) -> dt.datetime:
    try:
        zone = zoneinfo.ZoneInfo(zone_name or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return now.astimezone(zone)


def offer_counter_key(key: str, start: dt.date) -> str:
    return f"{key}@{start.isoformat()}"


# Every priced receipt reads its member's balances: the SQL is written once (see
# loyalty.prepared).
_ACCOUNTS_WITH_CURRENCY = PreparedRead(BonusAccount, related=("currency",), where="{t}.member_id = %s")


def member_info(
    member: Member, needs: frozenset[str], local_now: dt.datetime, exclude_receipt: int | None = None
) -> MemberInfo:
    """``exclude_receipt``: the receipt being evaluated, when it is already confirmed
    (purchase-completion offers), so "purchases before this one" does not count it."""
    info = MemberInfo(
        id=member.pk,
        first_name=member.first_name,
        last_name=member.last_name,
        middle_name=member.middle_name,
        gender=member.gender,
        birth_date=member.birth_date,
        registered_at=member.registered_at,
        status=member.status.code if member.status_id else "",
        status_rank=member.status.rank if member.status_id else None,
        referrer_id=member.referrer_id,
    )
    if "audiences" in needs:
        from segments.models import AudienceMember

        info.audiences = frozenset(
            AudienceMember.objects.filter(member=member).values_list("audience_id", flat=True)
        )
    if "segments" in needs:
        from segments.services import member_segments

        info.segments = frozenset(s.pk for s in member_segments(member))
    if "counters" in needs:
        counters = {c.pk: c for c in Counter.objects.all()}
        values = {}
        for row in CounterValue.objects.filter(member=member).values("counter_id", "period_start", "value"):
            counter = counters.get(row["counter_id"])
            if counter is None:
                continue
            if counter.period == CounterPeriod.OFFER:
                # Each offer period has its own value: "key@start" (see offer_counter_key).
                values[offer_counter_key(counter.key, row["period_start"])] = row["value"]
            elif row["period_start"] == period_start(counter.period, local_now):
                values[counter.key] = row["value"]
        info.counters = values
    if "personal_products" in needs:
        now = local_now
        info.personal_products = frozenset(
            PersonalProduct.objects.filter(member=member, valid_from__lte=now)
            .exclude(valid_until__lte=now)
            .values_list("product__sku", flat=True)
        )
    if "purchases" in needs:
        info.purchases = (
            Receipt.objects.filter(
                member=member,
                kind=ReceiptKind.SALE,
                state__in=[ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED],
            )
            .exclude(pk=exclude_receipt)
            .count()
        )
    if "balances" in needs:
        # Read with the member's card when it named the member (pos.scoping), else now.
        accounts = getattr(member, "_prefetched_objects_cache", {}).get("bonus_accounts")
        if accounts is None:
            accounts = _ACCOUNTS_WITH_CURRENCY.all(member.pk)
        info.balances = {
            ("" if account.currency.is_default else account.currency.code): account.available
            for account in accounts
        }
        info.account_ids = {account.currency_id: account.pk for account in accounts}
        info.accounts_read = True
    return info


# Products by SKU come from the per-process reference cache, under the catalog's version:
# a product or group saved or deleted reaches every process within a second, a new SKU is
# looked up at once, and this bounds how long a change made around the models (raw SQL)
# can go unseen.
PRODUCT_SECONDS = 900.0


def _products_load(skus: list[str]) -> dict[str, dict]:
    return {
        p["sku"]: p for p in Product.objects.filter(sku__in=skus).values("id", "sku", "name", "group__path")
    }


def purchase_context(
    *,
    event: str,
    point_of_sale: PointOfSale,
    lines: list[LineIn],
    payments: list[str] = (),
    member: Member | None,
    needs: frozenset[str],
    now: dt.datetime | None = None,
    payload: dict | None = None,
    exclude_receipt: int | None = None,
) -> Context:
    now = now or timezone.now()
    local = local_time(now, point_of_sale.time_zone)
    products = refcache.cached_many(
        f"product@{catalog_version()}", {ln.sku for ln in lines}, _products_load, ttl=PRODUCT_SECONDS
    )
    ctx_lines = []
    for i, ln in enumerate(lines):
        product = products.get(ln.sku)
        ctx_lines.append(
            Line(
                index=i,
                sku=ln.sku,
                quantity=Decimal(ln.quantity),
                price=Decimal(ln.price),
                product_id=product["id"] if product else None,
                group_path=product["group__path"] if product else "",
                name=ln.name or (product["name"] if product else ""),
            )
        )
    return Context(
        event=event,
        now=now,
        local_now=local,
        lines=ctx_lines,
        member=member_info(member, needs | {"balances"}, local, exclude_receipt) if member else None,
        point_of_sale_id=point_of_sale.pk,
        partner_id=point_of_sale.partner_id,
        sales_channel=point_of_sale.kind,
        pos_attributes=point_of_sale.attributes or {},
        payment_methods=frozenset(payments),
        payload=payload or {},
        currency=settings.LOYALTY["CURRENCY"],
    )


def event_context(
    *, event: str, member: Member, needs: frozenset[str], payload: dict, point_of_sale=None, now=None
) -> Context:
    now = now or timezone.now()
    local = local_time(now, point_of_sale.time_zone if point_of_sale else member.time_zone)
    return Context(
        event=event,
        now=now,
        local_now=local,
        member=member_info(member, needs | {"balances"}, local),
        point_of_sale_id=point_of_sale.pk if point_of_sale else None,
        partner_id=point_of_sale.partner_id if point_of_sale else None,
        sales_channel=point_of_sale.kind if point_of_sale else "",
        pos_attributes=(point_of_sale.attributes or {}) if point_of_sale else {},
        payload=payload,
        currency=settings.LOYALTY["CURRENCY"],
    )
