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
            # What came and went, by grouping the two snapshots' rows by member: linear
            # whatever the planner believes of the rows just written (an anti-join planned
            # on stale statistics compared every new row with every old one).
            cur.execute(
                f"SELECT COALESCE(SUM(CASE WHEN x.g = %s THEN 1 ELSE 0 END), 0), "
                f"COALESCE(SUM(CASE WHEN x.g = %s THEN 1 ELSE 0 END), 0) "
                f"FROM (SELECT member_id, COUNT(*) AS n, MAX(generation) AS g FROM {table} "
                f"WHERE segment_id = %s AND generation IN (%s, %s) GROUP BY member_id) x WHERE x.n = 1",
                [new, old, segment.pk, old, new],
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


def rank_positions(n: int) -> list[int]:
    """Scoring by rank fifths: a member's score is ``1 + 5 * less / (n - 1)`` (at most 5),
    where ``less`` is how many of the ``n`` scored members have a lower value, so equal
    values share a score (NTILE would split them) and the many one-receipt buyers all
    score 1. A score reaches ``k`` exactly when ``less >= ceil((k - 1)(n - 1) / 5)``, that
    is when the value is above the value at that 1-based position of the ascending order.
    Returns those four positions (for scores 2 to 5); 0 means every member reaches it."""
    return [-(-((k - 1) * (n - 1)) // 5) for k in range(2, 6)]


def _order_statistics(cur, table: str, n: int, columns: list[str], positions: list[int]) -> dict[str, list]:
    """For each column of ``table`` (``n`` rows), its values at the 1-based ``positions``
    of the ascending order. PostgreSQL sorts each column once (``percentile_disc`` at
    fractions that land on those positions); elsewhere one ordered lookup per position."""
    wanted = [p for p in positions if p > 0]
    if not wanted:
        return {c: [] for c in columns}
    if connection.vendor == "postgresql":
        fractions = [(p - 0.5) / n for p in wanted]  # ceil(fraction * n) == p
        cur.execute(
            "SELECT "
            + ", ".join(f"percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY {c})" for c in columns)
            + f" FROM {table}",
            [fractions] * len(columns),
        )
        return dict(zip(columns, cur.fetchone(), strict=True))
    out: dict[str, list] = {}
    for column in columns:
        values = []
        for p in wanted:
            cur.execute(f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET %s", [p - 1])
            values.append(cur.fetchone()[0])
        out[column] = values
    return out


def _rank_score(column: str, positions: list[int], values: list) -> tuple[str, list]:
    """``1 + (how many of the positions' values the column is above)``; see
    ``rank_positions``."""
    always = sum(1 for p in positions if p <= 0)
    terms = [f"(CASE WHEN {column} > %s THEN 1 ELSE 0 END)" for _value in values]
    return "(" + " + ".join([str(1 + always), *terms]) + ")", list(values)


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
    marketer's cut-offs, the named segment from the R×F map.

    Set-wise in a few passes over the scored members: the figures go to a temporary
    table; rank fifths need only four values of each measure's order (one sort each,
    no window over every row); one join with the current scores keeps only what changed
    (new, changed, no longer scored), and only those rows are written. Moves between
    segments go to the change history and the member event journal. Runs one at a time
    (a transaction-scoped advisory lock on PostgreSQL)."""
    from segments.models import STATS_WINDOWS, MemberPurchaseStats

    started = time.perf_counter()
    now = now or timezone.now()
    cfg = RFMSettings.current()
    at = connection.ops.adapt_datetimefield_value(now)
    postgres = connection.vendor == "postgresql"
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
    rfm, change, event = MemberRFM._meta.db_table, RFMChange._meta.db_table, MemberEvent._meta.db_table
    with connection.cursor() as cur:
        if postgres:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('segments.rfm_recompute'))")
            # Sorts and joins over every scored member: in memory, for this run only.
            cur.execute("SET LOCAL work_mem = '256MB'")
        for table in ("rfm_src", "rfm_new"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        if source_params:  # aggregated from the receipts: once, into a temporary table
            cur.execute(f"CREATE TEMP TABLE rfm_src AS {source}", source_params)
            if postgres:
                cur.execute("ANALYZE rfm_src")
            src = "rfm_src"
        else:  # the purchase figures are one narrow row per member already
            src = f"({source}) rfm_src"
        if cfg.method == RFMSettings.Method.THRESHOLDS:
            if postgres:
                recency = "FLOOR(EXTRACT(EPOCH FROM (CAST(%s AS timestamptz) - last_at)) / 86400)"
            else:
                recency = "CAST(julianday(%s) - julianday(last_at) AS INTEGER)"
            r_sql = _score_sql(f"({recency})", cfg.recency_days, higher_is_better=False)
            f_sql = _score_sql("frequency", cfg.frequency, higher_is_better=True)
            m_sql = _score_sql("monetary", cfg.monetary, higher_is_better=True)
            score_params = [at] * 4  # the recency expression appears once per cut-off
        else:
            cur.execute(f"SELECT COUNT(*) FROM {src}")
            (n,) = cur.fetchone()
            positions = rank_positions(n)
            values = _order_statistics(cur, src, n, ["last_at", "frequency", "monetary"], positions)
            (r_sql, r_params), (f_sql, f_params), (m_sql, m_params) = (
                _rank_score(column, positions, values[column])
                for column in ("last_at", "frequency", "monetary")
            )
            score_params = [*r_params, *f_params, *m_params]  # the most recent buyers score 5
        fence = "OFFSET 0" if postgres else ""
        differs = (
            " OR ".join(f"n.{c} <> o.{c}" for c in ("r", "f", "m", "segment", "frequency", "monetary"))
            + " OR n.last_at <> o.last_purchase_at"
        )
        # Only what changed: new members, changed scores or figures, members no longer scored.
        cur.execute(
            f"CREATE TEMP TABLE rfm_new AS "
            f"SELECT COALESCE(n.member_id, o.member_id) AS member_id, n.last_at, n.frequency, n.monetary, "
            f"n.r, n.f, n.m, n.segment, o.segment AS old_segment, "
            f"CASE WHEN o.member_id IS NULL THEN 'new' WHEN n.member_id IS NULL THEN 'gone' ELSE 'changed' END "
            f"AS state FROM ("
            f"  SELECT member_id, last_at, frequency, monetary, r, f, m, {_rfm_case()} AS segment FROM ("
            f"    SELECT member_id, last_at, frequency, monetary, {r_sql} AS r, {f_sql} AS f, {m_sql} AS m "
            f"    FROM {src} {fence}"  # scores computed once per row, not inlined into every use
            f"  ) scored"
            f") n FULL OUTER JOIN {rfm} o ON o.member_id = n.member_id "
            f"WHERE n.member_id IS NULL OR o.member_id IS NULL OR {differs}",
            score_params,
        )
        if postgres:
            cur.execute("ANALYZE rfm_new")
        moved = "n.segment IS DISTINCT FROM n.old_segment"
        cur.execute(
            f"INSERT INTO {change} (member_id, segment_from, segment_to, changed_at) "
            f"SELECT member_id, COALESCE(old_segment, ''), COALESCE(segment, ''), %s FROM rfm_new n WHERE {moved}",
            [at],
        )
        changed = cur.rowcount
        payload = "'{\"from\": \"' || COALESCE(old_segment, '') || '\", \"to\": \"' || COALESCE(segment, '') || '\"}'"
        if postgres:
            payload = f"CAST({payload} AS jsonb)"
        cur.execute(
            f"INSERT INTO {event} (event_type, member_id, occurred_at, channel, payload, created_at) "
            f"SELECT 'rfm_segment_changed', member_id, %s, 'rfm', {payload}, %s FROM rfm_new n WHERE {moved}",
            [at, at],
        )
        cur.execute(
            f"UPDATE {rfm} SET last_purchase_at = n.last_at, frequency = n.frequency, monetary = n.monetary, "
            f"r = n.r, f = n.f, m = n.m, segment = n.segment, computed_at = %s FROM rfm_new n "
            f"WHERE {rfm}.member_id = n.member_id AND n.state = 'changed'",
            [at],
        )
        cur.execute(
            f"DELETE FROM {rfm} WHERE member_id IN (SELECT member_id FROM rfm_new WHERE state = 'gone')"
        )
        cur.execute(
            f"INSERT INTO {rfm} (member_id, last_purchase_at, frequency, monetary, r, f, m, segment, computed_at) "
            f"SELECT member_id, last_at, frequency, monetary, r, f, m, segment, %s FROM rfm_new WHERE state = 'new'",
            [at],
        )
        cur.execute(f"SELECT segment, COUNT(*) FROM {rfm} GROUP BY segment")
        sizes = dict(cur.fetchall())
        for table in ("rfm_src", "rfm_new"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
    month = timezone.localdate(now).replace(day=1)
    RFMMonthly.objects.filter(month=month).delete()
    RFMMonthly.objects.bulk_create(
        [RFMMonthly(month=month, segment=segment, members=size) for segment, size in sizes.items()]
    )
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
            # Members already in are skipped by the unique index, row by row: an anti-join
            # planned on stale statistics of a just-filled audience compared every new row
            # with every old one. (SQLite needs the WHERE to read the upsert.)
            f"INSERT INTO {table} (audience_id, member_id, added_at) SELECT %s, s.member_pk, %s FROM ({select_sql}) s "
            "WHERE TRUE ON CONFLICT (audience_id, member_id) DO NOTHING",
            [audience.pk, at, *params],
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
