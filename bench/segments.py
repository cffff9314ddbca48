"""Segments at scale on PostgreSQL: count, materialise, RFM.

    python bench/segments.py [--members 1000000] [--receipts-per-member 10] [--json] [--database-url URL]
                             [--figures-from URL]

Generates the members (COPY) and a year of receipts with one line each, events and bonus
balances (``INSERT ... SELECT`` over ``generate_series``, deterministic), then measures:
the live count of a six-condition segment (median of five runs after one warm-up) (profile + purchase aggregate + product group
+ event + bonus balance + RFM), its materialisation into a snapshot, and the RFM
recompute: ``rfm_s`` is the nightly run (age the purchase figures, recompute, rewrite
changed rows), ``rfm_first_s`` the first run after the load (every row new), and
``stats_rebuild_s`` the one-off build of the per-member purchase figures from the
bulk-loaded receipts. Prints the count's query plan summary. Data is kept between runs of the same
size (``--regenerate`` to rebuild).

``--figures-from URL`` measures ten million members at the purchase density of ten
receipts a member without loading a hundred million receipts: the per-member figures,
purchases by product group and RFM rows of a smaller run's database (members numbered from
1, as this benchmark makes them) are copied over this one's members, member ``k`` taking
those of member ``(k - 1) mod n + 1`` of the smaller run (with the RFM moves it
journaled); a repeated run from the same source keeps them. The one-off builds and the
RFM runs are then not measured (their figures print as ``null``). The server's shared
buffers and parallel workers per query are printed with the figures.
"""

import argparse
import statistics
import sys
import time

from _common import report, setup_django

SEGMENT = {
    "op": "and",
    "items": [
        {"metric": "gender", "operator": "in", "value": ["female"]},
        {"metric": "age", "operator": "between", "value": [25, 45]},
        {"metric": "purchase_count", "operator": "gte", "value": 2, "params": {"period": {"last_days": 90}}},
        {
            "metric": "bought_product_group",
            "operator": "in",
            "value": ["coffee-tea"],
            "params": {"period": {"last_days": 30}},
        },
        {"metric": "event_count", "operator": "gte", "value": 1, "params": {"event_type": "app_installed"}},
        {"metric": "bonus_balance", "operator": "gte", "value": 100},
        {"metric": "rfm_segment", "operator": "in", "value": ["champions", "loyal", "potential_loyalists"]},
    ],
}


