"""The engine end to end through the services: offers in priority order, caps,
explainable results, messages with metavariables, and the worked offers of the spec."""

from decimal import Decimal

import pytest

from offers.services import purchase_calculate
from tests.offers.conftest import lines

pytestmark = pytest.mark.django_db

TEN_PERCENT = {"key": "discount", "params": {"kind": "percent", "value": "10"}}
HYPERMARKETS = {
    "key": "points_of_sale",
    "params": {"attribute": "CustomTradeFormat", "values": "Hypermarket"},
}


def test_ten_percent_in_hypermarkets_only(shop, make_offer, now):
    # given seed 004's third worked offer
    make_offer(rules=[{"filters": [HYPERMARKETS], "actions": [TEN_PERCENT]}], name="10% in hypermarkets")
    receipt = lines(("COFFEE", 2, 500), ("BREAD", 1, 50))
    # when
    in_hyper = purchase_calculate(point_of_sale=shop["hyper"], lines=receipt)
    online = purchase_calculate(point_of_sale=shop["online"], lines=receipt)
    # then
    assert [ln.discount for ln in in_hyper.ctx.lines] == [Decimal("100.00"), Decimal("5.00")]
    assert in_hyper.result.effects[0].offer_name == "10% in hypermarkets"
    assert online.result.discount_total() == 0


def test_priority_and_stop_further(shop, make_offer, now):
    make_offer(rules=[{"actions": [TEN_PERCENT]}], name="second", priority=20)
    first = make_offer(
        rules=[
            {
                "actions": [
                    {"key": "discount", "params": {"kind": "fixed", "value": "30", "target": "receipt"}}
                ]
            }
        ],
        name="first",
        priority=10,
        stop_further=True,
    )
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(("COFFEE", 1, 500)))
    assert calc.result.applied == [first.pk] and calc.result.discount_total() == Decimal("30.00")


def test_a_line_discount_never_exceeds_the_configured_share(shop, make_offer, now, settings):
    settings.LOYALTY = {**settings.LOYALTY, "MAX_LINE_DISCOUNT_SHARE": "0.5"}
    make_offer(
        rules=[{"actions": [{"key": "discount", "params": {"kind": "percent", "value": "40"}}]}], priority=1
    )
    make_offer(
        rules=[{"actions": [{"key": "discount", "params": {"kind": "percent", "value": "40"}}]}], priority=2
    )
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(("COFFEE", 1, 500)))
    assert calc.ctx.lines[0].discount == Decimal("250.00")  # 200 + 120 asked, capped at half


def test_cheque_message_renders_the_final_discount(shop, make_offer, now):
    make_offer(
        rules=[
            {
                "actions": [
                    TEN_PERCENT,
                    {
                        "key": "cheque_message",
                        "params": {"text": "Your discount is {{ discount }} {{ currency }}."},
                    },
                ]
            }
        ]
    )
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(("COFFEE", 1, 510)))
    assert calc.cheque_messages == ["Your discount is 51 RUB."]
    # the explained effect shows the text as printed
    (shown,) = [e for e in calc.result.effects if e.action == "cheque_message"]
    assert shown.text == "Your discount is 51 RUB."


def test_cheque_message_amounts_are_written_as_the_language_writes_them(shop, make_offer, now):
    from django.utils import translation

    make_offer(
        rules=[{"actions": [TEN_PERCENT, {"key": "cheque_message", "params": {"text": "{{ discount }}"}}]}]
    )
    receipt = lines(("COFFEE", 1, "12345.60"))
    with translation.override("ru"):
        assert purchase_calculate(point_of_sale=shop["hyper"], lines=receipt).cheque_messages == [
            "1\xa0234,56"
        ]
    with translation.override("en"):
        assert purchase_calculate(point_of_sale=shop["hyper"], lines=receipt).cheque_messages == ["1,234.56"]


def test_coffee_group_with_subgroups_gets_bonus_points(shop, make_offer, now):
    make_offer(
        event="bonus_calculated",
        rules=[
            {
                "filters": [
                    {"key": "products", "params": {"groups": [shop["drinks"].pk], "with_descendants": True}}
                ],
                "actions": [{"key": "bonus", "params": {"kind": "percent", "value": "5"}}],
            }
        ],
    )
    calc = purchase_calculate(
        point_of_sale=shop["hyper"], lines=lines(("COFFEE", 1, 500), ("TEA", 1, 200), ("BREAD", 2, 50))
    )
    (accrual,) = calc.result.accruals
    assert accrual.amount == Decimal("35.00")
    assert calc.result.effects[0].lines == [0, 1]


def test_offers_are_indexed_by_point_of_sale(shop, make_offer, now, django_assert_max_num_queries):
    from offers.catalog import PURCHASE_CALCULATION
    from offers.selectors import offers_at

    # given an offer for hypermarkets only and one for everyone
    hyper_only = make_offer(rules=[{"filters": [HYPERMARKETS], "actions": [TEN_PERCENT]}], name="hyper")
    everyone = make_offer(rules=[{"actions": [TEN_PERCENT]}], name="all")
    # when the index is asked for each store
    at_hyper, _needs = offers_at(PURCHASE_CALCULATION, shop["hyper"])
    online, _needs = offers_at(PURCHASE_CALCULATION, shop["online"])
    # then the store's own offers only, with the store filter already decided
    assert {o.id for o in at_hyper} == {hyper_only.pk, everyone.pk}
    assert {o.id for o in online} == {everyone.pk}
    assert next(o for o in at_hyper if o.id == hyper_only.pk).rules[0].filters == []
    # and asking again costs only the version check
    with django_assert_max_num_queries(1):
        offers_at(PURCHASE_CALCULATION, shop["hyper"])


def test_a_counter_of_the_offers_period_counts_from_the_offers_start(
    shop, make_offer, now, django_capture_on_commit_callbacks
):
    import datetime as dt

    from loyalty.services.events import event_record
    from offers.models import Counter, CounterValue
    from tests import factories

    # given a counter kept per offer period, counted by an offer that started on 1 November
    Counter.objects.create(key="visits", name="Visits in the campaign", period="offer")
    november = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    counting = {"key": "counter_change", "params": {"counter": "visits", "operation": "add", "value": "1"}}
    make_offer(event="app_installed", rules=[{"actions": [counting]}], name="count", starts_at=november)
    # and an offer of the same campaign rewarding the third visit
    third = {
        "key": "counter",
        "params": {"mode": "counter", "counter": "visits", "operator": "gte", "value": "3"},
    }
    reward = make_offer(
        rules=[{"filters": [third], "actions": [TEN_PERCENT]}], name="third visit", starts_at=november
    )
    member = factories.MemberFactory()
    # when the member is counted three times
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            event_record(event_type="app_installed", member=member)
    # then the value sits in the campaign's period and the reward applies
    (value,) = CounterValue.objects.filter(member=member)
    assert value.period_start == dt.date(2026, 11, 1) and value.value == 3
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(("COFFEE", 1, 500)), member=member)
    assert reward.pk in calc.result.applied
