"""Segments: live counts, snapshots, scheduled refresh; RFM recompute; target audiences.
Everything here is set-wise SQL: no Python loop over members."""

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from loyalty.models import Card, Member, MemberEvent, Receipt, ReceiptKind, ReceiptState
from loyalty.services.contacts import phone_search_key
from segments.models import (
    AudienceMember,
    MemberRFM,
    RFMChange,
    RFMMonthly,
    RFMSegment,
    RFMSettings,
    Segment,
    SegmentCount,
    SegmentMember,
    TargetAudience,
)
from segments.rules import rule_q, rule_validate

COUNT_CACHE_SECONDS = 30


# --- segments ----------------------------------------------------------------------------


def segment_queryset(rule) -> QuerySet[Member]:
    """The members a rule selects, live: one query."""
    return Member.objects.filter(rule_q(rule))


def segment_count(rule, *, use_cache: bool = True) -> int:
    """Live count while editing; the same rule is answered from a short cache."""
    clean = rule_validate(rule)
    key = (
        "segment-count:" + hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()
    )
    if use_cache and (hit := cache.get(key)) is not None:
        return hit
    count = segment_queryset(clean).count()
    cache.set(key, count, COUNT_CACHE_SECONDS)
    return count


def segment_members(segment: Segment, *, live: bool = False) -> QuerySet[Member]:
    """Members of the segment: its last snapshot, or the rule evaluated now."""
    if live or segment.refreshed_at is None:
        return segment_queryset(segment.rule)
    snapshot = SegmentMember.objects.filter(segment=segment, generation=segment.generation)
    return Member.objects.filter(pk__in=snapshot.values("member_id"))


def _ids_sql(members: QuerySet[Member]) -> tuple[str, tuple]:
    """SQL selecting the members' ids as column ``member_pk``, to embed in INSERT ... SELECT."""
    return members.order_by().values(member_pk=F("pk")).query.sql_with_params()


@transaction.atomic
def segment_materialise(segment: Segment) -> SegmentCount:
    """Write a new snapshot set-wise, count what came and went against the previous
    one, drop the previous one and record the count. The members are selected into a
    temporary table first: PostgreSQL runs that query in parallel, which it never does
    for the SELECT of an ``INSERT ... SELECT``."""
    started = time.perf_counter()
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    now = timezone.now()
    old, new = segment.generation, segment.generation + 1
    select_sql, params = _ids_sql(segment_queryset(segment.rule))
    table = SegmentMember._meta.db_table
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS segment_ids")
        cur.execute(f"CREATE TEMP TABLE segment_ids AS {select_sql}", params)
        cur.execute(
            f"INSERT INTO {table} (segment_id, member_id, generation, computed_at) "
            f"SELECT %s, s.member_pk, %s, %s FROM segment_ids s",
            [segment.pk, new, at],
        )
        members = cur.rowcount
        cur.execute("DROP TABLE segment_ids")
        added = removed = 0
        if segment.refreshed_at is not None:
            cur.execute(
                f"SELECT "
                f"(SELECT COUNT(*) FROM {table} n WHERE n.segment_id = %s AND n.generation = %s AND NOT EXISTS "
                f"(SELECT 1 FROM {table} o WHERE o.segment_id = %s AND o.generation = %s "
                f"AND o.member_id = n.member_id)), "
                f"(SELECT COUNT(*) FROM {table} o WHERE o.segment_id = %s AND o.generation = %s AND NOT EXISTS "
                f"(SELECT 1 FROM {table} n WHERE n.segment_id = %s AND n.generation = %s "
                f"AND n.member_id = o.member_id))",
                [segment.pk, new, segment.pk, old, segment.pk, old, segment.pk, new],
            )
            added, removed = cur.fetchone()
        else:
            added = members
        cur.execute(f"DELETE FROM {table} WHERE segment_id = %s AND generation <> %s", [segment.pk, new])
    Segment.objects.filter(pk=segment.pk).update(generation=new, member_count=members, refreshed_at=now)
    return SegmentCount.objects.create(
        segment=segment,
        computed_at=now,
        members=members,
        added=added,
        removed=removed,
        seconds=time.perf_counter() - started,
    )


def segments_refresh() -> int:
    """Refresh every segment marked for scheduled refresh; returns how many."""
    done = 0
    for segment in Segment.objects.filter(auto_refresh=True).only("pk"):
        segment_materialise(segment)
        done += 1
    return done


@transaction.atomic
def segment_duplicate(segment: Segment, *, user=None) -> Segment:
    return Segment.objects.create(
        name=_("%(name)s (copy)") % {"name": segment.name},
        description=segment.description,
        rule=segment.rule,
        auto_refresh=segment.auto_refresh,
        created_by=user,
    )


# --- RFM -------------------------------------------------------------------------------