def generate(members: int, per_member: int) -> None:
    from django.db import connection

    from loyalty import demo
    from loyalty.models import Product

    demo.program_setup()
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE loyalty_member, loyalty_card, loyalty_consent, loyalty_consentchange, loyalty_memberevent, "
            "loyalty_bonusaccount, loyalty_bonusoperation, loyalty_bonuslot, loyalty_ledgerentry, "
            "loyalty_lotremainder, loyalty_receipt, loyalty_receiptline, loyalty_receiptpayment, "
            "loyalty_statuschange, loyalty_member_preferred_categories, segments_memberrfm, segments_rfmchange, "
            "segments_segmentmember, segments_audiencemember CASCADE"
        )
        figures_mark(cur, None)  # new members: no figures copied for them yet
    t0 = time.perf_counter()
    demo.members_load(demo.MemberPlan(count=members, seed=11, start_id=1))
    print(f"members: {time.perf_counter() - t0:.1f} s", flush=True)
    products = list(Product.objects.order_by("pk").values_list("pk", "price"))
    product_ids = "ARRAY[" + ",".join(str(p) for p, _ in products) + "]"
    prices = "ARRAY[" + ",".join(str(price) for _, price in products) + "]::numeric[]"
    with connection.cursor() as cur:
        cur.execute("SELECT array_agg(id ORDER BY id) FROM loyalty_pointofsale")
        pos = cur.fetchone()[0]
        n = members * per_member
        t0 = time.perf_counter()
        # A bulk load, as an import would do it: the generated rows are consistent, so no
        # per-row foreign-key triggers, and the secondary indexes are built once after.
        cur.execute("SET session_replication_role = replica")
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid IN ('loyalty_receipt'::regclass, 'loyalty_receiptline'::regclass) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        )
        secondary = cur.fetchall()
        for name, _definition in secondary:
            cur.execute(f"DROP INDEX {name}")
        # Receipts over the last year, spread over members with a skew (some buy often).
        cur.execute(
            f"""
            INSERT INTO loyalty_receipt (id, point_of_sale_id, external_id, kind, member_id, state, purchased_at,
                confirmed_at, amount, discount, total, bonus_paid, bonus_accrued, created_at)
            SELECT g, (ARRAY{pos})[1 + (g * 31) % {len(pos)}], 'B' || g, 'sale',
                   1 + ((g * 2654435761) % {members} * (g % 3 + 1) / 3) % {members}, 'confirmed',
                   now() - ((g * 7919) % 525600) * interval '1 minute',
                   now() - ((g * 7919) % 525600) * interval '1 minute',
                   p.price * q, 0, p.price * q, 0, 0, now()
            FROM generate_series(1::bigint, {n}) g,
                 LATERAL (SELECT ({prices})[1 + (g * 13) % {len(products)}] AS price) p,
                 LATERAL (SELECT 1 + g % 3 AS q) qty
            """
        )
        cur.execute(
            f"""
            INSERT INTO loyalty_receiptline (receipt_id, position, product_id, sku, name, quantity, price, amount,
                discount)
            SELECT g, 1, ({product_ids})[1 + (g * 13) % {len(products)}], '', '', 1 + g % 3, 0, 0, 0
            FROM generate_series(1::bigint, {n}) g
            """
        )
        cur.execute("SELECT setval(pg_get_serial_sequence('loyalty_receipt', 'id'), %s)", [n])
        for _name, definition in secondary:
            cur.execute(definition)
        cur.execute("SET session_replication_role = DEFAULT")
        print(f"receipts and lines: {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        cur.execute(
            """
            INSERT INTO loyalty_memberevent (event_type, member_id, occurred_at, channel, payload, created_at)
            SELECT 'app_installed', id, now() - (id % 300) * interval '1 day', 'mobile_app', '{}', now()
            FROM loyalty_member WHERE id % 5 = 0
            """
        )
        cur.execute(
            """
            INSERT INTO loyalty_bonusaccount (member_id, currency_id, available, pending, created_at)
            SELECT id, (SELECT id FROM loyalty_currency WHERE is_default), (id * 7919) % 1000, 0, now()
            FROM loyalty_member
            """
        )
        print(f"events and balances: {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        cur.execute("VACUUM ANALYZE")
        print(f"vacuum analyze: {time.perf_counter() - t0:.1f} s", flush=True)


FIGURES = {
    "segments_memberpurchasestats": "member_id, first_purchase_at, last_purchase_at, count_all, total_all, "
    "count_30, total_30, count_90, total_90, count_180, total_180, count_365, total_365",
    "segments_membergrouppurchase": "member_id, group_id, first_purchase_at, last_purchase_at, receipts",
    "segments_memberrfm": "member_id, frequency, monetary, r, f, m, segment, computed_at, last_purchase_at",
}
# The first RFM run journals each member's move into a segment; the copy brings those too,
# so the event journal is the size the measured runs would have left.
RFM_EVENTS = ("loyalty_memberevent", "event_type, member_id, occurred_at, channel, payload, created_at")


# Which run's figures this database holds, as a comment on the figures' table: a repeated
# run from the same source measures again without copying them again.
def figures_mark(cur, source: str | None) -> None:
    # COMMENT takes no parameters: the text as a literal.
    text = "'" + f"bench figures from {source}".replace("'", "''") + "'" if source else "NULL"
    cur.execute(f"COMMENT ON TABLE segments_memberpurchasestats IS {text}")


def figures_copy(source_url: str, members: int) -> None:
    """Fill this database's purchase figures, purchases by group and RFM rows with the
    source's, repeated over the members (COPY out of one, COPY into the other), unless
    they were copied from that source already."""
    import psycopg
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT obj_description('segments_memberpurchasestats'::regclass, 'pg_class')")
        if cur.fetchone()[0] == f"bench figures from {source_url}":
            print("figures: already copied from that source", file=sys.stderr)
            return
        figures_mark(cur, None)
    with psycopg.connect(source_url) as source:
        size = source.execute("SELECT max(id) FROM loyalty_member").fetchone()[0]
        groups = source.execute("SELECT id, path FROM loyalty_productgroup ORDER BY id").fetchall()
        with connection.cursor() as cur:
            cur.execute("SELECT id, path FROM loyalty_productgroup ORDER BY id")
            if cur.fetchall() != groups:
                raise SystemExit("--figures-from: the two databases' product groups differ")
            cur.execute("TRUNCATE " + ", ".join(FIGURES))
            cur.execute("DELETE FROM loyalty_memberevent WHERE event_type = 'rfm_segment_changed'")
            copies = [(table, columns, "TRUE") for table, columns in FIGURES.items()]
            copies.append((*RFM_EVENTS, "event_type = 'rfm_segment_changed'"))
            for offset in range(0, members, size):
                for table, columns, where in copies:
                    shifted = columns.replace("member_id", f"member_id + {offset}", 1)
                    with (
                        source.cursor().copy(
                            f"COPY (SELECT {shifted} FROM {table} WHERE {where} AND member_id + {offset} <= {members}) "
                            "TO STDOUT"
                        ) as out,
                        cur.copy(f"COPY {table} ({columns}) FROM STDIN") as into,
                    ):
                        for data in out:
                            into.write(data)
                print(
                    f"figures copied: members {offset + 1:,}–{min(offset + size, members):,}", file=sys.stderr
                )
    with connection.cursor() as cur:
        for table in [*FIGURES, RFM_EVENTS[0]]:
            cur.execute(f"VACUUM ANALYZE {table}")
        figures_mark(cur, source_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--receipts-per-member", type=int, default=10)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--figures-from",
        metavar="URL",
        help="copy a smaller run's per-member purchase figures and RFM instead of building them",
    )
    args = parser.parse_args()
    setup_django(args.database_url or "postgres://postgres@127.0.0.1:5432/loyalty_bench_segments")

    from django.db import connection

    from loyalty.models import Member, Receipt
    from segments.models import Segment
    from segments.services import rfm_recompute, segment_materialise, segment_queryset
    from segments.stats import stats_age, stats_rebuild

    if args.regenerate or Member.objects.count() != args.members or not Receipt.objects.exists():
        generate(args.members, args.receipts_per_member)
    receipts = Receipt.objects.count()

    stats_rebuild_s = rfm_first_s = rfm_s = rfm_scored = None
    if args.figures_from:
        figures_copy(args.figures_from, args.members)
    else:
        # The receipts were bulk-loaded, so the per-member purchase figures are built once
        # from them (as after an import); afterwards purchases keep them current.
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            figures_mark(cur, None)  # built here, not copied
        stats_rebuild()
        stats_rebuild_s = time.perf_counter() - t0
        # What autovacuum does after a bulk write in production: statistics, and the
        # visibility map that lets segment conditions read an index alone.
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE segments_memberpurchasestats")
            cur.execute("VACUUM ANALYZE segments_membergrouppurchase")
        # First RFM run after the load: every member is new to RFM (all rows written).
        t0 = time.perf_counter()
        rfm_recompute()
        rfm_first_s = time.perf_counter() - t0
        # The nightly run: age the windows, recompute, rewrite what changed.
        t0 = time.perf_counter()
        stats_age()
        rfm_scored = rfm_recompute().scored
        rfm_s = time.perf_counter() - t0
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE segments_memberrfm")

    queryset = segment_queryset(SEGMENT)
    queryset.count()  # warm the cache the way a marketer's second look would
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        count = queryset.count()
        timings.append(time.perf_counter() - t0)
    count_s = statistics.median(timings)
    sql, params = queryset.values("pk").query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute(f"EXPLAIN (ANALYZE, TIMING OFF) SELECT COUNT(*) FROM ({sql}) s", params)
        plan = [row[0] for row in cur.fetchall()]

    segment, _ = Segment.objects.update_or_create(name="bench: six conditions", defaults={"rule": SEGMENT})
    t0 = time.perf_counter()
    snapshot = segment_materialise(segment)
    materialise_s = time.perf_counter() - t0

    # The server's settings the figures depend on, printed with them.
    with connection.cursor() as cur:
        cur.execute(
            "SELECT current_setting('shared_buffers'), current_setting('max_parallel_workers_per_gather')"
        )
        shared_buffers, parallel_workers = cur.fetchone()

    if not args.json:
        print("Query plan of the count (summary):")
        for line in plan:
            if any(k in line for k in ("Join", "Scan", "Aggregate", "Execution", "Planning", "Workers")):
                print("  " + line.strip()[:140])
    report(
        f"Segments on {connection.vendor}: {args.members:,} members, {receipts:,} receipts",
        {
            "members": args.members,
            "receipts": receipts,
            "segment_members": count,
            "count_s": round(count_s, 3),
            "count_max_s": round(max(timings), 3),
            "materialise_s": round(materialise_s, 3),
            "snapshot_members": snapshot.members,
            "rfm_s": _rounded(rfm_s),
            "rfm_scored": rfm_scored,
            "rfm_first_s": _rounded(rfm_first_s),
            "stats_rebuild_s": _rounded(stats_rebuild_s),
            "figures_from": args.figures_from,
            "pg_shared_buffers": shared_buffers,
            "pg_parallel_workers_per_gather": int(parallel_workers),
        },
        args.json,
    )


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


if __name__ == "__main__":
    main()
