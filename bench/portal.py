"""The members' personal account home page at scale on PostgreSQL.

    python bench/portal.py [--members 1000000] [--requests 2000] [--json] [--database-url URL]
                           [--regenerate] [--explain]

Generates (once per size, in its own database; ``--regenerate`` to rebuild) ``--members``
members with a card each (COPY, as ``seed_demo`` does), then set-wise
(``INSERT ... SELECT`` over ``generate_series``, deterministic):

* receipts over the last 400 days for 60 % of the members, written in time order so one
  member's receipts are spread over the table as real ones are: most buyers have 1 to 16,
  one member in a hundred 130 to 193; a few are refunded or partly refunded;
* open bonus lots in the main currency (a welcome lot plus one per three receipts, each
  expiring within 1 to 180 days: about one in six within the "expiring soon" window), a
  pending lot for one member in five, a promo-currency lot for one in ten; each lot with
  its accrual operation, remainder and ledger entry, and the accounts' totals summed
  from them (one accrual entry per lot: the activation step is left out);
* two target audiences (30 % and 5 % of the members).

Every run then sets the statuses' ``qualifying_total`` and the published targeted content
(for everyone, for each audience, and a few that must stay hidden), and measures
``GET /account/`` for ``--requests`` random members, each signed in with a member
session of its own (created with ``SessionStore`` just before its batch of requests, so
the idle timer is fresh and the session row is only read), through ``django.test.Client``
in this process after a warm-up. Every response must be 200 and show the member's
balance. Prints the page's p50/p99/mean/max latency, the queries one page costs and the
process's peak resident memory; ``--explain`` also prints ``EXPLAIN ANALYZE`` of each
query of the page of a heavy buyer (the most receipts among the first 5,000 members).
"""

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time

