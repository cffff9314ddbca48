"""Offer filters: the receipt filters and the filters on the member and the moment, each
by its behaviour; the catalog kept honest over every registered key; and the member data
a receipt loads staying within a fixed number of queries."""

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from loyalty.models import PointOfSale, Product, SalesChannel, Status
from loyalty.services.receipts import LineInput, receipt_confirm, receipt_record
from offers.catalog import entry_validate, offer_filters
from offers.catalog.member_filters import MemberFilter
from offers.engine import Context, Line, MemberInfo
from offers.models import Counter, CounterValue, OfferApplication, PersonalProduct
from offers.services import purchase_calculate, purchase_confirm, rules_validate
from segments.models import AudienceMember, Segment, TargetAudience
from segments.services import segment_materialise
from tests import factories
from tests.offers.conftest import NOW, lines

pytestmark = pytest.mark.django_db

MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")
TEN_PERCENT = {"key": "discount", "params": {"kind": "percent", "value": "10"}}
RECEIPT = (("COFFEE", 2, 500), ("TEA", 1, 200), ("BREAD", 1, 50))
WOMEN = {"metric": "gender", "operator": "in", "value": ["female"]}


def built(key: str, **params):
    """A filter built as the engine builds it: params validated, stored, compiled."""
    stored = entry_validate(offer_filters, {"key": key, "params": params}, "filter")
    return offer_filters.get(key)(stored["params"])


def context(*, member: MemberInfo | None = None, local: dt.datetime | None = None, lines=()) -> Context:
    local = local or NOW.astimezone(MOSCOW)
    return Context(
        event="discount_calculated",
        now=local.astimezone(dt.UTC),
        local_now=local,
        lines=list(lines),
        member=member,
    )


def moscow(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=MOSCOW)


def discounted(calc) -> list[int]:
    """Indexes of the receipt lines that got a discount."""
    return [ln.index for ln in calc.ctx.lines if ln.discount]


def offer_with(make_offer, *filters, actions=(TEN_PERCENT,), **fields):
    return make_offer(rules=[{"filters": list(filters), "actions": list(actions)}], **fields)


def buy(member, pos, n: int) -> None:
    receipt = receipt_record(
        point_of_sale=pos,
        external_id=f"before-{n}",
        member=member,
        lines=[LineInput(sku="BREAD", quantity=Decimal(1), price=Decimal(50))],
        purchased_at=NOW - dt.timedelta(days=n),
    )
    receipt_confirm(receipt=receipt)


@pytest.fixture
def statuses(db):
    return {
        code: Status.objects.create(code=code, name=code.title(), rank=rank)
        for code, rank in (("silver", 1), ("gold", 2), ("platinum", 3))
    }


# --- the receipt filters -----------------------------------------------------------------
def test_payment_method_filter_needs_one_of_the_methods(shop, make_offer, now):
    # given
    offer_with(make_offer, {"key": "payment_method", "params": {"methods": ["card"]}})
    receipt = lines(*RECEIPT)
    # when
    by_card = purchase_calculate(point_of_sale=shop["hyper"], lines=receipt, payments=["card", "bonus"])
    online = purchase_calculate(point_of_sale=shop["hyper"], lines=receipt, payments=["online"])
    unpaid = purchase_calculate(point_of_sale=shop["hyper"], lines=receipt)
    # then
    assert by_card.result.discount_total() == Decimal("125.00")
    assert online.result.discount_total() == 0 and unpaid.result.discount_total() == 0


def test_points_of_sale_filter_by_list(shop, make_offer, now):
    # given
    offer_with(make_offer, {"key": "points_of_sale", "params": {"points_of_sale": [shop["online"].pk]}})
    # when
    online = purchase_calculate(point_of_sale=shop["online"], lines=lines(*RECEIPT))
    hyper = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT))
    # then
    assert online.result.discount_total() == Decimal("125.00")
    assert hyper.result.discount_total() == 0


