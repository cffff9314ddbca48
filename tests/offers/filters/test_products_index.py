"""The products filter takes a receipt's matching lines from the receipt's index of groups
and SKUs; whatever the receipt and the filter, it chooses exactly the lines that looking
at each line would."""

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from offers.catalog import offer_filters
from offers.engine import Context, Line

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
GROUPS = ["/food/", "/food/coffee/", "/food/coffee/beans/", "/food/tea/", "/home/", "/home/kitchen/"]
SKUS = ["A", "B", "C", "D", "E"]


def products_filter(skus, paths, descendants, exclude):
    flt = offer_filters.get("products").__new__(offer_filters.get("products"))
    flt.raw = {}
    flt.skus, flt.paths = frozenset(skus), frozenset(paths)
    flt.descendants, flt.exclude = descendants, exclude
    return flt


def looked_at_one_by_one(flt, lines):
    return [ln.index for ln in lines if flt._matches(ln) != flt.exclude]


@settings(max_examples=300, deadline=None)
@given(
    receipt=st.lists(
        st.tuples(st.sampled_from(SKUS), st.sampled_from(["", *GROUPS])), min_size=1, max_size=12
    ),
    skus=st.sets(st.sampled_from(SKUS), max_size=2),
    paths=st.sets(st.sampled_from(GROUPS), max_size=3),
    descendants=st.booleans(),
    exclude=st.booleans(),
    chosen_before=st.none() | st.sets(st.integers(min_value=0, max_value=11)),
)
def test_the_indexed_choice_equals_looking_at_each_line(
    receipt, skus, paths, descendants, exclude, chosen_before
):
    lines = [
        Line(index=i, sku=sku, quantity=Decimal(1), price=Decimal(10), group_path=path)
        for i, (sku, path) in enumerate(receipt)
    ]
    ctx = Context(event="discount_calculated", now=NOW, local_now=NOW, lines=lines)
    flt = products_filter(skus, paths, descendants, exclude)
    # all the receipt's lines, or those an earlier filter of the rule chose
    given_lines = ctx.lines if chosen_before is None else [ln for ln in lines if ln.index in chosen_before]
    chosen = flt.select(ctx, given_lines)
    assert [ln.index for ln in chosen] == looked_at_one_by_one(flt, given_lines)