from _common import percentile, report, setup_django

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/loyalty_bench_portal"
# Purchases over the last year that earn each status (bronze is where everyone starts).
QUALIFYING = {"bronze": None, "silver": 25_000, "gold": 75_000}
AUDIENCES = {"bench: portal 30 %": (10, 3), "bench: portal 5 %": (20, 1)}  # id % m < r
BATCH = 200  # sessions created at once, just before their requests


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def generate(members: int) -> None:
    from django.db import connection

    from loyalty import demo

    demo.program_setup()
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE loyalty_member, loyalty_card, loyalty_consent, loyalty_consentchange, "
            "loyalty_memberevent, loyalty_bonusaccount, loyalty_bonusoperation, loyalty_bonuslot, "
            "loyalty_ledgerentry, loyalty_lotremainder, loyalty_receipt, loyalty_receiptline, "
            "loyalty_receiptpayment, loyalty_statuschange, loyalty_member_preferred_categories, "
            "segments_audiencemember, portal_targetedcontent, django_session RESTART IDENTITY CASCADE"
        )
        # Generation only: big sorts in memory, no waiting for the WAL flush on commit.
        cur.execute("SET work_mem = '256MB'")
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("SET synchronous_commit = off")
    t0 = time.perf_counter()
    demo.members_load(demo.MemberPlan(count=members, seed=23, start_id=1))
    log(f"members: {time.perf_counter() - t0:.1f} s")
    with connection.cursor() as cur:
        # Receipts per member from a hash of its id: 40 % none, 59 % 1-16, 1 % 130-193.
        cur.execute(
            """
            CREATE TEMP TABLE bench_plan AS
            SELECT id AS member_id,
                   CASE WHEN h < 400 THEN 0 WHEN h < 990 THEN 1 + h % 16 ELSE 100 + (h * 7) % 150 END
                       AS receipts
            FROM (SELECT id, (id * 2654435761) % 1000 AS h FROM loyalty_member) m
            """
        )
        t0 = time.perf_counter()
        receipts(cur)
        log(f"receipts: {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        lots(cur)
        log(f"bonus lots: {time.perf_counter() - t0:.1f} s")
        cur.execute("DROP TABLE bench_plan")
    t0 = time.perf_counter()
    audiences_fill()
    log(f"audiences: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("RESET work_mem")
        cur.execute("RESET maintenance_work_mem")
        cur.execute("RESET synchronous_commit")
        cur.execute("VACUUM ANALYZE")
        # Write the load out now: the first measurement must not compete with the checkpointer.
        cur.execute("CHECKPOINT")
    log(f"vacuum analyze, checkpoint: {time.perf_counter() - t0:.1f} s")


def receipts(cur) -> None:
    """Over 400 days (about 9 % older than the qualifying year); in time order."""
    cur.execute("SELECT array_agg(id ORDER BY id) FROM loyalty_pointofsale")
    pos = cur.fetchone()[0]
    cur.execute(
        f"""
        INSERT INTO loyalty_receipt (point_of_sale_id, external_id, kind, member_id, state, purchased_at,
            confirmed_at, amount, discount, total, bonus_paid, bonus_accrued, created_at)
        SELECT (ARRAY{pos})[1 + (p.member_id + k) % {len(pos)}], 'P' || p.member_id || '-' || k, 'sale',
               p.member_id,
               CASE WHEN (p.member_id + k) % 40 = 0 THEN 'refunded'
                    WHEN (p.member_id + k) % 25 = 0 THEN 'partly_refunded' ELSE 'confirmed' END,
               t.at, t.at, t.total, 0, t.total, 0, 0, t.at
        FROM bench_plan p, generate_series(1, p.receipts) k,
             LATERAL (SELECT now() - ((p.member_id * 7919 + k * 104729) % 576000) * interval '1 minute' AS at,
                             (200 + (p.member_id * 31 + k * 977) % 5000)::numeric AS total) t
        WHERE p.receipts > 0
        ORDER BY t.at
        """
    )


def lots(cur) -> None:
    """Open lots with their operation, remainder and entry; accounts summed from them."""
    cur.execute("SELECT id FROM loyalty_currency WHERE is_default")
    main = cur.fetchone()[0]
    cur.execute("SELECT id FROM loyalty_currency WHERE code = 'promo'")
    promo = cur.fetchone()[0]
    cur.execute(
        """
        CREATE TEMP TABLE bench_lots AS
        SELECT p.member_id, %(main)s AS currency_id,
               (10 + (p.member_id * 13 + k * 7) %% 300)::numeric AS amount,
               now() - ((p.member_id + k * 3) %% 150 + 14) * interval '1 day' AS activates_at,
               now() + ((p.member_id * 7 + k * 11) %% 180 + 1) * interval '1 day' AS expires_at
        FROM bench_plan p, generate_series(1, 1 + p.receipts / 3) k
        UNION ALL
        SELECT member_id, %(main)s, (50 + member_id %% 200)::numeric,
               now() + (1 + member_id %% 14) * interval '1 day',
               now() + (194 + member_id %% 30) * interval '1 day'
        FROM bench_plan WHERE member_id %% 5 = 0
        UNION ALL
        SELECT member_id, %(promo)s, 100::numeric, now() - interval '5 days',
               now() + (1 + member_id %% 40) * interval '1 day'
        FROM bench_plan WHERE member_id %% 10 = 3
        """,
        {"main": main, "promo": promo},
    )
    cur.execute(
        """
        INSERT INTO loyalty_bonusaccount (member_id, currency_id, available, pending, created_at)
        SELECT member_id, currency_id, sum(amount) FILTER (WHERE activates_at <= now()),
               coalesce(sum(amount) FILTER (WHERE activates_at > now()), 0), min(activates_at)
        FROM bench_lots GROUP BY member_id, currency_id ORDER BY member_id, currency_id
        """
    )
    cur.execute(
        """
        CREATE TEMP TABLE bench_open AS
        SELECT row_number() OVER (ORDER BY l.activates_at) AS n, a.id AS account_id, l.amount,
               l.activates_at, l.expires_at, l.activates_at <= now() AS active
        FROM bench_lots l JOIN loyalty_bonusaccount a USING (member_id, currency_id)
        """
    )
    cur.execute("DROP TABLE bench_lots")
    cur.execute(
        """
        INSERT INTO loyalty_bonusoperation (id, kind, account_id, idempotency_key, amount, source_type,
            source_id, source_label, reason, created_at)
        SELECT n, 'accrual', account_id, 'bench:' || n, amount, 'import', '', 'bench', '',
               activates_at - interval '14 days'
        FROM bench_open
        """
    )
    cur.execute(
        """
        INSERT INTO loyalty_bonuslot (id, account_id, operation_id, amount, activates_at, expires_at,
            created_at)
        SELECT n, account_id, n, amount, activates_at, expires_at, activates_at - interval '14 days'
        FROM bench_open
        """
    )
    cur.execute(
        """
        INSERT INTO loyalty_lotremainder (lot_id, account_id, available, pending, activates_at, expires_at)
        SELECT n, account_id, CASE WHEN active THEN amount ELSE 0 END,
               CASE WHEN active THEN 0 ELSE amount END, activates_at, expires_at
        FROM bench_open
        """
    )
    cur.execute(
        """
        INSERT INTO loyalty_ledgerentry (operation_id, account_id, lot_id, kind, available_delta,
            pending_delta, created_at)
        SELECT n, account_id, n, 'accrual', CASE WHEN active THEN amount ELSE 0 END,
               CASE WHEN active THEN 0 ELSE amount END, activates_at - interval '14 days'
        FROM bench_open
        """
    )
    cur.execute("DROP TABLE bench_open")
    for table in ("loyalty_bonusoperation", "loyalty_bonuslot"):
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 1))"
        )


