"""Point-of-sale pricing at scale: the offers engine in process, and the POS API over
HTTP with two worker processes, on PostgreSQL.

    python bench/pos.py [--members 1000000] [--offers 200] [--lines 30] [--receipts 3000]
                        [--rate 300] [--confirm-rate 200] [--workers 2] [--json]
                        [--database-url URL] [--redis-url URL]

Generates (once per size; kept between runs) the demo program with ``--members``
members (COPY), a catalog of ``--products`` SKUs in 100 groups, and ``--offers`` active
offers of every kind the catalogs have (discounts on product groups, bonus percentages,
points-of-sale attributes, sales channels, payment methods, receipt amounts, weekdays,
audiences, member status), then measures:

* ``engine_*``: ``evaluate()`` of one ``--lines``-line receipt against all compiled
  offers, in this process (the pure engine; context already built);
* ``calculate_*``: ``POST /api/v1/pos/receipts/calculate`` through gunicorn with the
  production settings (``config/gunicorn.conf.py``: synchronous workers) and
  ``--workers`` processes, requests sent at ``--rate`` per second, up to 64 at a time,
  by an asyncio client (open loop: latency from each request's planned start, so it
  includes queueing), random members and receipts, once every worker has priced the
  whole catalog (its caches as a long-running server's);
* ``confirm_*``: ``POST /api/v1/pos/receipts/confirm`` (the ledger write path), each
  receipt with its own idempotency key and receipt id, open loop at ``--confirm-rate``
  per second as calculate is; ``confirm_most_*``: then as many as 8 clients get
  through (the most the server confirms; their latency is mostly their own queue);
* ``*_server_cpu_ms``, ``*_database_cpu_ms``, ``*_client_cpu_ms``: CPU time per request of
  the gunicorn workers, of PostgreSQL's backends and of the load generator (Linux
  ``/proc``), so a reader can tell what the machine's cores allow;
* ``cache``: the web processes' cache, Redis (``--redis-url``) as in production, where
  the throttle counts each key's requests;
* ``pg_shared_buffers``: PostgreSQL's shared buffers (``docker-compose.yml`` sets 1GB;
  the default 128MB holds too little of a million members' cards to measure a till's
  path as a production server runs it);
* ``pg_max_wal_size``: the WAL PostgreSQL writes between checkpoints (``docker-compose.yml``
  sets 8GB; the default 1GB brings a checkpoint every minute or so while receipts are
  confirmed, each followed by whole pages written to the WAL again);
* ``machine_loop_us``: how long this machine takes for an empty 1,000-step Python loop,
  to compare figures measured on different machines.
"""

import argparse
import random
import statistics
import sys
import time
from decimal import Decimal

from _common import percentile, report, setup_django

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/loyalty_bench_pos"


def catalog_generate(products: int, rng: random.Random) -> None:
    """A retailer's catalog: 10 departments of 10 groups, ``products`` SKUs (once)."""
    from loyalty.models import Product, ProductGroup

    if Product.objects.filter(sku__startswith="B").count() >= products:
        return
    departments = []
    for d in range(10):
        dep, _ = ProductGroup.objects.get_or_create(code=f"dep{d}", defaults={"name": f"Department {d}"})
        departments.append(dep)
    groups = []
    for d, dep in enumerate(departments):
        for g in range(10):
            group, _ = ProductGroup.objects.get_or_create(
                code=f"grp{d}{g}", defaults={"name": f"Group {d}.{g}", "parent": dep}
            )
            groups.append(group)
    Product.objects.bulk_create(
        [
            Product(
                sku=f"B{i:06d}",
                name=f"Product {i}",
                group=groups[i % len(groups)],
                price=Decimal(rng.randint(30, 3000)),
            )
            for i in range(products)
        ],
        batch_size=2000,
        ignore_conflicts=True,
    )


