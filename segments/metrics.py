"""The segment metric catalog: one class per metric, registered under a stable key.

A metric turns ``(operator, value, params)`` into a ``Q`` on ``Member`` (subqueries and
lookups only, so a whole rule tree is one SQL query) and into words for the summary.
Keys are persisted in segment rules: renaming one needs a data migration.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import (
    Avg,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import ExtractDay, ExtractMonth
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty.events import event_types
from loyalty.models import (
    BonusAccount,
    Consent,
    ContactChannel,
    ContactStatus,
    Currency,
    EntryKind,
    Gender,
    LedgerEntry,
    LotRemainder,
    Member,
    MemberEvent,
    MemberState,
    ProductGroup,
    Receipt,
    ReceiptKind,
    ReceiptLine,
    ReceiptPayment,
    ReceiptState,
    RegistrationChannel,
    SalesChannel,
)

NUMBER, DATE, CHOICE, TEXT, BOOLEAN = "number", "date", "choice", "text", "boolean"
OPERATORS = {
    "eq": _("is"),
    "ne": _("is not"),
    "gt": _("more than"),
    "gte": _("at least"),
    "lt": _("less than"),
    "lte": _("at most"),
    "between": _("between"),
    "in": _("is one of"),
    "not_in": _("is none of"),
    "before": _("before"),
    "after": _("after"),
}
NUMERIC_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
DATE_OPS = ("eq", "before", "after", "between")
SET_OPS = ("in", "not_in")
NOTHING = Q(pk__in=[])
EVERYONE = Q(pk__isnull=False)


class RuleError(ValueError):
    """A rule that cannot be compiled; the message names the condition."""


@dataclass(frozen=True)
class Param:
    kind: str  # "period", "choice", "number", "text", "boolean"
    label: str | Promise
    required: bool = False
    choices: Callable[[], list[tuple[str, str]]] | None = None
    default: Any = None


def period_bounds(period: dict | None, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``{"last_days": N}`` or ``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`` (inclusive)."""
    if not period:
        return None, None
    if "last_days" in period:
        return now - dt.timedelta(days=int(period["last_days"])), None
    start = dt.date.fromisoformat(period["from"]) if period.get("from") else None
    end = dt.date.fromisoformat(period["to"]) if period.get("to") else None
    tz = timezone.get_current_timezone()
    return (
        dt.datetime.combine(start, dt.time.min, tz) if start else None,
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tz) if end else None,
    )


def period_words(period: dict | None) -> str:
    if not period:
        return ""
    if "last_days" in period:
        return gettext("in the last %(days)s days") % {"days": period["last_days"]}
    if period.get("from") and period.get("to"):
        return gettext("from %(start)s to %(end)s") % {"start": period["from"], "end": period["to"]}
    if period.get("from"):
        return gettext("since %(start)s") % {"start": period["from"]}
    return gettext("until %(end)s") % {"end": period["to"]}


def holds(op: str, left, right) -> bool:
    """Whether ``left op right`` — used to decide if members with nothing (0) match."""
    match op:
        case "eq":
            return left == right
        case "ne":
            return left != right
        case "gt":
            return left > right
        case "gte":
            return left >= right
        case "lt":
            return left < right
        case "lte":
            return left <= right
        case "between":
            return right[0] <= left <= right[1]
    return False


def lookup(name: str, op: str, value) -> Q:
    match op:
        case "eq":
            return Q(**{name: value})
        case "ne":
            return ~Q(**{name: value})
        case "gt" | "after":
            return Q(**{f"{name}__gt": value})
        case "gte":
            return Q(**{f"{name}__gte": value})
        case "lt" | "before":
            return Q(**{f"{name}__lt": value})
        case "lte":
            return Q(**{f"{name}__lte": value})
        case "between":
            return Q(**{f"{name}__gte": value[0], f"{name}__lte": value[1]})
        case "in":
            return Q(**{f"{name}__in": value})
        case "not_in":
            return ~Q(**{f"{name}__in": value})
    raise RuleError(f"operator {op}")