def audiences_fill() -> None:
    from django.db.models.functions import Mod

    from loyalty.models import Member
    from segments.models import TargetAudience
    from segments.services import audience_add

    for name, (modulus, below) in AUDIENCES.items():
        audience, _ = TargetAudience.objects.get_or_create(name=name)
        audience_add(audience, Member.objects.annotate(r=Mod("id", modulus)).filter(r__lt=below))


def setup_program() -> None:
    """Statuses with their qualifying totals and the published content (every run)."""
    import datetime as dt

    from django.utils import timezone

    from loyalty.models import Status
    from portal.models import TargetedContent
    from segments.models import TargetAudience

    for code, total in QUALIFYING.items():
        Status.objects.filter(code=code).update(qualifying_total=total)
    now = timezone.now()
    day = dt.timedelta(days=1)
    TargetedContent.objects.all().delete()
    rows = [
        ("Double points on coffee", None, 10, {}),
        ("Weekend at the hypermarket", None, 20, {"shown_from": now - 3 * day, "shown_until": now + 4 * day}),
        ("Invite a friend", None, 90, {}),
        ("Summer sale (over)", None, 5, {"shown_until": now - day}),
        ("Autumn sale (not yet)", None, 5, {"shown_from": now + 5 * day}),
        ("Draft", None, 1, {"published": False}),
        ("App only", None, 1, {"in_account": False}),
    ]
    for n, name in enumerate(AUDIENCES):
        audience = TargetAudience.objects.get(name=name)
        rows += [
            (f"Personal offer {n + 1}", audience, 2 + n, {}),
            (f"Personal products {n + 1}", audience, 50 + n, {"shown_until": now + 10 * day}),
        ]
    TargetedContent.objects.bulk_create(
        TargetedContent(
            title=title,
            text=f"{title}: details in the shop.",
            link="https://shop.example/offers",
            audience=audience,
            order=order,
            **{"published": True, **extra},
        )
        for title, audience, order, extra in rows
    )


def balances_expected(member_ids: list[int]) -> dict[int, str]:
    """How the page shows each member's main balance (in the member's language)."""
    from django.utils import translation

    from loyalty.models import BonusAccount, Member
    from loyalty.services.ledger import currency_default
    from loyalty.templatetags.loyalty_tags import points

    code = currency_default().code
    languages = dict(Member.objects.filter(pk__in=member_ids).values_list("pk", "language"))
    out = {}
    for member_id, available in BonusAccount.objects.filter(
        member_id__in=member_ids, currency__code=code
    ).values_list("member_id", "available"):
        with translation.override(languages[member_id] or "en"):
            out[member_id] = f'data-testid="balance-{code}">{points(available)}</span>'
    return out


