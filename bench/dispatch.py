"""Dispatch throughput: messages through the pipeline to a loopback SMTP sink and to a
loopback HTTP SMS provider, with one and with two worker processes, on PostgreSQL.

    python bench/dispatch.py [--messages 100000] [--workers 1,2] [--json] [--database-url URL]

For each channel it writes ``--messages`` queued marketing messages for as many members
(set-wise, ``INSERT … SELECT``, content pre-rendered, as a mailing prepares them), then
starts the worker processes, each running the real dispatch loop (claim a batch with
``FOR UPDATE SKIP LOCKED``, contact budget, rate limiter, the provider adapter, results
and history written in bulk) until the queue is empty. The SMTP adapter keeps one
session per worker; the SMS adapter (api.devino.online protocol) keeps its HTTP
connection alive and sends 500 messages per request. The peers run in their own
processes. Prints messages per second for each channel and worker count, the batch
latency p50/p99 and the workers' peak memory; ``--json`` prints
``{"messages", "smtp_msgs_per_s", "sms_http_msgs_per_s", ...}`` (the two-worker figures).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from _common import percentile, report, setup_django

HERE = Path(__file__).resolve().parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/loyalty_bench_dispatch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(kind: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_sinks.py"), kind, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def worker_main(gateway_id: int) -> None:
    """One worker process: the dispatch loop until the queue stays empty."""
    import resource

    from communications.services.delivery import dispatch_batch
    from gateways.models import Gateway

    gateway = Gateway.objects.get(pk=gateway_id)
    latencies, sent, idle = [], 0, 0
    while idle < 3:
        start = time.perf_counter()
        result = dispatch_batch(gateway=gateway, limit=500)
        if result.claimed == 0:
            idle += 1
            time.sleep(0.05)
            continue
        idle = 0
        latencies.append((time.perf_counter() - start) * 1000)
        sent += result.sent
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"sent": sent, "batches": latencies, "peak_mb": peak_mb}))


def prepare(channel: str, gateway, count: int) -> None:
    """Queue ``count`` messages for the first ``count`` members, set-wise."""
    from django.db import connection

    from communications.models import Message

    content = (
        {
            "subject": "Неделя скидок",
            "text": "Здравствуйте! Скидки до 30 % всю неделю. https://shop.example/sale",
            "html": "<html><body><h1>Неделя скидок</h1><p>Скидки до 30 %.</p>"
            '<p><a href="https://shop.example/sale">В магазин</a></p></body></html>',
        }
        if channel == "email"
        else {"text": "Скидки до 30% всю неделю! shop.example/sale"}
    )
    # Members without a contact get a made-up one: the run measures sending, not the list.
    address_sql = (
        "COALESCE(NULLIF(m.email, ''), 'member' || m.id || '@example.com')"
        if channel == "email"
        else "COALESCE(NULLIF(m.phone, ''), '+7000' || lpad(m.id::text, 7, '0'))"
    )
    table = Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} CASCADE")
        cursor.execute(
            f"""
            INSERT INTO {table} (ref, member_id, channel, gateway_id, address, platform, content, purpose,
                category, origin, origin_id, occurrence, status, status_at, reason, attempts, next_attempt_at,
                possible_duplicate, provider_message_id, segments, cost, cascade_step, cascaded,
                fallback_content, created_at)
            SELECT gen_random_uuid(), m.id, %s, %s, {address_sql}, '', %s::jsonb, 'marketing', '', 'mailing', 1, '',
                'queued', now(), '', 0, now(), false, '', 0, 0, 0, false, '{{}}'::jsonb, now()
            FROM loyalty_member m ORDER BY m.id LIMIT %s
            """,
            [channel, gateway.pk, json.dumps(content), count],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages per run")
    parser.add_argument("--workers", default="1,2", help="worker process counts to run, comma-separated")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = args.database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DB

    if args.worker is not None:
        os.environ["BENCH_SKIP_MIGRATE"] = "1"
        setup_django(url)
        worker_main(args.worker)
        return

    setup_django(url)
    from django.db import connection

    from communications.models import ChannelPolicy, Message, Status
    from gateways.models import Gateway
    from gateways.services import gateway_save
    from loyalty import demo
    from loyalty.models import Member

    demo.program_setup()
    have = Member.objects.count()
    if have < args.messages:
        base = (Member.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        demo.members_load(demo.MemberPlan(count=args.messages - have, seed=11, start_id=base))
    with connection.cursor() as cursor:  # everyone consents, valid contacts (a clean mailing list)
        cursor.execute(
            "UPDATE loyalty_member SET email_status = 'valid', phone_status = 'valid', state = 'activated'"
        )
        cursor.execute(
            "INSERT INTO loyalty_consent (member_id, channel, granted, changed_at, source)"
            " SELECT m.id, c.ch, true, now(), 'bench' FROM loyalty_member m CROSS JOIN (VALUES ('sms'), ('email')) c(ch)"
            " ON CONFLICT (member_id, channel) DO UPDATE SET granted = true"
        )
    ChannelPolicy.objects.update(quiet_start=None, quiet_end=None, daily_cap=None, weekly_cap=None)

    smtp_port, sms_port = free_port(), free_port()
    sinks = [start_sink("smtp", smtp_port), start_sink("sms", sms_port)]
    figures: dict = {"messages": args.messages}
    try:
        gateways = {
            "smtp": gateway_save(
                gateway=Gateway.objects.filter(name="bench smtp").first()
                or Gateway(name="bench smtp", provider="smtp"),
                config={"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": 10},
            ),
            "sms_http": gateway_save(
                gateway=Gateway.objects.filter(name="bench sms").first()
                or Gateway(name="bench sms", provider="devino_sms"),
                config={"base_url": f"http://127.0.0.1:{sms_port}", "api_key": "bench", "timeout": 30},
            ),
        }
        Gateway.objects.filter(pk__in=[g.pk for g in gateways.values()]).update(
            rate_limit=1_000_000, sender="Shop <shop@example.com>"
        )
        for kind, gateway in gateways.items():
            gateway.refresh_from_db()
            for workers in [int(w) for w in args.workers.split(",")]:
                prepare("email" if kind == "smtp" else "sms", gateway, args.messages)
                connection.close()
                start = time.perf_counter()
                procs = [
                    subprocess.Popen(
                        [sys.executable, __file__, "--worker", str(gateway.pk), "--database-url", url],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(workers)
                ]
                outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
                elapsed = time.perf_counter() - start
                sent = Message.objects.filter(status=Status.SENT).count()
                assert sent == args.messages, f"{kind}: {sent} of {args.messages} sent"
                batches = [b for o in outputs for b in o["batches"]]
                suffix = "" if workers == 2 else f"_{workers}w"
                figures[f"{kind}_msgs_per_s{suffix}"] = round(args.messages / elapsed, 1)
                figures[f"{kind}_batch_p50_ms{suffix}"] = round(percentile(batches, 50), 1)
                figures[f"{kind}_batch_p99_ms{suffix}"] = round(percentile(batches, 99), 1)
                figures[f"{kind}_worker_peak_mb{suffix}"] = round(max(o["peak_mb"] for o in outputs), 1)
    finally:
        for sink in sinks:
            sink.terminate()
    report(f"Dispatch, {args.messages:,} messages per run (PostgreSQL, loopback peers)", figures, args.json)


if __name__ == "__main__":
    main()