class Metric:
    key: str
    label: str | Promise
    group: str | Promise
    value_type: str = NUMBER
    operators: tuple[str, ...] = NUMERIC_OPS
    params: dict[str, Param] = {}
    help: str | Promise = ""

    def choices(self) -> list[tuple[str, str]] | None:
        return None

    def condition(self, op: str, value, params: dict, now: dt.datetime) -> Q:
        raise NotImplementedError

    def describe(self, op: str, value, params: dict) -> str:
        shown = value
        if self.value_type == CHOICE or op in SET_OPS:
            labels = dict(self.choices() or [])
            values = value if isinstance(value, list) else [value]
            shown = ", ".join(str(labels.get(str(v), v)) for v in values)
        elif op == "between":
            shown = gettext("%(low)s and %(high)s") % {"low": value[0], "high": value[1]}
        elif self.value_type == BOOLEAN:
            shown = gettext("yes") if value else gettext("no")
        words = [str(self.label), str(OPERATORS[op]), str(shown)]
        for name, param in self.params.items():
            if params.get(name) in (None, "", {}):
                continue
            if param.kind == "period":
                words.append(period_words(params[name]))
            elif param.choices:
                words.append(f"({param.label}: {dict(param.choices()).get(str(params[name]), params[name])})")
            else:
                words.append(f"({param.label}: {params[name]})")
        return " ".join(w for w in words if w)


class MetricRegistry:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def register(self, cls: type[Metric]) -> type[Metric]:
        if cls.key in self._metrics:
            raise ValueError(f"metric {cls.key!r} is registered twice")
        self._metrics[cls.key] = cls()
        return cls

    def get(self, key: str) -> Metric | None:
        return self._metrics.get(key)

    def __iter__(self):
        return iter(self._metrics.values())

    def catalog(self) -> list[dict]:
        """The metric catalog as the builder page needs it."""
        out = []
        for m in self._metrics.values():
            out.append(
                {
                    "key": m.key,
                    "label": str(m.label),
                    "group": str(m.group),
                    "value_type": m.value_type,
                    "operators": [{"key": op, "label": str(OPERATORS[op])} for op in m.operators],
                    "choices": [[str(k), str(v)] for k, v in (m.choices() or [])],
                    "help": str(m.help),
                    "params": [
                        {
                            "name": name,
                            "kind": p.kind,
                            "label": str(p.label),
                            "required": p.required,
                            "default": p.default,
                            "choices": [[str(k), str(v)] for k, v in (p.choices() if p.choices else [])],
                        }
                        for name, p in m.params.items()
                    ],
                }
            )
        return out


metrics = MetricRegistry()

PROFILE, PURCHASES, BONUSES, EVENTS, COMMUNICATIONS, PROGRAM = (
    _("Profile"),
    _("Purchases"),
    _("Bonuses"),
    _("Events"),
    _("Communications"),
    _("Program"),
)
PERIOD = Param("period", _("period"))


def _statuses():
    from loyalty.models import Status

    return [(s.code, s.name) for s in Status.objects.all()]


def _currencies():
    from loyalty.models import Currency

    return [(c.code, c.name) for c in Currency.objects.all()]


def _custom_fields():
    from loyalty.models import CustomField

    return [(f.code, f.label) for f in CustomField.objects.filter(active=True)]


def _groups():
    return [(g.code, g.name) for g in ProductGroup.objects.all()]


def _points_of_sale():
    from loyalty.models import PointOfSale

    return [(p.code, p.name) for p in PointOfSale.objects.all()]


def _payment_methods():
    from loyalty.models import PaymentMethod

    return [(p.code, p.name) for p in PaymentMethod.objects.all()]


def _audiences():
    from segments.models import TargetAudience

    return [(str(a.pk), a.name) for a in TargetAudience.objects.all()]


def _rfm_segments():
    from segments.models import RFMSegment

    return list(RFMSegment.choices)


# --- profile ---------------------------------------------------------------------------


class FieldMetric(Metric):
    field_name: str
    group = PROFILE

    def condition(self, op, value, params, now):
        return lookup(self.field_name, op, value)