def offers_generate(count: int, rng: random.Random) -> int:
    from loyalty.models import PaymentMethod, PointOfSale, ProductGroup, Status
    from offers.models import Offer
    from offers.services import offer_save, offer_set_status

    if Offer.objects.filter(status="active").count() >= count:
        return Offer.objects.filter(status="active").count()
    Offer.objects.all().delete()
    groups = list(ProductGroup.objects.filter(code__startswith="grp").values_list("pk", flat=True))
    pos_ids = list(PointOfSale.objects.values_list("pk", flat=True))
    methods = list(PaymentMethod.objects.values_list("code", flat=True))
    statuses = list(Status.objects.values_list("code", flat=True))
    formats = ["Hypermarket", "Supermarket", "Convenience"]
    for i in range(count):
        kind = i % 8
        filters, actions = [], []
        if kind == 0:
            filters = [
                {"key": "products", "params": {"groups": rng.sample(groups, 2), "with_descendants": True}}
            ]
            actions = [
                {"key": "discount", "params": {"kind": "percent", "value": str(rng.choice([3, 5, 7, 10]))}}
            ]
            event = "discount_calculated"
        elif kind == 1:
            filters = [
                {
                    "key": "points_of_sale",
                    "params": {"attribute": "CustomTradeFormat", "values": rng.choice(formats)},
                }
            ]
            actions = [{"key": "bonus", "params": {"kind": "percent", "value": str(rng.choice([1, 2, 3]))}}]
            event = "bonus_calculated"
        elif kind == 2:
            filters = [
                {
                    "key": "receipt",
                    "params": {
                        "measure": "amount",
                        "operator": "gte",
                        "value": str(rng.choice([1000, 3000, 5000])),
                    },
                }
            ]
            actions = [{"key": "discount", "params": {"kind": "fixed", "value": "100", "target": "receipt"}}]
            event = "discount_calculated"
        elif kind == 3:
            filters = [{"key": "payment_method", "params": {"methods": rng.sample(methods, 1)}}]
            actions = [{"key": "bonus", "params": {"kind": "fixed", "value": "50"}}]
            event = "bonus_calculated"
        elif kind == 4:
            filters = [
                {"key": "points_of_sale", "params": {"points_of_sale": rng.sample(pos_ids, 2)}},
                {"key": "products", "params": {"groups": rng.sample(groups, 1), "with_descendants": True}},
            ]
            actions = [{"key": "bonus", "params": {"kind": "fixed", "value": "5", "per": "line"}}]
            event = "bonus_calculated"
        elif kind == 5:
            filters = [
                {
                    "key": "sales_channel",
                    "params": {"channels": [rng.choice(["offline", "online_store", "mobile_app"])]},
                }
            ]
            actions = [
                {"key": "cheque_message", "params": {"text": "Скидка {{ discount }} ₽, бонусов {{ bonus }}."}}
            ]
            event = "discount_calculated"
        elif kind == 6 and statuses:
            filters = (
                [{"key": "member_status", "params": {"statuses": rng.sample(statuses, 1)}}]
                if _has("member_status")
                else []
            )
            actions = [{"key": "bonus", "params": {"kind": "percent", "value": "2"}}]
            event = "bonus_calculated"
        else:
            filters = [
                {"key": "products", "params": {"groups": rng.sample(groups, 3), "with_descendants": True}}
            ]
            if _has("weekday_time"):
                filters.append(
                    {"key": "weekday_time", "params": {"days": [str(d) for d in rng.sample(range(7), 4)]}}
                )
            actions = [{"key": "discount", "params": {"kind": "percent", "value": "2"}}]
            event = "discount_calculated"
        offer = offer_save(
            offer=Offer(),
            rules=[{"filters": filters, "actions": actions}],
            name=f"Bench offer {i}",
            event_type=event,
            priority=rng.randint(1, 500),
        )
        offer_set_status(offer=offer, status="active")
    return count


def _has(key: str) -> bool:
    from offers.catalog import offer_filters

    return key in offer_filters


def receipts_sample(n: int, lines: int, rng: random.Random):
    from loyalty.models import Product
    from offers.context import LineIn

    products = list(Product.objects.filter(sku__startswith="B").values_list("sku", "price"))
    return [
        [
            LineIn(sku=sku, quantity=Decimal(rng.randint(1, 3)), price=price or Decimal("100"))
            for sku, price in rng.sample(products, min(lines, len(products)))
        ]
        for _ in range(n)
    ]