# (recency scores, frequency scores) -> named segment; covers all 25 R×F cells.
RFM_MAP: list[tuple[set[int], set[int], str]] = [
    ({5}, {4, 5}, RFMSegment.CHAMPIONS),
    ({3, 4}, {4, 5}, RFMSegment.LOYAL),
    ({4, 5}, {2, 3}, RFMSegment.POTENTIAL_LOYALISTS),
    ({5}, {1}, RFMSegment.NEW),
    ({4}, {1}, RFMSegment.PROMISING),
    ({3}, {1, 2, 3}, RFMSegment.NEED_ATTENTION),
    ({1, 2}, {5}, RFMSegment.CANT_LOSE),
    ({1, 2}, {3, 4}, RFMSegment.AT_RISK),
    ({2}, {1, 2}, RFMSegment.HIBERNATING),
    ({1}, {1, 2}, RFMSegment.LOST),
]


def rfm_segment_for(r: int, f: int) -> str:
    for rs, fs, name in RFM_MAP:
        if r in rs and f in fs:
            return name
    raise ValueError((r, f))


def _rfm_case() -> str:
    whens = " ".join(
        f"WHEN r IN ({','.join(map(str, sorted(rs)))}) AND f IN ({','.join(map(str, sorted(fs)))}) THEN '{name}'"
        for rs, fs, name in RFM_MAP
    )
    return f"CASE {whens} END"


def _score_sql(column: str, cutoffs: list, *, higher_is_better: bool) -> str:
    """Score 1–5 from four ascending cut-offs."""
    if higher_is_better:  # frequency, monetary: at least the 4th cut-off → 5
        whens = " ".join(f"WHEN {column} >= {cutoffs[3 - i]} THEN {5 - i}" for i in range(4))
    else:  # recency in days: at most the 1st cut-off → 5
        whens = " ".join(f"WHEN {column} <= {cutoffs[i]} THEN {5 - i}" for i in range(4))
    return f"CASE {whens} ELSE 1 END"


def _rank_score_sql(rank: str) -> str:
    """Fifths by rank (``rank`` among ``n`` scored members): the lowest value scores 1, the
    highest 5; equal values share a rank and so a score (NTILE would split them), so the
    many one-receipt buyers all score 1. Integer arithmetic only, so SQLite and
    PostgreSQL agree (their casts round differently)."""
    return f"(CASE WHEN {rank} = n THEN 5 ELSE 1 + (5 * ({rank} - 1)) / (n - 1) END)"


@dataclass
class RFMResult:
    scored: int
    changed: int
    seconds: float
    sizes: dict[str, int] = field(default_factory=dict)