class ChoiceFieldMetric(FieldMetric):
    value_type = CHOICE
    operators = SET_OPS
    choice_list: list = []

    def choices(self):
        return [(str(k), str(v)) for k, v in self.choice_list]


@metrics.register
class GenderMetric(ChoiceFieldMetric):
    key, label, field_name = "gender", _("Gender"), "gender"
    choice_list = [c for c in Gender.choices if c[0]]


@metrics.register
class AgeMetric(Metric):
    key, label, group = "age", _("Age"), PROFILE

    def condition(self, op, value, params, now):
        today = timezone.localdate(now)

        def born_before(years):  # the latest birth date for which age >= years
            try:
                return today.replace(year=today.year - int(years))
            except ValueError:  # 29 February
                return today.replace(year=today.year - int(years), day=28)

        match op:
            case "gte":
                return Q(birth_date__lte=born_before(value))
            case "gt":
                return Q(birth_date__lte=born_before(value + 1))
            case "lte":
                return Q(birth_date__gt=born_before(value + 1))
            case "lt":
                return Q(birth_date__gt=born_before(value))
            case "eq":
                return Q(birth_date__gt=born_before(value + 1), birth_date__lte=born_before(value))
            case "ne":
                return Q(birth_date__isnull=False) & ~Q(
                    birth_date__gt=born_before(value + 1), birth_date__lte=born_before(value)
                )
            case "between":
                return Q(birth_date__gt=born_before(value[1] + 1), birth_date__lte=born_before(value[0]))
        raise RuleError(op)


@metrics.register
class BirthDateMetric(FieldMetric):
    key, label, field_name, value_type, operators = (
        "birth_date",
        _("Birth date"),
        "birth_date",
        DATE,
        DATE_OPS,
    )


@metrics.register
class BirthdayWithinMetric(Metric):
    key, label, group, operators = "birthday_within_days", _("Birthday within, days"), PROFILE, ("lte",)
    help = _("Members whose birthday falls within the next N days (today included).")

    def condition(self, op, value, params, now):
        today = timezone.localdate(now)
        days = {today + dt.timedelta(days=i) for i in range(int(value) + 1)}
        month_days = sorted({d.month * 100 + d.day for d in days})
        inner = Member.objects.annotate(
            md=ExtractMonth("birth_date") * 100 + ExtractDay("birth_date")
        ).filter(md__in=month_days)
        return Q(pk__in=inner.values("pk"))


@metrics.register
class CityMetric(Metric):
    key, label, group, value_type, operators = "city", _("City"), PROFILE, TEXT, ("eq", "ne", "in", "not_in")

    def condition(self, op, value, params, now):
        # Cities are stored normalised (loyalty.services.contacts.city_normalise), so the
        # entered value is normalised the same way and compared exactly (on any database).
        from loyalty.services.contacts import city_normalise

        values = [city_normalise(v) for v in (value if op in SET_OPS else [value])]
        q = Q(city__in=values)
        return q if op in ("eq", "in") else ~q


@metrics.register
class RegisteredAtMetric(FieldMetric):
    key, label, field_name, value_type, operators = (
        "registered_at",
        _("Registration date"),
        "registered_at__date",
        DATE,
        DATE_OPS,
    )


@metrics.register
class RegistrationChannelMetric(ChoiceFieldMetric):
    key, label, field_name = "registration_channel", _("Registration channel"), "registration_channel"
    choice_list = RegistrationChannel.choices


@metrics.register
class StateMetric(ChoiceFieldMetric):
    key, label, field_name = "state", _("Lifecycle state"), "state"
    choice_list = MemberState.choices


@metrics.register
class StatusMetric(ChoiceFieldMetric):
    key, label, field_name = "status", _("Status"), "status__code"

    def choices(self):
        return _statuses()