def test_points_of_sale_filter_by_attribute_ignores_case_and_spaces(shop, make_offer, now):
    # given a third store whose attribute holds a list
    market = PointOfSale.objects.create(
        partner=shop["hyper"].partner,
        code="market",
        name="Market",
        kind=SalesChannel.OFFLINE,
        attributes={"CustomTradeFormat": ["Kiosk", "SUPERMARKET"]},
    )
    offer_with(
        make_offer,
        {
            "key": "points_of_sale",
            "params": {"attribute": "CustomTradeFormat", "values": " supermarket , hypermarket"},
        },
    )
    # when
    applied = {
        pos.code: bool(purchase_calculate(point_of_sale=pos, lines=lines(*RECEIPT)).result.applied)
        for pos in (shop["hyper"], shop["online"], market)
    }
    # then
    assert applied == {"hyper-1": True, "web": False, "market": True}


def test_sales_channel_filter(shop, make_offer, now):
    # given
    offer_with(make_offer, {"key": "sales_channel", "params": {"channels": [SalesChannel.ONLINE_STORE]}})
    # when
    online = purchase_calculate(point_of_sale=shop["online"], lines=lines(*RECEIPT))
    offline = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT))
    # then
    assert online.result.applied and not offline.result.applied


@pytest.mark.parametrize(("with_descendants", "chosen"), [(True, [0, 1]), (False, [1])])
def test_products_filter_takes_a_group_with_or_without_its_subgroups(
    shop, make_offer, now, with_descendants, chosen
):
    # given drinks holds tea, and coffee in its subgroup
    offer_with(
        make_offer,
        {"key": "products", "params": {"groups": [shop["drinks"].pk], "with_descendants": with_descendants}},
    )
    # when
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT))
    # then
    assert discounted(calc) == chosen


def test_products_filter_by_sku_and_all_except(shop, make_offer, now):
    # given
    offer_with(make_offer, {"key": "products", "params": {"products": ["BREAD"]}}, priority=1)
    offer_with(
        make_offer,
        {"key": "products", "params": {"products": ["TEA"], "exclude": True}},
        actions=[{"key": "bonus", "params": {"kind": "percent", "value": "1"}}],
        priority=2,
    )
    # when
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT))
    # then bread is discounted; the bonus goes to everything but tea
    assert discounted(calc) == [2]
    bonus = next(e for e in calc.result.effects if e.action == "bonus")
    assert bonus.lines == [0, 2]


def test_products_filter_leaving_no_line_stops_the_rule(shop, make_offer, now):
    offer_with(make_offer, {"key": "products", "params": {"products": ["COFFEE"]}})
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(("BREAD", 1, 50)))
    assert calc.result.applied == [] and calc.result.effects == []


@pytest.mark.parametrize(
    ("measure", "operator", "value", "applies"),
    [
        ("amount", "gte", "1250", True),
        ("amount", "gt", "1250", False),
        ("quantity", "eq", "4", True),
        ("quantity", "lt", "4", False),
        ("lines", "lte", "3", True),
        ("lines", "gte", "4", False),
    ],
)
def test_receipt_filter_on_amount_quantity_and_lines(
    shop, make_offer, now, measure, operator, value, applies
):
    # given a receipt of 1 250.00, four units on three lines
    offer_with(
        make_offer, {"key": "receipt", "params": {"measure": measure, "operator": operator, "value": value}}
    )
    # when
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT))
    # then
    assert bool(calc.result.applied) is applies


# --- member status and personal data -----------------------------------------------------
@pytest.mark.parametrize(
    ("params", "status", "passes"),
    [
        ({"statuses": ["silver", "gold"]}, "gold", True),
        ({"statuses": ["platinum"]}, "gold", False),
        ({"statuses": ["silver"]}, "", False),
        ({"mode": "at_least", "min_status": "silver"}, "gold", True),
        ({"mode": "at_least", "min_status": "gold"}, "gold", True),
        ({"mode": "at_least", "min_status": "platinum"}, "gold", False),
        ({"mode": "at_least", "min_status": "silver"}, "", False),
    ],
)
def test_member_status_filter_by_list_or_at_least_by_rank(statuses, params, status, passes):
    # given
    flt = built("member_status", **params)
    rank = statuses[status].rank if status else None
    # when
    result = flt.passes(context(member=MemberInfo(id=1, status=status, status_rank=rank)))
    # then
    assert result is passes


def test_member_status_filter_reads_the_members_status_at_the_till(shop, statuses, make_offer, now):
    # given
    offer_with(make_offer, {"key": "member_status", "params": {"mode": "at_least", "min_status": "gold"}})
    gold = factories.MemberFactory(status=statuses["gold"])
    silver = factories.MemberFactory(status=statuses["silver"])
    # when
    applied = [
        bool(purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=m).result.applied)
        for m in (gold, silver, None)
    ]
    # then
    assert applied == [True, False, False]


