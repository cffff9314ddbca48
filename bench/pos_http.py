"""The HTTP phases of ``bench/pos.py``: the POS API served by gunicorn, driven by client
threads over keep-alive connections."""

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import percentile

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(database_url: str, workers: int, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-only-secret-key-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "POS_THROTTLE_RATE": "1000000/min",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/schema/", timeout=2)
            return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the server did not start")


def http_measure(args, receipts, rng: random.Random) -> dict:
    from loyalty.models import Card, CardState, Partner, PointOfSale
    from pos.services import api_key_create

    partner = Partner.objects.get(code="demo-retail")
    token = api_key_create(name=f"bench {uuid.uuid4().hex[:6]}", partner=partner).token
    points = list(PointOfSale.objects.filter(partner=partner).values_list("code", flat=True))
    cards = list(
        Card.objects.filter(state=CardState.ACTIVATED).order_by("?").values_list("number", flat=True)[:5000]
    )
    bodies = [
        {
            "point_of_sale": rng.choice(points),
            "card": rng.choice(cards),
            "lines": [{"sku": ln.sku, "quantity": str(ln.quantity), "price": str(ln.price)} for ln in lines],
        }
        for lines in receipts
    ]
    from django.db import connections

    connections.close_all()
    port = _free_port()
    server = _server(args.database_url, args.workers, port)
    headers = {"Authorization": f"Api-Key {token}", "Content-Type": "application/json"}
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)
        return local.client

    try:
        # Warm up: every worker compiles the offers once.
        for body in bodies[:20]:
            client().post(
                "/api/v1/pos/receipts/calculate", content=json.dumps({**body, "payments": ["card"]})
            )

        # Calculate: open loop at the target rate; latency from each request's planned start.
        n = len(bodies)
        interval = 1.0 / args.rate
        latencies: list[float] = []
        errors = [0]
        start = time.perf_counter() + 0.2

        def calculate(i: int) -> None:
            planned = start + i * interval
            delay = planned - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            response = client().post(
                "/api/v1/pos/receipts/calculate", content=json.dumps({**bodies[i], "payments": ["card"]})
            )
            if response.status_code != 200:
                errors[0] += 1
            latencies.append((time.perf_counter() - planned) * 1000)

        with ThreadPoolExecutor(max_workers=64) as pool:
            list(pool.map(calculate, range(n)))
        elapsed = time.perf_counter() - start

        # Confirm: as fast as 8 client threads go, each receipt new.
        confirm_latencies: list[float] = []
        confirm_errors = [0]
        run = uuid.uuid4().hex[:8]

        def confirm(i: int) -> None:
            body = {
                **bodies[i],
                "external_id": f"bench-{run}-{i}",
                "payments": [{"method": "card", "amount": "1.00"}],
            }
            t0 = time.perf_counter()
            response = client().post(
                "/api/v1/pos/receipts/confirm",
                content=json.dumps(body),
                headers={"Idempotency-Key": f"{run}-{i}"},
            )
            if response.status_code not in (200, 201):
                confirm_errors[0] += 1
            confirm_latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(confirm, range(n)))
        confirm_elapsed = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(10)
    return {
        "calculate_p50_ms": round(percentile(latencies, 50), 2),
        "calculate_p99_ms": round(percentile(latencies, 99), 2),
        "calculate_receipts_per_s": round(n / elapsed, 1),
        "calculate_errors": errors[0],
        "confirm_receipts_per_s": round(n / confirm_elapsed, 1),
        "confirm_p50_ms": round(percentile(confirm_latencies, 50), 2),
        "confirm_p99_ms": round(percentile(confirm_latencies, 99), 2),
        "confirm_errors": confirm_errors[0],
    }