@metrics.register
class CustomFieldMetric(Metric):
    key, label, group, value_type, operators = "custom_field", _("Custom field"), PROFILE, TEXT, ("eq", "ne")
    params = {"field": Param("choice", _("field"), required=True, choices=_custom_fields)}

    def condition(self, op, value, params, now):
        from loyalty.models import CustomField

        field = CustomField.objects.filter(code=params["field"]).first()
        if field is not None and field.kind == "boolean":
            value = str(value).strip().lower() in {"1", "true", "yes", "да"}
        elif field is not None and field.kind == "number":
            value = str(Decimal(str(value)))
        q = Q(**{f"custom_fields__{params['field']}": value})
        return q if op == "eq" else ~q


class ContactValidMetric(Metric):
    group, value_type, operators = PROFILE, BOOLEAN, ("eq",)
    field_name: str

    def condition(self, op, value, params, now):
        q = Q(**{self.field_name: ContactStatus.VALID})
        return q if value else ~q


@metrics.register
class ValidPhoneMetric(ContactValidMetric):
    key, label, field_name = "has_valid_phone", _("Has a valid phone"), "phone_status"


@metrics.register
class ValidEmailMetric(ContactValidMetric):
    key, label, field_name = "has_valid_email", _("Has a valid email"), "email_status"


@metrics.register
class ConsentMetric(Metric):
    key, label, group, value_type, operators = "consent", _("Consent given"), PROFILE, BOOLEAN, ("eq",)
    params = {
        "channel": Param("choice", _("channel"), required=True, choices=lambda: list(ContactChannel.choices))
    }

    def condition(self, op, value, params, now):
        q = Q(pk__in=Consent.objects.filter(channel=params["channel"], granted=True).values("member_id"))
        return q if value else ~q


@metrics.register
class TimeZoneMetric(Metric):
    key, label, group, value_type, operators = (
        "time_zone",
        _("Time zone"),
        PROFILE,
        TEXT,
        ("eq", "ne", "in", "not_in"),
    )

    def condition(self, op, value, params, now):
        return lookup("time_zone", op, value)


@metrics.register
class OperatorMetric(Metric):
    key, label, group, value_type, operators = (
        "operator",
        _("Phone operator"),
        PROFILE,
        TEXT,
        ("eq", "ne", "in", "not_in"),
    )

    def condition(self, op, value, params, now):
        return lookup("phone_operator", op, value)


# --- purchases -------------------------------------------------------------------------


def sales(period: dict | None, now: dt.datetime) -> QuerySet[Receipt]:
    """Confirmed (or partly refunded) sales in the period."""
    start, end = period_bounds(period, now)
    qs = Receipt.objects.filter(
        kind=ReceiptKind.SALE,
        state__in=[ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED],
        member__isnull=False,
    )
    if start:
        qs = qs.filter(purchased_at__gte=start)
    if end:
        qs = qs.filter(purchased_at__lt=end)
    return qs


def aggregate_condition(rows: QuerySet, aggregate, op: str, value, *, zero) -> Q:
    """Members whose aggregate over ``rows`` satisfies ``op value``; members with no rows
    count as ``zero`` (0 for counts and sums; ``None``: never match)."""
    if isinstance(aggregate, Count) and (op, value) in (("gte", 1), ("gt", 0)):
        # "At least once" needs no grouping: a semi-join on the rows is enough.
        return Q(pk__in=rows.values("member_id"))
    matching = rows.values("member_id").annotate(v=aggregate)
    matching = matching.filter(lookup("v", op, value)).values("member_id")
    q = Q(pk__in=matching)
    if zero is not None and holds(op, zero, value):
        q |= ~Q(pk__in=rows.values("member_id"))
    return q


def stats_window(period: dict | None) -> str | None:
    """The purchase-figures column suffix that answers this period, if any: ``all`` for
    no period, ``30``/``90``/``180``/``365`` for those "last N days"."""
    from segments.models import STATS_WINDOWS

    if not period:
        return "all"
    if set(period) == {"last_days"} and period["last_days"] in STATS_WINDOWS:
        return str(period["last_days"])
    return None