@pytest.mark.parametrize(
    ("genders", "gender", "passes"),
    [(["female"], "female", True), (["male"], "female", False), (["male", ""], "", True)],
)
def test_gender_filter(genders, gender, passes):
    flt = built("gender", genders=genders)
    assert flt.passes(context(member=MemberInfo(id=1, gender=gender))) is passes


@pytest.mark.parametrize(
    ("birth_date", "local", "age"),
    [
        (dt.date(2000, 11, 23), moscow(2026, 11, 23, 0, 30), 26),  # still 22 November in UTC
        (dt.date(2000, 11, 24), moscow(2026, 11, 23, 23, 59), 25),
        (dt.date(2008, 2, 29), moscow(2026, 2, 27, 12), 17),
        (dt.date(2008, 2, 29), moscow(2026, 2, 28, 12), 18),  # 29 February falls on the 28th
        (dt.date(2008, 2, 29), moscow(2028, 2, 28, 12), 19),
        (dt.date(2008, 2, 29), moscow(2028, 2, 29, 12), 20),
    ],
)
def test_age_filter_counts_full_years_on_the_local_date(birth_date, local, age):
    # given
    member = MemberInfo(id=1, birth_date=birth_date)
    ctx = context(member=member, local=local)
    # then
    assert built("age", operator="eq", years=age).passes(ctx)
    assert not built("age", operator="gt", years=age).passes(ctx)
    assert built("age", operator="lt", years=age + 1).passes(ctx)


def test_age_filter_fails_without_a_birth_date():
    assert not built("age", operator="gte", years=0).passes(context(member=MemberInfo(id=1)))


@pytest.mark.parametrize(
    ("birth_date", "before", "after", "local", "passes"),
    [
        (dt.date(1990, 11, 23), 0, 0, moscow(2026, 11, 23, 12), True),
        (dt.date(1990, 11, 23), 0, 0, moscow(2026, 11, 24, 0, 0), False),
        (dt.date(1990, 11, 23), 0, 0, moscow(2026, 11, 23, 1), True),  # 22 November in UTC
        (dt.date(1990, 11, 25), 2, 0, moscow(2026, 11, 23, 12), True),
        (dt.date(1990, 11, 25), 1, 0, moscow(2026, 11, 23, 12), False),
        (dt.date(1990, 11, 20), 0, 3, moscow(2026, 11, 23, 12), True),
        (dt.date(1990, 11, 20), 5, 2, moscow(2026, 11, 23, 12), False),
        (dt.date(1990, 12, 30), 0, 5, moscow(2026, 1, 2, 12), True),  # last year's birthday
        (dt.date(1990, 1, 2), 5, 0, moscow(2026, 12, 30, 12), True),  # next year's birthday
        (dt.date(2000, 2, 29), 0, 0, moscow(2026, 2, 28, 12), True),
        (dt.date(2000, 2, 29), 0, 0, moscow(2026, 3, 1, 12), False),
        (dt.date(2000, 2, 29), 0, 0, moscow(2028, 2, 28, 12), False),
        (dt.date(2000, 2, 29), 0, 0, moscow(2028, 2, 29, 12), True),
        (dt.date(2000, 2, 29), 0, 1, moscow(2027, 3, 1, 12), True),
    ],
)
def test_birthday_filter_within_days_before_and_after(birth_date, before, after, local, passes):
    flt = built("birthday", days_before=before, days_after=after)
    assert flt.passes(context(member=MemberInfo(id=1, birth_date=birth_date), local=local)) is passes


def test_birthday_filter_defaults_to_the_day_itself_and_fails_without_a_birth_date():
    flt = built("birthday")
    assert flt.passes(context(member=MemberInfo(id=1, birth_date=dt.date(1990, 11, 23))))
    assert not flt.passes(context(member=MemberInfo(id=1)))


