"""Loading members with their contact data, set-wise, on PostgreSQL.

    python bench/seed.py [--members 1000000] [--json] [--database-url URL]

Generates ``--members`` members (Russian names, valid E.164 phones with operator,
emails, cities in several time zones, a card and consents each) and loads them with
PostgreSQL COPY, as ``seed_demo --members N`` does. Starts from an empty members table in
the benchmark database. Prints members, seconds, members/s and the process's peak resident memory.
"""

import argparse
import resource
import time

from _common import report, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    setup_django(args.database_url)

    from django.db import connection

    from loyalty import demo
    from loyalty.models import Card, Consent, Member

    demo.program_setup()
    with connection.cursor() as cur:
        # A clean slate for the members and what hangs off them (benchmark database only).
        cur.execute(
            "TRUNCATE loyalty_member, loyalty_card, loyalty_consent, loyalty_consentchange, "
            "loyalty_memberevent, loyalty_bonusaccount, loyalty_bonusoperation, loyalty_bonuslot, "
            "loyalty_ledgerentry, loyalty_lotremainder, loyalty_receipt, loyalty_receiptline, "
            "loyalty_receiptpayment, loyalty_statuschange, loyalty_member_preferred_categories CASCADE"
        )
    t0 = time.perf_counter()
    loaded = demo.members_load(demo.MemberPlan(count=args.members, seed=args.seed, start_id=1))
    seconds = time.perf_counter() - t0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert loaded == Member.objects.count() == args.members
    report(
        f"Members loaded on {connection.vendor} with COPY (cards and consents included)",
        {
            "members": loaded,
            "seconds": round(seconds, 2),
            "members_per_s": round(loaded / seconds, 1),
            "cards": Card.objects.count(),
            "consents": Consent.objects.count(),
            "peak_rss_mb": round(peak_rss_mb, 1),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
