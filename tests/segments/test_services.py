import datetime as dt
from decimal import Decimal

import pytest

from loyalty.models import Member, MemberEvent
from segments.models import (
    AudienceMember,
    MemberRFM,
    RFMChange,
    RFMMonthly,
    RFMSettings,
    Segment,
    TargetAudience,
)
from segments.services import (
    audience_fill_from_segment,
    audience_import,
    rfm_recompute,
    segment_count,
    segment_materialise,
    segment_members,
)
from tests import factories
from tests.segments.conftest import NOW

WOMEN = {"metric": "gender", "operator": "in", "value": ["female"]}


def test_live_count_and_one_query(world, django_assert_num_queries):
    rule = {"op": "and", "items": [WOMEN, {"metric": "purchase_count", "operator": "gte", "value": 1}]}
    with django_assert_num_queries(1):
        assert segment_count(rule, use_cache=False) == 2


def test_materialise_diffs_against_the_previous_snapshot(world):
    # given a segment of women, materialised
    segment = Segment.objects.create(name="Women", rule=WOMEN)
    first = segment_materialise(segment)
    assert (first.members, first.added, first.removed) == (2, 2, 0)
    # when vera leaves and boris joins
    Member.objects.filter(first_name="vera").update(gender="male")
    Member.objects.filter(first_name="boris").update(gender="female")
    second = segment_materialise(segment)
    # then
    assert (second.members, second.added, second.removed) == (2, 1, 1)
    segment.refresh_from_db()
    assert set(segment_members(segment).values_list("first_name", flat=True)) == {"anna", "boris"}
    assert segment.counts.count() == 2


def test_rfm_recompute_scores_names_and_records_moves(world):
    result = rfm_recompute(now=NOW)
    assert result.scored == 3  # gleb never bought
    segments = dict(MemberRFM.objects.values_list("member__first_name", "segment"))
    assert segments == {"anna": "champions", "boris": "need_attention", "vera": "lost"}
    anna = MemberRFM.objects.get(member__first_name="anna")
    assert (anna.r, anna.f, anna.m, anna.frequency, anna.monetary) == (5, 5, 3, 3, 1800)
    assert anna.last_purchase_at.date() == dt.date(2026, 11, 20)
    assert RFMChange.objects.count() == 3
    assert MemberEvent.objects.filter(event_type="rfm_segment_changed").count() == 3
    # a year later nobody bought: the nightly ageing empties the windows, everyone drops
    # out, and the moves are recorded
    from segments.stats import stats_age

    stats_age(now=NOW + dt.timedelta(days=400))
    later = rfm_recompute(now=NOW + dt.timedelta(days=400))
    assert later.scored == 0 and later.changed == 3
    event = MemberEvent.objects.filter(event_type="rfm_segment_changed", member__first_name="anna").first()
    assert event.payload == {"from": "champions", "to": ""}
    assert RFMMonthly.objects.filter(segment="champions").exists()


def test_rfm_thresholds_set_by_the_marketer(world):
    RFMSettings.objects.create(
        method="thresholds",
        recency_days=[7, 30, 90, 180],
        frequency=[1, 2, 3, 5],
        monetary=[100, 500, 1000, 3000],
    )
    rfm_recompute(now=NOW)
    scores = {m.member.first_name: (m.r, m.f, m.m) for m in MemberRFM.objects.select_related("member")}
    # anna: 3 days, 3 receipts, 1800; boris: 13 days, 1 receipt, 200; vera: 161 days, 1 receipt, 4000
    assert scores == {"anna": (5, 4, 4), "boris": (4, 2, 2), "vera": (2, 2, 5)}


def test_upload_segment_to_audience(world):
    segment = Segment.objects.create(name="Women", rule=WOMEN)
    segment_materialise(segment)
    audience = TargetAudience.objects.create(name="Women from segment")
    assert audience_fill_from_segment(audience, segment) == 2
    assert audience_fill_from_segment(audience, segment) == 0  # nobody twice
    audience.refresh_from_db()
    assert audience.member_count == 2