def stats_condition(expression, op: str, value, *, zero, only=None) -> Q:
    """Members whose purchase figures satisfy ``expression op value``; members without
    figures (never bought) count as ``zero`` (``None``: never match)."""
    from segments.models import MemberPurchaseStats

    rows = MemberPurchaseStats.objects.annotate(v=expression)
    if only is not None:
        rows = rows.filter(only)
    q = Q(pk__in=rows.filter(lookup("v", op, value)).values("member_id"))
    if zero is not None and holds(op, zero, value):
        q |= ~Q(pk__in=MemberPurchaseStats.objects.values("member_id"))
    return q


class PurchaseAggregateMetric(Metric):
    """Aggregates over sales in a period. The common periods (all time, last 30, 90, 180,
    365 days) read the per-member purchase figures; any other period aggregates receipts."""

    group = PURCHASES
    params = {"period": PERIOD}
    zero: Any = Decimal(0)

    def aggregate(self):
        raise NotImplementedError

    def from_stats(self, window: str, op, value) -> Q | None:
        return None

    def condition(self, op, value, params, now):
        window = stats_window(params.get("period"))
        if window is not None and (q := self.from_stats(window, op, value)) is not None:
            return q
        return aggregate_condition(
            sales(params.get("period"), now), self.aggregate(), op, value, zero=self.zero
        )


@metrics.register
class PurchaseCountMetric(PurchaseAggregateMetric):
    key, label = "purchase_count", _("Number of purchases")

    def aggregate(self):
        return Count("id")

    def from_stats(self, window, op, value):
        return stats_condition(F(f"count_{window}"), op, value, zero=0)


@metrics.register
class PurchaseTotalMetric(PurchaseAggregateMetric):
    key, label = "purchase_total", _("Purchase total")

    def aggregate(self):
        return Sum("total")

    def from_stats(self, window, op, value):
        return stats_condition(F(f"total_{window}"), op, value, zero=Decimal(0))


@metrics.register
class AverageReceiptMetric(PurchaseAggregateMetric):
    key, label, zero = "average_receipt", _("Average receipt"), None

    def aggregate(self):
        return Avg("total")

    def from_stats(self, window, op, value):
        average = ExpressionWrapper(
            F(f"total_{window}") / F(f"count_{window}"),
            output_field=DecimalField(max_digits=16, decimal_places=2),
        )
        return stats_condition(average, op, value, zero=None, only=Q(**{f"count_{window}__gt": 0}))


class PurchaseDateMetric(PurchaseAggregateMetric):
    """The first or last purchase date; without a period it is read from the member's
    purchase figures."""

    value_type, operators, zero = DATE, DATE_OPS, None
    extreme: type[Min] | type[Max]
    stats_field: str

    def aggregate(self):
        return self.extreme("purchased_at__date")

    def from_stats(self, window, op, value):
        if window != "all":
            return None
        from segments.models import MemberPurchaseStats

        rows = MemberPurchaseStats.objects.filter(lookup(f"{self.stats_field}__date", op, value))
        return Q(pk__in=rows.values("member_id"))


@metrics.register
class FirstPurchaseMetric(PurchaseDateMetric):
    key, label, extreme, stats_field = (
        "first_purchase_date",
        _("First purchase date"),
        Min,
        "first_purchase_at",
    )


@metrics.register
class LastPurchaseMetric(PurchaseDateMetric):
    key, label, extreme, stats_field = "last_purchase_date", _("Last purchase date"), Max, "last_purchase_at"


class BoughtMetric(Metric):
    """Members with a purchase in the period that matches ``lines_filter``."""

    group, value_type, operators = PURCHASES, CHOICE, SET_OPS
    params = {"period": PERIOD}

    def receipts_matching(self, value, params, receipts: QuerySet) -> QuerySet:
        raise NotImplementedError

    def condition(self, op, value, params, now):
        found = self.receipts_matching(value, params, sales(params.get("period"), now))
        q = Q(pk__in=found.values("member_id"))
        return q if op == "in" else ~q


