"""Every metric against a hand-worked expectation on the fixture in conftest.py.
Runs on SQLite and, in CI, on PostgreSQL."""

import pytest

from loyalty.models import Member
from segments.control import in_control_group
from segments.metrics import metrics
from segments.models import GlobalControlGroup
from segments.rules import RuleError, rule_q, rule_validate, rule_words
from segments.services import rfm_recompute
from tests.segments.conftest import NOW

P90 = {"period": {"last_days": 90}}
P30 = {"period": {"last_days": 30}}

CASES = [
    # (metric, operator, value, params, expected first names)
    ("gender", "in", ["female"], {}, {"anna", "vera"}),
    ("gender", "not_in", ["female"], {}, {"boris", "gleb"}),
    ("age", "between", [30, 60], {}, {"anna", "boris"}),
    ("age", "gte", 40, {}, {"boris"}),
    ("age", "lt", 30, {}, {"vera"}),
    ("age", "eq", 36, {}, {"anna"}),
    ("birth_date", "before", "1980-01-01", {}, {"boris"}),
    ("birthday_within_days", "lte", 7, {}, {"boris"}),
    ("city", "in", ["москва", "г. Казань"], {}, {"anna", "boris", "gleb"}),
    ("city", "ne", "Москва", {}, {"boris", "vera"}),
    ("registered_at", "after", "2026-05-31", {}, {"boris", "vera"}),
    ("registration_channel", "in", ["mobile_app"], {}, {"boris"}),
    ("state", "in", ["client"], {}, {"gleb"}),
    ("status", "in", ["gold"], {}, {"anna"}),
    ("custom_field", "eq", "yes", {"field": "has_car"}, {"anna"}),
    ("has_valid_phone", "eq", True, {}, {"anna", "boris"}),
    ("has_valid_email", "eq", True, {}, {"anna", "vera"}),
    ("has_valid_email", "eq", False, {}, {"boris", "gleb"}),
    ("consent", "eq", True, {"channel": "sms"}, {"anna"}),
    ("time_zone", "eq", "Asia/Novosibirsk", {}, {"vera"}),
    ("operator", "in", ["T2"], {}, {"boris"}),
    ("purchase_count", "gte", 2, P90, {"anna"}),
    ("purchase_count", "eq", 0, P90, {"vera", "gleb"}),
    ("purchase_count", "eq", 3, {}, {"anna"}),
    ("purchase_total", "gt", 1000, {}, {"anna", "vera"}),
    ("purchase_total", "lt", 300, {}, {"boris", "gleb"}),
    ("average_receipt", "lt", 700, {}, {"anna", "boris"}),
    ("first_purchase_date", "before", "2026-01-01", {}, {"anna"}),
    ("last_purchase_date", "after", "2026-11-01", {}, {"anna", "boris"}),
    ("bought_product", "in", ["SKU-COFFEE"], {}, {"anna", "boris"}),
    ("bought_product_group", "in", ["food"], P30, {"anna", "boris"}),
    ("bought_product_group", "in", ["dairy"], {}, {"anna"}),
    ("bought_product_group", "not_in", ["kitchen"], {}, {"anna", "boris", "gleb"}),
    ("bought_product_group", "in", ["dairy"], {"period": {"from": "2026-10-01"}}, {"anna"}),
    ("bought_product_group", "in", ["dairy"], {"period": {"from": "2026-10-02"}}, set()),
    (
        "bought_product_group",
        "in",
        ["food"],
        {"period": {"from": "2025-11-01", "to": "2026-09-30"}},
        {"anna"},
    ),
    ("bought_product_group", "in", ["coffee"], {"period": {"to": "2026-11-15"}}, {"boris"}),
    ("bought_at_point_of_sale", "in", ["hyper"], {}, {"anna"}),
    ("bought_at_pos_attribute", "in", ["Supermarket"], {"attribute": "CustomTradeFormat"}, {"boris"}),
    ("bought_in_sales_channel", "in", ["mobile_app"], {}, {"vera"}),
    ("paid_with_method", "in", ["online"], {}, {"anna"}),
    ("bonus_balance", "gte", 100, {}, {"anna"}),
    ("bonus_balance", "eq", 0, {}, {"boris", "vera", "gleb"}),
    ("bonus_balance", "gte", 500, {"currency": "promo"}, {"vera"}),
    ("bonus_expiring", "gt", 0, {"days": 30}, {"anna"}),
    ("bonus_expiring", "eq", 20, {"days": 30}, {"anna"}),
    ("bonus_accrued", "gte", 150, P30, {"anna"}),
    ("bonus_spent", "gt", 0, {}, {"anna"}),
    ("event_count", "gte", 2, {"event_type": "app_installed"}, {"boris"}),
    ("event_count", "gte", 1, {"event_type": "app_installed"}, {"anna", "boris"}),
    ("event_count", "eq", 0, {"event_type": "app_installed"}, {"vera", "gleb"}),
    ("messages_received", "eq", 0, {}, {"anna", "boris", "vera", "gleb"}),
    ("messages_opened", "gt", 0, {}, set()),
    ("messages_clicked", "gt", 0, {"channel": "email"}, set()),
    ("unsubscribed", "eq", 0, {}, {"anna", "boris", "vera", "gleb"}),
    ("rfm_segment", "in", ["champions"], {}, {"anna"}),
    ("rfm_segment", "in", ["need_attention", "lost"], {}, {"boris", "vera"}),
    ("rfm_r", "gte", 3, {}, {"anna", "boris"}),
    ("rfm_f", "eq", 5, {}, {"anna"}),
    ("rfm_m", "eq", 5, {}, {"vera"}),
    ("audience", "in", ["VIP"], {}, {"anna", "vera"}),
    ("audience", "not_in", ["VIP"], {}, {"boris", "gleb"}),
]