@transaction.atomic
def rfm_recompute(*, now: dt.datetime | None = None) -> RFMResult:
    """Score every member who bought in the window, in SQL: recency, frequency and
    monetary value per member (from the per-member purchase figures when the window is
    one they keep, else aggregated from the receipts), scores by rank fifths or the
    marketer's cut-offs, the named segment from the R×F map. Only rows whose values
    changed are rewritten. Moves between segments go to the change history and the
    member event journal."""
    from segments.models import STATS_WINDOWS, MemberPurchaseStats

    started = time.perf_counter()
    now = now or timezone.now()
    cfg = RFMSettings.current()
    at = connection.ops.adapt_datetimefield_value(now)
    if cfg.window_days in STATS_WINDOWS:
        w = cfg.window_days
        source = (
            f"SELECT member_id, last_purchase_at AS last_at, count_{w} AS frequency, total_{w} AS monetary "
            f"FROM {MemberPurchaseStats._meta.db_table} WHERE count_{w} > 0"
        )
        source_params = []
    else:
        source = (
            f"SELECT member_id, MAX(purchased_at) AS last_at, COUNT(*) AS frequency, SUM(total) AS monetary "
            f"FROM {Receipt._meta.db_table} WHERE kind = %s AND state IN (%s, %s) AND member_id IS NOT NULL "
            f"AND purchased_at >= %s AND purchased_at <= %s GROUP BY member_id"
        )
        start = connection.ops.adapt_datetimefield_value(now - dt.timedelta(days=cfg.window_days))
        source_params = [ReceiptKind.SALE, ReceiptState.CONFIRMED, ReceiptState.PARTLY_REFUNDED, start, at]
    if cfg.method == RFMSettings.Method.THRESHOLDS:
        if connection.vendor == "postgresql":
            recency = "FLOOR(EXTRACT(EPOCH FROM (CAST(%s AS timestamptz) - last_at)) / 86400)"
        else:
            recency = "CAST(julianday(%s) - julianday(last_at) AS INTEGER)"
        r_sql = _score_sql(f"({recency})", cfg.recency_days, higher_is_better=False)
        f_sql = _score_sql("frequency", cfg.frequency, higher_is_better=True)
        m_sql = _score_sql("monetary", cfg.monetary, higher_is_better=True)
        score_params = [at] * 4  # the recency expression appears once per cut-off
    else:
        r_sql = _rank_score_sql("r_rank")  # the most recent buyers score 5
        f_sql = _rank_score_sql("f_rank")
        m_sql = _rank_score_sql("m_rank")
        score_params = []
    rfm, change, event = MemberRFM._meta.db_table, RFMChange._meta.db_table, MemberEvent._meta.db_table
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # Three sorts of every scored member: let them happen in memory, for this run only.
            cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute("DROP TABLE IF EXISTS rfm_new")
        cur.execute(
            f"CREATE TEMP TABLE rfm_new AS "
            f"SELECT member_id, last_at, frequency, monetary, r, f, m, {_rfm_case()} AS segment FROM ("
            f"  SELECT member_id, last_at, frequency, monetary, {r_sql} AS r, {f_sql} AS f, {m_sql} AS m FROM ("
            f"    SELECT agg.*, RANK() OVER (ORDER BY last_at) AS r_rank, RANK() OVER (ORDER BY frequency) AS f_rank,"
            f"    RANK() OVER (ORDER BY monetary) AS m_rank, COUNT(*) OVER () AS n FROM ({source}) agg"
            f"  ) ranked"
            f") scored",
            [*score_params, *source_params],
        )
        if connection.vendor == "postgresql":
            cur.execute("ANALYZE rfm_new")
        # Moves: into a (different) segment, and out of scoring altogether (one pass).
        cur.execute(
            f"INSERT INTO {change} (member_id, segment_from, segment_to, changed_at) "
            f"SELECT COALESCE(n.member_id, o.member_id), COALESCE(o.segment, ''), COALESCE(n.segment, ''), %s "
            f"FROM rfm_new n FULL OUTER JOIN {rfm} o ON o.member_id = n.member_id "
            f"WHERE n.segment IS DISTINCT FROM o.segment",
            [at],
        )
        changed = cur.rowcount
        payload = '\'{"from": "\' || segment_from || \'", "to": "\' || segment_to || \'"}\''
        if connection.vendor == "postgresql":
            payload = f"CAST({payload} AS jsonb)"
        cur.execute(
            f"INSERT INTO {event} (event_type, member_id, occurred_at, channel, payload, created_at) "
            f"SELECT 'rfm_segment_changed', member_id, changed_at, 'rfm', {payload}, %s FROM {change} "
            f"WHERE changed_at = %s",
            [at, at],
        )
        # Rewrite only what changed: most members keep their scores from one night to the next.
        cur.execute(
            f"UPDATE {rfm} SET last_purchase_at = n.last_at, frequency = n.frequency, monetary = n.monetary, "
            f"r = n.r, f = n.f, m = n.m, segment = n.segment, computed_at = %s FROM rfm_new n "
            f"WHERE {rfm}.member_id = n.member_id AND ({rfm}.r <> n.r OR {rfm}.f <> n.f OR {rfm}.m <> n.m "
            f"OR {rfm}.segment <> n.segment OR {rfm}.frequency <> n.frequency OR {rfm}.monetary <> n.monetary "
            f"OR {rfm}.last_purchase_at <> n.last_at)",
            [at],
        )
        cur.execute(
            f"DELETE FROM {rfm} WHERE NOT EXISTS (SELECT 1 FROM rfm_new n WHERE n.member_id = {rfm}.member_id)"
        )
        cur.execute(
            f"INSERT INTO {rfm} (member_id, last_purchase_at, frequency, monetary, r, f, m, segment, computed_at) "
            f"SELECT member_id, last_at, frequency, monetary, r, f, m, segment, %s FROM rfm_new n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {rfm} o WHERE o.member_id = n.member_id)",
            [at],
        )
        month = connection.ops.adapt_datefield_value(timezone.localdate(now).replace(day=1))
        cur.execute(f"DELETE FROM {RFMMonthly._meta.db_table} WHERE month = %s", [month])
        cur.execute(
            f"INSERT INTO {RFMMonthly._meta.db_table} (month, segment, members) "
            f"SELECT %s, segment, COUNT(*) FROM rfm_new GROUP BY segment",
            [month],
        )
        cur.execute("SELECT segment, COUNT(*) FROM rfm_new GROUP BY segment")
        sizes = dict(cur.fetchall())
        cur.execute("DROP TABLE rfm_new")
    return RFMResult(
        scored=sum(sizes.values()), changed=changed, seconds=time.perf_counter() - started, sizes=sizes
    )