@metrics.register
class BoughtProductMetric(BoughtMetric):
    key, label = "bought_product", _("Bought a product (SKU)")
    value_type = TEXT

    def receipts_matching(self, value, params, receipts):
        return receipts.filter(Exists(ReceiptLine.objects.filter(receipt=OuterRef("pk"), sku__in=value)))


@metrics.register
class BoughtProductGroupMetric(BoughtMetric):
    key, label = "bought_product_group", _("Bought from a product group")
    help = _("The group or any group inside it.")

    def choices(self):
        return _groups()

    @staticmethod
    def group_ids(value) -> list[int]:
        """The groups' ids with every group inside them, read when the rule is compiled:
        as literal ids the purchases-by-group index is scanned in parallel into one shared
        hash, where a subquery would have each parallel worker build its own."""
        paths = list(ProductGroup.objects.filter(code__in=value).values_list("path", flat=True))
        groups = Q()
        for path in paths:
            groups |= Q(path__startswith=path)
        return list(ProductGroup.objects.filter(groups).values_list("pk", flat=True)) if paths else []

    def receipts_matching(self, value, params, receipts):
        return receipts.filter(
            Exists(
                ReceiptLine.objects.filter(receipt=OuterRef("pk"), product__group__in=self.group_ids(value))
            )
        )

    def condition(self, op, value, params, now):
        """All time, "the last N days" or "since a date" read the purchases by group (a
        range of one index); a period that ends in the past reads the receipts."""
        from segments.models import MemberGroupPurchase

        start, end = period_bounds(params.get("period"), now)
        if end is not None:
            return super().condition(op, value, params, now)
        rows = MemberGroupPurchase.objects.filter(group__in=self.group_ids(value))
        if start is not None:
            rows = rows.filter(last_purchase_at__gte=start)
        q = Q(pk__in=rows.values("member_id"))
        return q if op == "in" else ~q


@metrics.register
class BoughtAtPointOfSaleMetric(BoughtMetric):
    key, label = "bought_at_point_of_sale", _("Bought at a point of sale")

    def choices(self):
        return _points_of_sale()

    def receipts_matching(self, value, params, receipts):
        return receipts.filter(point_of_sale__code__in=value)


@metrics.register
class BoughtAtAttributeMetric(BoughtMetric):
    key, label, value_type = "bought_at_pos_attribute", _("Bought where a point-of-sale attribute is"), TEXT
    params = {"attribute": Param("text", _("attribute"), required=True), "period": PERIOD}
    help = _("E.g. attribute CustomTradeFormat, values Hypermarket.")

    def receipts_matching(self, value, params, receipts):
        return receipts.filter(**{f"point_of_sale__attributes__{params['attribute']}__in": value})


@metrics.register
class BoughtInChannelMetric(BoughtMetric):
    key, label = "bought_in_sales_channel", _("Bought in a sales channel")

    def choices(self):
        return list(SalesChannel.choices)

    def receipts_matching(self, value, params, receipts):
        return receipts.filter(point_of_sale__kind__in=value)


@metrics.register
class PaidWithMetric(BoughtMetric):
    key, label = "paid_with_method", _("Paid with a payment method")

    def choices(self):
        return _payment_methods()

    def receipts_matching(self, value, params, receipts):
        return receipts.filter(
            Exists(ReceiptPayment.objects.filter(receipt=OuterRef("pk"), method__code__in=value))
        )


# --- bonuses ---------------------------------------------------------------------------

CURRENCY = Param("choice", _("currency"), choices=_currencies)


def _currency_filter(params, prefix: str) -> dict:
    """The condition's currency (the default one unless chosen) as its id, read when the
    rule is compiled, so the accounts are filtered without a join per member."""
    currencies = Currency.objects.all()
    if params.get("currency"):
        currencies = currencies.filter(code=params["currency"])
    else:
        currencies = currencies.filter(is_default=True)
    return {f"{prefix}currency_id__in": list(currencies.values_list("pk", flat=True))}


