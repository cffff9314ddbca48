"""Per-member purchase figures: incremental, aged, rebuilt — all agreeing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction

from loyalty.services.receipts import LineInput, receipt_confirm, receipt_record, receipt_refund
from segments.models import MemberPurchaseStats
from segments.stats import stats_age, stats_rebuild
from tests import factories

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def figures(member):
    s = MemberPurchaseStats.objects.get(member=member)
    return (s.count_all, s.total_all, s.count_30, s.total_30, s.count_90, s.count_365)


def buy(member, pos, n, days_ago, price, now):
    receipt = receipt_record(
        point_of_sale=pos,
        external_id=f"r{n}",
        member=member,
        purchased_at=now - dt.timedelta(days=days_ago),
        lines=[LineInput(sku="x", quantity=Decimal(1), price=Decimal(price))],
    )
    return receipt_confirm(receipt=receipt)


def test_purchases_add_as_they_are_confirmed(db, django_capture_on_commit_callbacks, time_machine):
    time_machine.move_to(T0, tick=False)
    member, pos = factories.MemberFactory(), factories.PointOfSaleFactory()
    with django_capture_on_commit_callbacks(execute=True):
        buy(member, pos, 1, 10, 100, T0)
        buy(member, pos, 2, 60, 50, T0)
        first = buy(member, pos, 3, 200, 30, T0)
    assert figures(member) == (3, 180, 1, 100, 2, 3)
    s = MemberPurchaseStats.objects.get(member=member)
    assert s.first_purchase_at == first.purchased_at and s.last_purchase_at == T0 - dt.timedelta(days=10)
    # a full refund takes the purchase away again
    with django_capture_on_commit_callbacks(execute=True):
        receipt_refund(receipt=first, external_id="ref-3")
    assert figures(member) == (2, 150, 1, 100, 2, 2)


def test_figures_move_in_the_confirming_transaction_and_roll_back_with_it(db):
    # given a member with one purchase counted
    member, pos = factories.MemberFactory(), factories.PointOfSaleFactory()
    now = dt.datetime.now(dt.UTC)
    buy(member, pos, 1, 1, 100, now)
    assert figures(member)[:2] == (1, 100)  # no commit needed: counted with the receipt

    # when a second confirmation fails after its receipt was confirmed
    with pytest.raises(RuntimeError), transaction.atomic():
        buy(member, pos, 2, 1, 40, now)
        raise RuntimeError("the till's transaction fails")

    # then the figures do not count it either
    assert figures(member)[:2] == (1, 100)


def test_ageing_moves_purchases_out_of_their_windows_and_matches_a_rebuild(db, time_machine):
    member, pos = factories.MemberFactory(), factories.PointOfSaleFactory()
    time_machine.move_to(T0, tick=False)
    for n, days_ago in enumerate([1, 25, 85, 300]):
        buy(member, pos, n, days_ago, 10, T0)
    stats_rebuild(now=T0)
    assert figures(member) == (4, 40, 2, 20, 3, 4)
    # ten days later: the 25-day-old purchase leaves the 30-day window, 85 the 90-day one
    later = T0 + dt.timedelta(days=10)
    stats_age(now=later)
    aged = figures(member)
    assert aged == (4, 40, 1, 10, 2, 4)
    stats_rebuild(now=later)
    assert figures(member) == aged


def groups_of(member):
    from segments.models import MemberGroupPurchase

    return {
        (g.group.code, g.receipts, g.first_purchase_at, g.last_purchase_at)
        for g in MemberGroupPurchase.objects.filter(member=member).select_related("group")
    }


def test_purchases_by_group_follow_purchases_and_refunds_and_match_a_rebuild(
    db, django_capture_on_commit_callbacks, time_machine
):
    from segments.stats import groups_rebuild

    # given coffee and tea products in two groups
    time_machine.move_to(T0, tick=False)
    member, pos = factories.MemberFactory(), factories.PointOfSaleFactory()
    coffee, tea = factories.ProductFactory(group__code="coffee"), factories.ProductFactory(group__code="tea")

    def sale(n, days_ago, *products):
        receipt = receipt_record(
            point_of_sale=pos,
            external_id=f"g{n}",
            member=member,
            purchased_at=T0 - dt.timedelta(days=days_ago),
            lines=[
                LineInput(sku=getattr(p, "sku", p), quantity=Decimal(1), price=Decimal(10)) for p in products
            ],
        )
        return receipt_confirm(receipt=receipt)

    # when three purchases are confirmed (two coffee lines on one receipt count once; a
    # SKU not in the catalog counts in no group)
    with django_capture_on_commit_callbacks(execute=True):
        sale(1, 40, coffee, coffee, "NOT-IN-CATALOG", tea)
        sale(2, 5, coffee)
        last_tea = sale(3, 20, tea)
    day = lambda n: T0 - dt.timedelta(days=n)  # noqa: E731
    assert groups_of(member) == {("coffee", 2, day(40), day(5)), ("tea", 2, day(40), day(20))}
    # then a rebuild agrees
    incremental = groups_of(member)
    groups_rebuild(now=T0)
    assert groups_of(member) == incremental
    # and a full refund takes its purchase away
    with django_capture_on_commit_callbacks(execute=True):
        receipt_refund(receipt=last_tea, external_id="g3-refund")
    assert groups_of(member) == {("coffee", 2, day(40), day(5)), ("tea", 1, day(40), day(40))}