@pytest.mark.parametrize(
    ("registered_at", "days"),
    [
        (dt.datetime(2026, 11, 13, 9, tzinfo=dt.UTC), 10),
        (dt.datetime(2026, 11, 12, 22, tzinfo=dt.UTC), 10),  # 13 November in Moscow
        (dt.datetime(2026, 11, 22, 20, 59, tzinfo=dt.UTC), 1),
        (dt.datetime(2026, 11, 22, 21, 0, tzinfo=dt.UTC), 0),
    ],
)
def test_days_since_registration_counts_local_dates(registered_at, days):
    # given noon on 23 November in Moscow
    ctx = context(member=MemberInfo(id=1, registered_at=registered_at))
    # then
    assert built("days_since_registration", operator="eq", days=days).passes(ctx)
    assert not built("days_since_registration", operator="gt", days=days).passes(ctx)


# --- audiences and segments --------------------------------------------------------------
def test_target_audience_filter_passes_members_of_any_chosen_audience(shop, make_offer, now):
    # given
    vip, staff, other = (TargetAudience.objects.create(name=n) for n in ("VIP", "Staff", "Other"))
    anna, boris, vera = factories.MemberFactory(), factories.MemberFactory(), factories.MemberFactory()
    AudienceMember.objects.create(audience=vip, member=anna)
    AudienceMember.objects.create(audience=staff, member=boris)
    AudienceMember.objects.create(audience=other, member=vera)
    offer_with(make_offer, {"key": "target_audience", "params": {"audiences": [vip.pk, staff.pk]}})
    # when
    applied = [
        bool(purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=m).result.applied)
        for m in (anna, boris, vera, None)
    ]
    # then
    assert applied == [True, True, False, False]
    assert offer_filters.get("target_audience").needs == {"audiences"}


def test_segment_filter_reads_the_current_snapshot(shop, make_offer, now):
    # given a segment of women, materialised before Vera registered
    anna = factories.MemberFactory(gender="female")
    boris = factories.MemberFactory(gender="male")
    women = Segment.objects.create(name="Women", rule=WOMEN)
    segment_materialise(women)
    vera = factories.MemberFactory(gender="female")
    offer_with(make_offer, {"key": "segment", "params": {"segments": [women.pk]}})
    # when
    applied = [
        bool(purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=m).result.applied)
        for m in (anna, boris, vera)
    ]
    # then
    assert applied == [True, False, False]
    assert offer_filters.get("segment").needs == {"segments"}


# --- the moment ----------------------------------------------------------------------------
MONDAY, FRIDAY = 0, 4


@pytest.mark.parametrize(
    ("params", "local", "passes"),
    [
        ({"days": [MONDAY, FRIDAY]}, moscow(2026, 11, 23, 12), True),  # a Monday
        ({"days": [MONDAY, FRIDAY]}, moscow(2026, 11, 24, 12), False),
        ({"time_from": "10:00", "time_until": "14:00"}, moscow(2026, 11, 24, 10, 0), True),
        ({"time_from": "10:00", "time_until": "14:00"}, moscow(2026, 11, 24, 13, 59), True),
        ({"time_from": "10:00", "time_until": "14:00"}, moscow(2026, 11, 24, 14, 0), False),
        ({"time_from": "10:00", "time_until": "14:00"}, moscow(2026, 11, 24, 9, 59), False),
        ({"time_from": "22:00", "time_until": "02:00"}, moscow(2026, 11, 24, 23, 0), True),
        ({"time_from": "22:00", "time_until": "02:00"}, moscow(2026, 11, 24, 1, 30), True),
        ({"time_from": "22:00", "time_until": "02:00"}, moscow(2026, 11, 24, 2, 0), False),
        ({"time_from": "22:00", "time_until": "02:00"}, moscow(2026, 11, 24, 12, 0), False),
        # Friday night: the small hours of Saturday belong to Friday's window
        ({"days": [FRIDAY], "time_from": "22:00", "time_until": "02:00"}, moscow(2026, 11, 27, 23), True),
        ({"days": [FRIDAY], "time_from": "22:00", "time_until": "02:00"}, moscow(2026, 11, 28, 1), True),
        ({"days": [FRIDAY], "time_from": "22:00", "time_until": "02:00"}, moscow(2026, 11, 27, 1), False),
        ({"days": [FRIDAY], "time_from": "22:00", "time_until": "02:00"}, moscow(2026, 11, 28, 23), False),
        ({"days": [MONDAY], "time_from": "09:00", "time_until": "18:00"}, moscow(2026, 11, 23, 12), True),
        ({"days": [MONDAY], "time_from": "09:00", "time_until": "18:00"}, moscow(2026, 11, 23, 19), False),
    ],
)
def test_weekday_time_filter(params, local, passes):
    # an anonymous receipt: the moment is not member data
    assert built("weekday_time", **params).passes(context(local=local)) is passes