@metrics.register
class BalanceMetric(Metric):
    key, label, group = "bonus_balance", _("Bonus balance"), BONUSES
    params = {"currency": CURRENCY}

    def condition(self, op, value, params, now):
        accounts = BonusAccount.objects.filter(**_currency_filter(params, ""))
        q = Q(pk__in=accounts.filter(lookup("available", op, value)).values("member_id"))
        if holds(op, Decimal(0), value):
            q |= ~Q(pk__in=accounts.filter(available__gt=0).values("member_id"))
        return q


@metrics.register
class ExpiringMetric(Metric):
    key, label, group = "bonus_expiring", _("Bonuses expiring within N days"), BONUSES
    params = {"days": Param("number", _("days"), required=True, default=30), "currency": CURRENCY}

    def condition(self, op, value, params, now):
        rows = LotRemainder.objects.filter(
            expires_at__gt=now,
            expires_at__lte=now + dt.timedelta(days=int(params["days"])),
            available__gt=0,
            **_currency_filter(params, "account__"),
        ).annotate(member_id=F("account__member_id"))
        return aggregate_condition(rows, Sum("available"), op, value, zero=Decimal(0))


class LedgerSumMetric(Metric):
    group = BONUSES
    params = {"period": PERIOD, "currency": CURRENCY}
    entry_kind: str | tuple[str, ...]
    sign = 1

    def condition(self, op, value, params, now):
        start, end = period_bounds(params.get("period"), now)
        kinds = self.entry_kind if isinstance(self.entry_kind, tuple) else (self.entry_kind,)
        rows = LedgerEntry.objects.filter(kind__in=kinds, **_currency_filter(params, "account__"))
        if start:
            rows = rows.filter(created_at__gte=start)
        if end:
            rows = rows.filter(created_at__lt=end)
        rows = rows.annotate(member_id=F("account__member_id"))
        total = Sum(F("available_delta") + F("pending_delta")) * self.sign
        return aggregate_condition(rows, total, op, value, zero=Decimal(0))


@metrics.register
class AccruedMetric(LedgerSumMetric):
    key, label, entry_kind = "bonus_accrued", _("Bonuses accrued"), EntryKind.ACCRUAL


@metrics.register
class SpentMetric(LedgerSumMetric):
    # A reservation released (a purchase cancelled) was never spent.
    key, label, sign = "bonus_spent", _("Bonuses spent"), -1
    entry_kind = (EntryKind.SPEND, EntryKind.RELEASE)


# --- events ----------------------------------------------------------------------------


@metrics.register
class EventCountMetric(Metric):
    key, label, group = "event_count", _("Times an event happened"), EVENTS
    params = {
        "event_type": Param("choice", _("event"), required=True, choices=lambda: event_types.choices()),
        "period": PERIOD,
    }
    help = _("E.g. mobile app installed at least 1 time.")

    def condition(self, op, value, params, now):
        start, end = period_bounds(params.get("period"), now)
        rows = MemberEvent.objects.filter(event_type=params["event_type"], member__isnull=False)
        if start:
            rows = rows.filter(occurred_at__gte=start)
        if end:
            rows = rows.filter(occurred_at__lt=end)
        return aggregate_condition(rows, Count("id"), op, value, zero=0)


# --- communications (filled in once messages are sent) -------------------------------------


class MessageMetric(Metric):
    """Counts of messages by channel and period. Until the delivery pipeline records
    messages every member has none, and the condition says so."""

    group = COMMUNICATIONS
    params = {
        "channel": Param("choice", _("channel"), choices=lambda: list(ContactChannel.choices)),
        "period": PERIOD,
    }

    def condition(self, op, value, params, now):
        from segments.hooks import message_counts

        rows = message_counts(self.key, params.get("channel"), *period_bounds(params.get("period"), now))
        if rows is None:
            return EVERYONE if holds(op, 0, value) else NOTHING
        return aggregate_condition(rows, Count("id"), op, value, zero=0)


@metrics.register
class ReceivedMetric(MessageMetric):
    key, label = "messages_received", _("Messages received")


@metrics.register
class OpenedMetric(MessageMetric):
    key, label = "messages_opened", _("Messages opened")


@metrics.register
class ClickedMetric(MessageMetric):
    key, label = "messages_clicked", _("Messages clicked")


