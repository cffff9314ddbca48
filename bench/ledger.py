"""Ledger throughput: accruals and spends, one process, on PostgreSQL.

    python bench/ledger.py [--ops 100000] [--accounts 2000] [--threads 8] [--json] [--database-url URL]

Half the operations are accruals, half spends, spread over ``--accounts`` member
accounts; each is one service call committed on its own, as the POS path does it. One
process runs ``--threads`` request threads, each with its own database connection (as a
threaded WSGI worker serves concurrent tills); ``--threads 1`` shows one connection's
figures. Prints throughput (ops/s) and latency (p50/p99, ms) of each.
"""

import argparse
import random
import threading
import time
from decimal import Decimal

from _common import percentile, report, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000, help="total operations (half accruals)")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8, help="request threads in this process")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    setup_django(args.database_url)

    from django.db import connection

    from loyalty import demo
    from loyalty.models import BonusAccount, Member, SourceType
    from loyalty.services import ledger

    demo.program_setup()
    base = (Member.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    demo.members_load(demo.MemberPlan(count=args.accounts, seed=7, start_id=base))
    currency = ledger.currency_default()
    members = list(Member.objects.filter(pk__gte=base).order_by("pk"))
    accounts = [ledger.account_get_or_create(member=m, currency=currency) for m in members]
    source = ledger.Source(type=SourceType.OFFER, id="bench", label="bench")
    half = args.ops // 2

    def phase(operation) -> tuple[float, list[float]]:
        """Run ``half`` operations over the threads; each thread owns a slice of the
        accounts (different customers at different tills)."""
        latencies: list[list[float]] = [[] for _ in range(args.threads)]
        barrier = threading.Barrier(args.threads + 1)

        def worker(t: int) -> None:
            rng = random.Random(t)
            mine = accounts[t :: args.threads]
            barrier.wait()
            for i in range(t, half, args.threads):
                s = time.perf_counter()
                operation(mine[i % len(mine)], rng)
                latencies[t].append((time.perf_counter() - s) * 1000)
            connection.close()

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(args.threads)]
        for th in threads:
            th.start()
        barrier.wait()
        t0 = time.perf_counter()
        for th in threads:
            th.join()
        return time.perf_counter() - t0, [x for lat in latencies for x in lat]

    accrual_s, accrual_ms = phase(
        lambda account, rng: ledger.bonus_accrue(
            account=account, amount=Decimal(rng.randint(10, 500)), source=source
        )
    )
    spend_s, spend_ms = phase(
        lambda account, rng: ledger.bonus_spend(
            account=account, amount=Decimal(rng.randint(1, 10)), source=source
        )
    )

    # The books must balance after the run: every account's total is its entries' sum.
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM loyalty_bonusaccount a WHERE a.available <> "
            "(SELECT COALESCE(SUM(available_delta), 0) FROM loyalty_ledgerentry e WHERE e.account_id = a.id)"
        )
        mismatched = cur.fetchone()[0]
    assert mismatched == 0, f"{mismatched} accounts do not match their entries"
    BonusAccount.objects.filter(member__in=members)  # keep the data for inspection

    report(
        f"Ledger on {connection.vendor}: {args.ops:,} operations over {len(accounts):,} accounts, "
        f"{args.threads} thread(s) in one process",
        {
            "accrual_ops_per_s": half / accrual_s,
            "accrual_p50_ms": percentile(accrual_ms, 50),
            "accrual_p99_ms": percentile(accrual_ms, 99),
            "spend_ops_per_s": half / spend_s,
            "spend_p50_ms": percentile(spend_ms, 50),
            "spend_p99_ms": percentile(spend_ms, 99),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