def test_weekday_time_filter_uses_the_point_of_sales_time_zone(shop, make_offer, now):
    # given 09:00 UTC: noon in Moscow, seven in the evening in Vladivostok
    far_east = PointOfSale.objects.create(
        partner=shop["hyper"].partner, code="vvo", name="Vladivostok", time_zone="Asia/Vladivostok"
    )
    offer_with(make_offer, {"key": "weekday_time", "params": {"time_from": "18:00", "time_until": "23:00"}})
    # when
    evening = purchase_calculate(point_of_sale=far_east, lines=lines(*RECEIPT))
    noon = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT))
    # then
    assert evening.result.applied and not noon.result.applied


# --- counters and purchases --------------------------------------------------------------
def test_counter_filter_compares_the_value_of_the_current_period(shop, make_offer, now):
    # given a monthly counter: three visits in November, ten in October
    visits = Counter.objects.create(key="visits", name="Visits", period="month")
    regular, newcomer = factories.MemberFactory(), factories.MemberFactory()
    CounterValue.objects.create(member=regular, counter=visits, period_start=dt.date(2026, 11, 1), value=3)
    CounterValue.objects.create(member=newcomer, counter=visits, period_start=dt.date(2026, 10, 1), value=10)
    offer_with(
        make_offer,
        {"key": "counter", "params": {"counter": "visits", "operator": "gte", "value": "3"}},
        name="third visit",
    )
    offer_with(
        make_offer,
        {"key": "counter", "params": {"counter": "visits", "operator": "eq", "value": "0"}},
        actions=[{"key": "cheque_message", "params": {"text": "First visit this month"}}],
        name="nothing counted yet",
    )
    # when
    calcs = [
        purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=m)
        for m in (regular, newcomer, None)
    ]
    # then
    assert [sorted(e.offer_name for e in c.result.effects) for c in calcs] == [
        ["third visit"],
        ["nothing counted yet"],
        [],
    ]


def test_counter_filter_in_purchases_mode_matches_the_nth_purchase(shop, make_offer, now):
    # given a member with two confirmed purchases and one calculated, unconfirmed
    member = factories.MemberFactory()
    buy(member, shop["hyper"], 1)
    buy(member, shop["hyper"], 2)
    receipt_record(
        point_of_sale=shop["hyper"],
        external_id="open",
        member=member,
        lines=[LineInput(sku="TEA", quantity=Decimal(1), price=Decimal(200))],
    )
    flt = {"key": "counter", "params": {"mode": "purchases", "operator": "eq", "value": "3"}}
    offer_with(make_offer, flt)
    # when
    third = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=member)
    buy(member, shop["hyper"], 3)
    fourth = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=member)
    # then
    assert third.result.applied and not fourth.result.applied


def test_counter_filter_needs_only_what_its_mode_reads():
    Counter.objects.create(key="visits", name="Visits")
    by_counter = built("counter", counter="visits", operator="gte", value="1")
    by_number = built("counter", mode="purchases", operator="eq", value="2")
    assert by_counter.needs == {"counters"} and by_number.needs == {"purchases"}


def test_first_purchase_filter(shop, make_offer, now):
    # given
    offer_with(make_offer, {"key": "first_purchase"})
    newcomer, regular = factories.MemberFactory(), factories.MemberFactory()
    buy(regular, shop["hyper"], 1)
    # when
    applied = [
        bool(purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=m).result.applied)
        for m in (newcomer, regular, None)
    ]
    # then
    assert applied == [True, False, False]


def test_personal_products_filter_selects_the_members_current_products(shop, make_offer, now):
    # given coffee chosen for now, tea expired, bread from next week
    member, other = factories.MemberFactory(), factories.MemberFactory()
    products = {p.sku: p for p in Product.objects.all()}
    week = dt.timedelta(days=7)
    PersonalProduct.objects.create(member=member, product=products["COFFEE"], valid_from=NOW - week)
    PersonalProduct.objects.create(
        member=member, product=products["TEA"], valid_from=NOW - 2 * week, valid_until=NOW - week
    )
    PersonalProduct.objects.create(member=member, product=products["BREAD"], valid_from=NOW + week)
    PersonalProduct.objects.create(member=other, product=products["TEA"], valid_from=NOW - week)
    offer_with(make_offer, {"key": "personal_products"})
    # when
    mine = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=member)
    others = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT), member=other)
    anonymous = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(*RECEIPT))
    # then
    assert discounted(mine) == [0] and discounted(others) == [1]
    assert anonymous.result.applied == []