def names(rule) -> set[str]:
    return set(Member.objects.filter(rule_q(rule, now=NOW)).values_list("first_name", flat=True))


@pytest.fixture
def scored(world, time_machine):
    time_machine.move_to(NOW, tick=False)
    rfm_recompute(now=NOW)
    return world


@pytest.mark.parametrize(("metric", "op", "value", "params", "expected"), CASES, ids=lambda v: str(v)[:30])
def test_metric_selects_the_hand_worked_members(scored, time_machine, metric, op, value, params, expected):
    if metric == "audience":
        value = [str(scored["audience"].pk)]
    rule = {"metric": metric, "operator": op, "value": value, "params": params}
    assert names(rule) == expected


def test_groups_and_currencies_are_read_when_the_rule_is_compiled(scored):
    """The groups of a subtree and the currency become literal ids: the count joins no
    group or currency table per member (and PostgreSQL can share one parallel hash)."""
    rule = {
        "op": "and",
        "items": [
            {"metric": "bought_product_group", "operator": "in", "value": ["food"], "params": P30},
            {"metric": "bonus_balance", "operator": "gte", "value": 100, "params": {}},
        ],
    }
    sql = str(Member.objects.filter(rule_q(rule, now=NOW)).query)
    assert "loyalty_productgroup" not in sql
    assert "loyalty_currency" not in sql
    assert names(rule) == {"anna"}


def test_every_metric_in_the_catalog_has_a_case():
    covered = {case[0] for case in CASES} | {"global_control_group"}
    assert {m.key for m in metrics} == covered


def test_global_control_group_matches_the_hash(scored, time_machine):
    group = GlobalControlGroup.current()
    group.enabled, group.share_percent, group.salt = True, 50, 7
    group.save()
    expected = {
        m.first_name for m in Member.objects.all() if in_control_group(m.pk, salt=7, share_percent=50)
    }
    assert names({"metric": "global_control_group", "operator": "eq", "value": True}) == expected
    assert names({"metric": "global_control_group", "operator": "eq", "value": False}) == (
        {"anna", "boris", "vera", "gleb"} - expected
    )


def test_groups_combine_with_and_or_not(scored, time_machine):
    women = {"metric": "gender", "operator": "in", "value": ["female"]}
    moscow = {"metric": "city", "operator": "eq", "value": "москва"}
    assert names({"op": "and", "items": [women, moscow]}) == {"anna"}
    assert names({"op": "or", "items": [women, moscow]}) == {"anna", "vera", "gleb"}
    assert names({"op": "and", "not": True, "items": [women, moscow]}) == {"boris", "vera", "gleb"}
    nested = {"op": "and", "items": [women, {"op": "or", "not": True, "items": [moscow]}]}
    assert names(nested) == {"vera"}
    assert names({"op": "and", "items": []}) == {"anna", "boris", "vera", "gleb"}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"metric": "shoe_size", "operator": "eq", "value": 42}, "unknown metric 'shoe_size'"),
        ({"metric": "gender", "operator": "gt", "value": ["female"]}, "cannot use operator 'gt'"),
        ({"metric": "age", "operator": "gte", "value": "old"}, "'old' is not a number"),
        ({"metric": "gender", "operator": "in", "value": ["robot"]}, "not one of the listed values"),
        ({"metric": "event_count", "operator": "gte", "value": 1}, "needs event"),
        (
            {"op": "and", "items": [{"metric": "age", "operator": "between", "value": [40, 20]}]},
            "rule.items[0]: the first value must not exceed the second",
        ),
        ({"op": "xor", "items": []}, "joins with and / or"),
        (
            {
                "metric": "purchase_count",
                "operator": "gte",
                "value": 1,
                "params": {"period": {"last_days": -3}},
            },
            "not a valid period",
        ),
    ],
)
def test_invalid_rules_are_refused_naming_the_condition(db, rule, message):
    with pytest.raises(RuleError) as caught:
        rule_validate(rule)
    assert message in str(caught.value)


def test_rule_in_words(scored):
    rule = {
        "op": "and",
        "items": [
            {"metric": "gender", "operator": "in", "value": ["female"]},
            {"metric": "age", "operator": "between", "value": [25, 40]},
            {"metric": "city", "operator": "eq", "value": "Москва"},
            {"metric": "bought_product_group", "operator": "in", "value": ["coffee"], "params": P30},
        ],
    }
    assert rule_words(rule) == (
        "Gender is one of Female and Age between 25 and 40 and City is Москва and "
        "Bought from a product group is one of Coffee in the last 30 days"
    )


def test_rule_in_russian_words(scored):
    from django.utils import translation

    rule = {
        "op": "and",
        "items": [
            {"metric": "gender", "operator": "in", "value": ["female"]},
            {"metric": "purchase_count", "operator": "gte", "value": 2, "params": P90},
        ],
    }
    with translation.override("ru"):
        words = rule_words(rule)
    assert " и " in words and "за последние 90 дн." in words and "Женский" in words
