"""Segments at scale on PostgreSQL: count, materialise, RFM.

    python bench/segments.py [--members 1000000] [--receipts-per-member 10] [--json] [--database-url URL]

Generates the members (COPY) and a year of receipts with one line each, events and bonus
balances (``INSERT ... SELECT`` over ``generate_series``, deterministic), then measures:
the live count of a six-condition segment (median of five runs after one warm-up) (profile + purchase aggregate + product group
+ event + bonus balance + RFM), its materialisation into a snapshot, and the RFM
recompute: ``rfm_s`` is the nightly run (age the purchase figures, recompute, rewrite
changed rows), ``rfm_first_s`` the first run after the load (every row new), and
``stats_rebuild_s`` the one-off build of the per-member purchase figures from the
bulk-loaded receipts. Prints the count's query plan summary. Data is kept between runs of the same
size (``--regenerate`` to rebuild).
"""

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--receipts-per-member", type=int, default=10)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default=None)
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

    # The receipts were bulk-loaded, so the per-member purchase figures are built once from
    # them (as after an import); afterwards purchases keep them current.
    t0 = time.perf_counter()
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
    rfm = rfm_recompute()
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
            "rfm_s": round(rfm_s, 3),
            "rfm_scored": rfm.scored,
            "rfm_first_s": round(rfm_first_s, 3),
            "stats_rebuild_s": round(stats_rebuild_s, 3),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