def test_personal_products_filter_needs_a_receipt():
    rule = {"filters": [{"key": "personal_products"}], "actions": [TEN_PERCENT]}
    with pytest.raises(ValidationError) as exc:
        rules_validate(event_type="registration_completed", rules=[rule])
    assert "rules[0].filters[0]" in exc.value.message_dict


def test_first_purchase_filter_on_the_purchase_completed_event(
    shop, make_offer, now, django_capture_on_commit_callbacks
):
    # given an event offer for the first purchase
    offer = make_offer(
        event="purchase_completed",
        rules=[
            {
                "filters": [{"key": "first_purchase"}],
                "actions": [{"key": "bonus", "params": {"kind": "percent", "value": "5"}}],
            }
        ],
    )
    member = factories.MemberFactory()
    # when the member's first receipt is confirmed
    with django_capture_on_commit_callbacks(execute=True):
        purchase_confirm(point_of_sale=shop["hyper"], external_id="r1", lines=lines(*RECEIPT), member=member)
    # then
    assert OfferApplication.objects.filter(offer=offer, member=member).exists()


# --- anonymous receipts ------------------------------------------------------------------
EVERYTHING = MemberInfo(
    id=1,
    gender="female",
    birth_date=dt.date(1990, 11, 23),
    registered_at=NOW - dt.timedelta(days=30),
    status="gold",
    status_rank=2,
    audiences=frozenset({1}),
    segments=frozenset({1}),
    counters={"visits": Decimal(5)},
    personal_products=frozenset({"COFFEE"}),
)
ON_MEMBER_DATA = {
    "member_status": {"statuses": ["gold"]},
    "gender": {"genders": ["female"]},
    "age": {"operator": "gte", "years": 18},
    "birthday": {"days_before": 0, "days_after": 0},
    "days_since_registration": {"operator": "gte", "days": 30},
    "target_audience": {"audiences": [1]},
    "segment": {"segments": [1]},
    "counter": {"counter": "visits", "operator": "gte", "value": "5"},
    "first_purchase": {},
    "personal_products": {},
}


@pytest.mark.parametrize("key", ON_MEMBER_DATA)
def test_filters_on_member_data_fail_for_an_anonymous_receipt(key):
    # given a filter the member passes (stored params, as compiled)
    flt = offer_filters.get(key)(ON_MEMBER_DATA[key])
    receipt = [Line(index=0, sku="COFFEE", quantity=Decimal(1), price=Decimal(500))]
    with_member, anonymous = context(member=EVERYTHING, lines=receipt), context(lines=receipt)

    def check(ctx):
        return bool(flt.select(ctx, ctx.lines)) if flt.selects_lines else flt.passes(ctx)

    # then
    assert check(with_member) and not check(anonymous)


def test_every_filter_that_reads_member_data_is_checked_for_anonymous_receipts():
    reads_member = {cls.key for cls in offer_filters if cls.needs or issubclass(cls, MemberFilter)}
    assert reads_member == set(ON_MEMBER_DATA)


# --- the catalog -------------------------------------------------------------------------
LOADABLE = {"audiences", "segments", "counters", "personal_products", "purchases", "balances"}
# Per key: params that must be refused and the field the error names (None: no params).
INVALID = {
    "payment_method": ({"methods": ["barter"]}, "methods"),
    "points_of_sale": ({"attribute": "CustomTradeFormat"}, "values"),
    "sales_channel": ({"channels": ["teleport"]}, "channels"),
    "products": ({"products": ["NO-SUCH-SKU"]}, "products"),
    "receipt": ({"measure": "weight", "operator": "gte", "value": "1"}, "measure"),
    "member_status": ({"mode": "at_least"}, "min_status"),
    "gender": ({"genders": ["robot"]}, "genders"),
    "age": ({"operator": "gte", "years": -1}, "years"),
    "birthday": ({"days_before": 400}, "days_before"),
    "days_since_registration": ({"operator": "about", "days": 3}, "operator"),
    "target_audience": ({"audiences": [987654]}, "audiences"),
    "segment": ({"segments": []}, "segments"),
    "weekday_time": ({"days": [MONDAY], "time_from": "22:00"}, "time_until"),
    "counter": ({"mode": "purchases", "operator": "eq", "value": "2.5"}, "value"),
    "first_purchase": None,
    "personal_products": None,
}