def rfm_grid() -> list[dict]:
    """R×F cells: members, revenue and average receipt (one query)."""
    from django.db.models import Count, Sum

    rows = MemberRFM.objects.values("r", "f").annotate(
        members=Count("member_id"), revenue=Sum("monetary"), receipts=Sum("frequency")
    )
    cells = []
    for row in rows:
        row["average_receipt"] = (row["revenue"] / row["receipts"]) if row["receipts"] else None
        row["segment"] = rfm_segment_for(row["r"], row["f"])
        cells.append(row)
    return cells


# --- target audiences ------------------------------------------------------------------


def audience_recount(audience: TargetAudience) -> int:
    count = AudienceMember.objects.filter(audience=audience).count()
    TargetAudience.objects.filter(pk=audience.pk).update(member_count=count, updated_at=timezone.now())
    audience.member_count = count
    return count


@transaction.atomic
def audience_add(audience: TargetAudience, members: QuerySet[Member]) -> int:
    """Add members (a queryset, evaluated in the database) that are not in yet."""
    table = AudienceMember._meta.db_table
    select_sql, params = _ids_sql(members)
    at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} (audience_id, member_id, added_at) SELECT %s, s.member_pk, %s FROM ({select_sql}) s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} a WHERE a.audience_id = %s AND a.member_id = s.member_pk)",
            [audience.pk, at, *params, audience.pk],
        )
        added = cur.rowcount
    audience_recount(audience)
    return added


@transaction.atomic
def audience_remove(audience: TargetAudience, members: QuerySet[Member]) -> int:
    removed, _ = AudienceMember.objects.filter(audience=audience, member__in=members.values("pk")).delete()
    audience_recount(audience)
    return removed


@transaction.atomic
def audience_fill_from_segment(
    audience: TargetAudience, segment: Segment, *, replace: bool = False, live: bool = False
) -> int:
    """ "Upload to loyalty": put the segment's members into the audience (optionally
    replacing what was there), so offers and targeted content can filter on it."""
    if replace:
        AudienceMember.objects.filter(audience=audience).delete()
    return audience_add(audience, segment_members(segment, live=live))


@dataclass
class AudienceImportReport:
    added: int = 0
    already: int = 0
    unmatched: list[tuple[int, str]] = field(default_factory=list)
    ambiguous: list[tuple[int, str]] = field(default_factory=list)


@transaction.atomic
def audience_import(
    audience: TargetAudience, values: list[str], *, first_line: int = 1
) -> AudienceImportReport:
    """Match each value (phone in any format, email, card number or external id) to a
    member and add the matches; report unmatched and ambiguous lines. Lookups are
    batched: one query per identifier kind per chunk."""
    report = AudienceImportReport()
    matched: set[int] = set()
    chunk = 5000
    for offset in range(0, len(values), chunk):
        part = [
            (first_line + offset + i, (v or "").strip())
            for i, v in enumerate(values[offset : offset + chunk])
        ]
        part = [(line, v) for line, v in part if v]
        phones = {line: phone_search_key(v) for line, v in part}
        by_phone = dict(
            Member.objects.filter(phone__in=[p for p in phones.values() if p]).values_list("phone", "pk")
        )
        emails = [v.lower() for _line, v in part if "@" in v]
        by_email: dict[str, list[int]] = {}
        for email, pk in Member.objects.filter(email__in=emails).values_list("email", "pk"):
            by_email.setdefault(email, []).append(pk)
        raw = [v for _line, v in part]
        by_card = dict(
            Card.objects.filter(number__in=raw, member__isnull=False).values_list("number", "member_id")
        )
        by_external = dict(Member.objects.filter(external_id__in=raw).values_list("external_id", "pk"))
        for line, value in part:
            candidates = set()
            if phones[line] and phones[line] in by_phone:
                candidates.add(by_phone[phones[line]])
            candidates.update(by_email.get(value.lower(), []))
            if value in by_card:
                candidates.add(by_card[value])
            if value in by_external:
                candidates.add(by_external[value])
            if not candidates:
                report.unmatched.append((line, value))
            elif len(candidates) > 1:
                report.ambiguous.append((line, value))
            else:
                matched.add(candidates.pop())
    existing = set(
        AudienceMember.objects.filter(audience=audience, member_id__in=matched).values_list(
            "member_id", flat=True
        )
    )
    new = matched - existing
    AudienceMember.objects.bulk_create(
        [AudienceMember(audience=audience, member_id=pk) for pk in sorted(new)], batch_size=5000
    )
    report.added, report.already = len(new), len(existing)
    audience_recount(audience)
    return report


def member_segments(member: Member) -> list[Segment]:
    """Segments whose current snapshot holds the member."""
    current = Segment.objects.filter(
        pk=OuterRef("segment_id"), generation=OuterRef("generation"), refreshed_at__isnull=False
    )
    rows = SegmentMember.objects.filter(member=member).filter(Exists(current)).values("segment_id")
    return list(Segment.objects.filter(pk__in=rows).order_by("name"))