def test_audience_import_reports_unmatched_and_ambiguous(world):
    anna, boris = Member.objects.get(first_name="anna"), Member.objects.get(first_name="boris")
    anna.external_id = "boris@example.ru"  # an external id that looks like someone else's email
    anna.save()
    boris.email = "boris@example.ru"
    boris.save()
    audience = TargetAudience.objects.create(name="Imported")
    report = audience_import(
        audience,
        ["8 (916) 000-00-01", "vera@example.ru", "+7 999 999 99 99", "boris@example.ru", "", "nobody"],
    )
    assert report.added == 2
    assert report.unmatched == [(3, "+7 999 999 99 99"), (6, "nobody")]
    assert report.ambiguous == [(4, "boris@example.ru")]
    names = set(AudienceMember.objects.filter(audience=audience).values_list("member__first_name", flat=True))
    assert names == {"anna", "vera"}
    again = audience_import(audience, ["+79160000001"])
    assert (again.added, again.already) == (0, 1)


@pytest.mark.parametrize("cached", [True])
def test_count_is_cached_briefly(world, cached, django_assert_num_queries):
    segment_count(WOMEN)
    with django_assert_num_queries(0):
        assert segment_count(WOMEN) == 2


def test_demo_segments_command(db):
    from io import StringIO

    from django.core.management import call_command

    call_command("seed_demo", "--members", "40", stdout=StringIO())
    call_command("recompute_rfm", stdout=StringIO())
    out = StringIO()
    call_command("seed_demo_segments", stdout=out)
    assert Segment.objects.count() == 2 and all(s.refreshed_at for s in Segment.objects.all())
    call_command("seed_demo_segments", stdout=out)
    assert "nothing added" in out.getvalue()


def _rank_fifths(values: list) -> list[int]:
    """The definition: 1 + 5 * (members with a lower value) / (n - 1), at most 5."""
    n = len(values)
    return [5 if n == 1 else min(5, 1 + 5 * sum(1 for w in values if w < v) // (n - 1)) for v in values]


@pytest.mark.parametrize("n", [1, 2, 7, 23])
def test_rfm_rank_fifths_match_the_definition_with_ties(db, n):
    from segments.models import MemberPurchaseStats

    # given members whose figures repeat (ties across the fifths' boundaries)
    members = [factories.MemberFactory() for _ in range(n)]
    figures = []
    for i, member in enumerate(members):
        last = NOW - dt.timedelta(days=(i * 7) % 5 * 10)
        count, total = 1 + (i * 3) % 4, Decimal(100 * (1 + (i * 5) % 6))
        MemberPurchaseStats.objects.create(
            member=member, first_purchase_at=last, last_purchase_at=last, count_all=count, total_all=total,
            count_365=count, total_365=total,
        )  # fmt: skip
        figures.append((last, count, total))
    # when
    rfm_recompute(now=NOW)
    # then every score is the rank fifth of its measure
    r, f, m = (_rank_fifths([row[k] for row in figures]) for k in range(3))
    got = {x.member_id: (x.r, x.f, x.m) for x in MemberRFM.objects.all()}
    assert got == {member.pk: (r[i], f[i], m[i]) for i, member in enumerate(members)}


def test_rfm_rank_positions_agree_with_the_definition():
    from hypothesis import given
    from hypothesis import strategies as st

    from segments.services import rank_positions

    @given(st.lists(st.integers(0, 6), min_size=1, max_size=60))
    def check(values):
        ordered = sorted(values)
        positions = rank_positions(len(values))
        scores = [1 + sum(1 for p in positions if p <= 0 or v > ordered[p - 1]) for v in values]
        assert scores == _rank_fifths(values)

    check()


def test_rfm_second_run_rewrites_nothing_unchanged(world):
    rfm_recompute(now=NOW)
    again = rfm_recompute(now=NOW)
    assert again.changed == 0 and again.scored == 3
    assert RFMChange.objects.count() == 3