def engine_measure(receipts, rng) -> dict:
    from loyalty.models import Member, PointOfSale
    from offers.catalog import PURCHASE_CALCULATION
    from offers.context import purchase_context
    from offers.engine import evaluate
    from offers.selectors import active_offers, offers_at
    from offers.services import limits

    offers, needs = active_offers(PURCHASE_CALCULATION)
    points = list(PointOfSale.objects.all())
    members = list(Member.objects.order_by("?").select_related("status")[:200])
    runs = []
    for lines in receipts:
        pos = rng.choice(points)
        ctx = purchase_context(
            event="discount_calculated",
            point_of_sale=pos,
            lines=lines,
            payments=[rng.choice(["card", "cash", "online"])],
            member=rng.choice(members),
            needs=needs,
        )
        runs.append((ctx, offers_at(PURCHASE_CALCULATION, pos)[0]))
    caps = limits()
    from config.runtime import startup_objects_freeze

    startup_objects_freeze()  # as a web process does when it starts (config/wsgi.py)
    timings = []
    for ctx, at_pos in runs:
        for line in ctx.lines:
            line.discount = Decimal(0)
        start = time.perf_counter()
        evaluate(ctx, at_pos, caps)
        timings.append((time.perf_counter() - start) * 1000)
    return {
        "offers": len(offers),
        "engine_p50_ms": round(percentile(timings, 50), 3),
        "engine_p99_ms": round(percentile(timings, 99), 3),
        "engine_mean_ms": round(statistics.fmean(timings), 3),
    }


def machine_loop_us() -> float:
    """How fast this machine runs plain Python: a 1,000-step empty loop, best of five
    (about 10 µs on a current desktop core). Figures from machines whose loops differ
    compare only after scaling by it."""
    import timeit

    return round(min(timeit.repeat("for _ in range(1000): pass", number=2000, repeat=5)) / 2000 * 1e6, 1)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=_positive(int), default=1_000_000)
    parser.add_argument("--offers", type=_positive(int), default=200)
    parser.add_argument("--lines", type=_positive(int), default=30)
    parser.add_argument("--products", type=_positive(int), default=5000, help="catalog size")
    parser.add_argument("--regenerate-offers", action="store_true")
    parser.add_argument("--receipts", type=_positive(int), default=3000, help="receipts per phase")
    parser.add_argument("--rate", type=_positive(float), default=300.0, help="calculate requests per second")
    parser.add_argument(
        "--confirm-rate", type=_positive(float), default=200.0, help="confirm requests per second"
    )
    parser.add_argument("--workers", type=_positive(int), default=2)
    parser.add_argument("--engine-only", action="store_true", help="skip the HTTP phases")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/15",
        help="the web processes' cache, as in production (empty: each process's memory)",
    )
    args = parser.parse_args()
    setup_django(args.database_url)

    from loyalty import demo
    from loyalty.models import Member

    rng = random.Random(7)
    demo.program_setup()
    have = Member.objects.count()
    if have < args.members:
        start = (Member.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        t0 = time.perf_counter()
        demo.members_load(demo.MemberPlan(count=args.members - have, seed=5, start_id=start))
        print(f"members loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    catalog_generate(args.products, rng)
    if args.regenerate_offers:
        from offers.models import Offer

        Offer.objects.filter(name__startswith="Bench offer").delete()
    offers_generate(args.offers, rng)
    # The statistics and visibility maps autovacuum keeps on a production server (this
    # run's receipts since the last one included).
    from django.db import connection

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    print(f"vacuum analyze: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    # The server's memory the figures depend on, printed with them: docker-compose.yml
    # gives PostgreSQL 1 GB of shared buffers; with its default of 128 MB a till's random
    # members are read from the operating system's cache on every request.
    with connection.cursor() as cur:
        cur.execute("SELECT current_setting('shared_buffers'), current_setting('max_wal_size')")
        shared_buffers, max_wal_size = cur.fetchone()
    receipts = receipts_sample(args.receipts, args.lines, rng)
    figures = {
        "members": Member.objects.count(),
        "machine_loop_us": machine_loop_us(),
        "pg_shared_buffers": shared_buffers,
        "pg_max_wal_size": max_wal_size,
        "cache": "redis" if args.redis_url and not args.engine_only else "memory",
    }
    figures.update(engine_measure(receipts, rng))
    if not args.engine_only:
        from pos_http import http_measure

        figures.update(http_measure(args, receipts, rng))
    report(
        f"POS pricing: {figures['offers']} active offers, {args.lines}-line receipts (PostgreSQL)",
        figures,
        args.json,
    )


if __name__ == "__main__":
    main()