def sessions_create(member_ids: list[int]) -> list[str]:
    """A signed-in member session per member, as ``member_login`` leaves it."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore

    from portal.session import SESSION_KEY, TOUCHED

    keys = []
    for member_id in member_ids:
        store = SessionStore()
        store[SESSION_KEY] = member_id
        store[TOUCHED] = int(time.time())
        store.set_expiry(settings.PORTAL["SESSION_MINUTES"] * 60)
        store.create()
        keys.append(store.session_key)
    return keys


def measure(member_ids: list[int], expected: dict[int, str]) -> list[float]:
    """Milliseconds per home page, each member signed in with its own session."""
    from django.conf import settings
    from django.test import Client

    from portal.session import SESSION_KEY

    client = Client()
    cookie = settings.SESSION_COOKIE_NAME
    timings = []
    for start in range(0, len(member_ids), BATCH):
        batch = member_ids[start : start + BATCH]
        for member_id, key in zip(batch, sessions_create(batch), strict=True):
            client.cookies[cookie] = key
            t0 = time.perf_counter()
            response = client.get("/account/", secure=True)
            timings.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (member_id, response.status_code, response.get("Location"))
            assert client.session.get(SESSION_KEY) == member_id
            body = response.content.decode()
            assert expected[member_id] in body, (member_id, expected[member_id])
    return timings


def page_queries(member_id: int) -> list[tuple[str, tuple]]:
    """The statements one home page runs, with their parameters."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    captured = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = sessions_create([member_id])[0]
    with connection.execute_wrapper(capture):
        assert client.get("/account/", secure=True).status_code == 200
    return captured


def explain(queries: list[tuple[str, tuple]]) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        for sql, params in queries:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            print("\n" + sql[:400])
            for (line,) in cur.fetchall():
                print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warm-up", type=int, default=200, help="untimed requests first")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE a heavy member's page")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    args = parser.parse_args()
    # Production settings serve static files from a manifest: collected once per run, aside.
    static_root = tempfile.TemporaryDirectory(prefix="bench-portal-static-")
    os.environ["STATIC_ROOT"] = static_root.name
    setup_django(args.database_url)

    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.db import connection

    from loyalty.models import Member, Receipt
    from segments.models import AudienceMember

    generate_s = None
    if (
        args.regenerate
        or Member.objects.count() != args.members
        or not Receipt.objects.exists()
        or not AudienceMember.objects.exists()
    ):
        t0 = time.perf_counter()
        generate(args.members)
        generate_s = time.perf_counter() - t0
        log(f"generated in {generate_s:.1f} s")
    setup_program()
    call_command("collectstatic", interactive=False, verbosity=0)
    Session.objects.all().delete()

    rng = random.Random(args.seed)
    sample = rng.sample(range(1, args.members + 1), min(args.members, args.requests + args.warm_up))
    expected = balances_expected(sample)
    measure(sample[: args.warm_up], expected)
    timings = measure(sample[args.warm_up :], expected)

    with connection.cursor() as cur:
        # The heaviest buyer among the first members: the status progress sums the most receipts.
        cur.execute(
            "SELECT member_id, count(*) FROM loyalty_receipt WHERE member_id <= 5000 "
            "GROUP BY member_id ORDER BY 2 DESC LIMIT 1"
        )
        heavy, heavy_receipts = cur.fetchone()
    queries = page_queries(heavy)
    if args.explain and not args.json:
        print(f"Queries of the home page of member {heavy} ({heavy_receipts} receipts):")
        explain(queries)
    Session.objects.all().delete()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    figures = {
        "members": args.members,
        "requests": len(timings),
        "home_p50_ms": round(percentile(timings, 50), 2),
        "home_p99_ms": round(percentile(timings, 99), 2),
        "home_mean_ms": round(statistics.fmean(timings), 2),
        "home_max_ms": round(max(timings), 2),
        "queries_per_page": len(queries),
        "receipts": Receipt.objects.count(),
        "peak_rss_mb": round(peak, 1),
    }
    if generate_s is not None:
        figures["generate_s"] = round(generate_s, 1)
    report(f"Personal account home page, {args.members:,} members (PostgreSQL)", figures, args.json)
    static_root.cleanup()


if __name__ == "__main__":
    main()