@metrics.register
class UnsubscribedMetric(MessageMetric):
    key, label = "unsubscribed", _("Unsubscribed")


# --- program: RFM, audiences, control group ---------------------------------------------


@metrics.register
class RFMSegmentMetric(Metric):
    key, label, group, value_type, operators = "rfm_segment", _("RFM segment"), PROGRAM, CHOICE, SET_OPS

    def choices(self):
        return _rfm_segments()

    def condition(self, op, value, params, now):
        from segments.models import MemberRFM

        q = Q(pk__in=MemberRFM.objects.filter(segment__in=value).values("member_id"))
        return q if op == "in" else ~q


class RFMScoreMetric(Metric):
    group, score = PROGRAM, "r"

    def condition(self, op, value, params, now):
        from segments.models import MemberRFM

        return Q(pk__in=MemberRFM.objects.filter(lookup(self.score, op, value)).values("member_id"))


@metrics.register
class RScoreMetric(RFMScoreMetric):
    key, label, score = "rfm_r", _("RFM recency score (1–5)"), "r"


@metrics.register
class FScoreMetric(RFMScoreMetric):
    key, label, score = "rfm_f", _("RFM frequency score (1–5)"), "f"


@metrics.register
class MScoreMetric(RFMScoreMetric):
    key, label, score = "rfm_m", _("RFM monetary score (1–5)"), "m"


@metrics.register
class AudienceMetric(Metric):
    key, label, group, value_type, operators = (
        "audience",
        _("Member of a target audience"),
        PROGRAM,
        CHOICE,
        SET_OPS,
    )

    def choices(self):
        return _audiences()

    def condition(self, op, value, params, now):
        from segments.models import AudienceMember

        q = Q(
            pk__in=AudienceMember.objects.filter(audience_id__in=[int(v) for v in value]).values("member_id")
        )
        return q if op == "in" else ~q


@metrics.register
class GlobalControlMetric(Metric):
    key, label, group, value_type, operators = (
        "global_control_group",
        _("In the global control group"),
        PROGRAM,
        BOOLEAN,
        ("eq",),
    )

    def condition(self, op, value, params, now):
        from segments.control import global_control_q

        q = global_control_q()
        return q if value else ~q


def coerce(metric: Metric, op: str, value, where: str):
    """Check and convert a condition's value to what the metric compares with."""

    def one(v):
        try:
            match metric.value_type:
                case "number":
                    if isinstance(v, bool):
                        raise TypeError
                    return Decimal(str(v)) if not isinstance(v, int) else v
                case "date":
                    return dt.date.fromisoformat(str(v))
                case "boolean":
                    if not isinstance(v, bool):
                        raise TypeError
                    return v
                case "choice":
                    allowed = {str(k) for k, _label in (metric.choices() or [])}
                    if str(v) not in allowed:
                        raise ValueError
                    return str(v)
                case _:
                    if not isinstance(v, str | int) or str(v).strip() == "":
                        raise TypeError
                    return str(v).strip()
        except (TypeError, ValueError, InvalidOperation) as exc:
            expected = {
                "number": gettext("a number"),
                "date": gettext("a date (YYYY-MM-DD)"),
                "boolean": gettext("yes or no"),
                "choice": gettext("one of the listed values"),
            }.get(metric.value_type, gettext("some text"))
            raise RuleError(
                gettext("%(where)s: %(value)r is not %(expected)s for %(metric)s")
                % {"where": where, "value": v, "expected": expected, "metric": metric.label}
            ) from exc

    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise RuleError(gettext("%(where)s: between needs two values") % {"where": where})
        low, high = one(value[0]), one(value[1])
        if low > high:
            raise RuleError(
                gettext("%(where)s: the first value must not exceed the second") % {"where": where}
            )
        return [low, high]
    if op in SET_OPS:
        if not isinstance(value, list) or not value:
            raise RuleError(gettext("%(where)s: choose at least one value") % {"where": where})
        return [one(v) for v in value]
    return one(value)