@pytest.mark.parametrize("key", [cls.key for cls in offer_filters])
def test_every_registered_filter_has_a_label_a_form_and_refuses_bad_params(key):
    # given
    cls = offer_filters.get(key)
    case = INVALID[key]  # a new filter needs its case here
    # then
    assert str(cls.label).strip()
    assert cls.needs <= LOADABLE
    assert isinstance(cls.params().as_p(), str)
    if case is None:
        assert not cls.params.base_fields
        assert entry_validate(offer_filters, {"key": key}, "filter") == {"key": key, "params": {}}
        return
    params, field = case
    with pytest.raises(ValidationError) as exc:
        entry_validate(offer_filters, {"key": key, "params": params}, "rules[0].filters[0]")
    assert f"rules[0].filters[0].{field}" in exc.value.message_dict


@pytest.mark.parametrize(
    ("key", "params", "message"),
    [
        ("member_status", {}, "statuses"),
        ("weekday_time", {}, "__all__"),
        ("weekday_time", {"time_from": "10:00", "time_until": "10:00"}, "time_until"),
        ("weekday_time", {"time_until": "10:00"}, "time_from"),
        ("counter", {"operator": "gte", "value": "1"}, "counter"),
        ("counter", {"counter": "no-such-counter", "operator": "gte", "value": "1"}, "counter"),
    ],
)
def test_member_filter_params_that_do_not_add_up_are_refused(key, params, message):
    with pytest.raises(ValidationError) as exc:
        entry_validate(offer_filters, {"key": key, "params": params}, "f")
    assert f"f.{message}" in exc.value.message_dict


def test_stored_params_validate_again_as_they_were_stored():
    # given params as entry_validate stores them (JSON), validated again on activation
    first = entry_validate(
        offer_filters,
        {"key": "weekday_time", "params": {"days": ["4", 5], "time_from": "22:00", "time_until": "02:00"}},
        "f",
    )
    # when
    again = entry_validate(offer_filters, first, "f")
    # then
    assert (
        first
        == again
        == {
            "key": "weekday_time",
            "params": {"days": [4, 5], "time_from": "22:00:00", "time_until": "02:00:00"},
        }
    )


# --- queries -------------------------------------------------------------------------------
def test_a_long_receipt_with_member_data_filters_stays_within_a_fixed_number_of_queries(
    shop, make_offer, now, django_assert_max_num_queries
):
    # given a member in an audience and a segment, with a counter and personal products
    member = factories.MemberFactory(gender="female")
    audience = TargetAudience.objects.create(name="VIP")
    AudienceMember.objects.create(audience=audience, member=member)
    women = Segment.objects.create(name="Women", rule=WOMEN)
    segment_materialise(women)
    visits = Counter.objects.create(key="visits", name="Visits")
    CounterValue.objects.create(member=member, counter=visits, period_start=dt.date(2000, 1, 1), value=4)
    products = [factories.ProductFactory(sku=f"P{i:02d}", price=Decimal(10 + i)) for i in range(30)]
    for product in products[:5]:
        PersonalProduct.objects.create(member=member, product=product, valid_from=NOW - dt.timedelta(days=1))
    bonus = {"key": "bonus", "params": {"kind": "percent", "value": "1"}}
    offer_with(
        make_offer, {"key": "target_audience", "params": {"audiences": [audience.pk]}}, actions=[bonus]
    )
    offer_with(make_offer, {"key": "segment", "params": {"segments": [women.pk]}}, actions=[bonus])
    offer_with(
        make_offer,
        {"key": "counter", "params": {"counter": "visits", "operator": "gte", "value": "4"}},
        actions=[bonus],
    )
    offer_with(make_offer, {"key": "personal_products"})
    receipt = lines(*((p.sku, 1, p.price) for p in products))
    # when
    with django_assert_max_num_queries(12):
        calc = purchase_calculate(point_of_sale=shop["hyper"], lines=receipt, member=member)
    # then every offer applied
    assert len(calc.result.applied) == 4
    assert discounted(calc) == [0, 1, 2, 3, 4]
