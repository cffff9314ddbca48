"""The HTTP phases of ``bench/pos.py``: the POS API served by gunicorn with the
production settings (``config/gunicorn.conf.py``: synchronous workers, which close each
connection after its answer, as they do behind the proxy), driven by an asyncio client on
uvloop, light enough not to compete with the server for the machine's cores."""

import asyncio
import collections
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import uvloop
from _common import percentile

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cpu:
    """CPU time (user + system, ms) of the server's worker processes, of the database's
    backends serving the benchmark database, and of this client, read from ``/proc``
    (Linux): what a request costs each of them, beside how long it took."""

    def __init__(self, server_pid: int, database: str) -> None:
        self.server_pid, self.database = server_pid, database.encode()
        self.tick_ms = 1000 / os.sysconf("SC_CLK_TCK")

    def _processes(self) -> tuple[list[int], list[int]]:
        workers, backends = [], []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == self.server_pid:  # the parent: gunicorn's arbiter
                workers.append(int(entry.name))
            elif cmdline.startswith(b"postgres:") and self.database in cmdline:
                backends.append(int(entry.name))
        return workers, backends

    def _ms(self, pids: list[int]) -> float:
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total * self.tick_ms

    def sample(self) -> tuple[float, float, float]:
        workers, backends = self._processes()
        own = os.times()
        return self._ms(workers), self._ms(backends), (own.user + own.system) * 1000

    @staticmethod
    def per_request(before: tuple, after: tuple, n: int, phase: str) -> dict:
        names = ("server", "database", "client")
        return {
            f"{phase}_{name}_cpu_ms": round((b - a) / n, 2)
            for name, a, b in zip(names, before, after, strict=True)
        }


def _server(database_url: str, workers: int, port: int, redis_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        # The production cache (the throttle counts each key's requests there); empty: each
        # process's memory.
        "REDIS_URL": redis_url,
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
            "-c",
            "config/gunicorn.conf.py",  # the production settings: synchronous workers
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
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


class _Connection:
    """One HTTP/1.1 connection (requests with a body, answers with a Content-Length, as
    gunicorn gives them), kept for the next request unless the server closes it: a few
    dozen microseconds a request, so the load generator does not take the CPU the server
    is measured on."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.closing = False  # the server said "Connection: close"

    @classmethod
    async def open(cls, port: int) -> "_Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _s, v in (ln.partition(":") for ln in lines)}
        self.closing = fields.get("connection", "").lower() == "close"
        return int(status_line.split()[1]), await self.reader.readexactly(int(fields["content-length"]))


class _Pool:
    """Up to ``size`` requests in flight, each on an idle connection (the one idle
    longest) or a new one."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.slots = asyncio.Semaphore(size)
        self.idle: collections.deque[_Connection] = collections.deque()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        async with self.slots:
            connection = self.idle.popleft() if self.idle else await _Connection.open(self.port)
            try:
                answer = await connection.post(path, body, headers)
            except BaseException:
                connection.writer.close()
                raise
            if connection.closing:  # the server ends its connections after each answer
                connection.writer.close()
            else:
                self.idle.append(connection)
            return answer


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
    # The whole catalog, 30 SKUs a receipt: priced before measuring, so that each worker's
    # caches are as a long-running server's.
    from loyalty.models import Product

    catalog = list(Product.objects.filter(sku__startswith="B").values_list("sku", flat=True))
    warm = [
        {
            "point_of_sale": points[0],
            "lines": [{"sku": sku, "quantity": "1", "price": "100.00"} for sku in catalog[i : i + 30]],
            "payments": ["card"],
        }
        for i in range(0, len(catalog), 30)
    ]
    from django.db import connections

    connections.close_all()
    port = _free_port()
    server = _server(args.database_url, args.workers, port, args.redis_url)
    headers = {"Authorization": f"Api-Key {token}", "Content-Type": "application/json"}
    database = args.database_url.rsplit("/", 1)[-1].split("?")[0]
    try:
        return uvloop.run(
            _drive(port, headers, bodies, warm, args.rate, args.confirm_rate, _Cpu(server.pid, database))
        )
    finally:
        server.terminate()
        server.wait(10)


async def _open_loop(
    pool: _Pool, requests: list[tuple[str, bytes, dict[str, str]]], rate: float, ok: tuple[int, ...]
) -> tuple[list[float], int, float]:
    """Send ``(path, body, headers)`` requests at ``rate`` a second whatever the answers
    (open loop): each request's latency (ms) from its planned start, so it includes
    queueing; the answers not in ``ok``; the seconds from the first planned start to the
    last answer."""
    clock = time.perf_counter
    interval, start = 1.0 / rate, clock() + 0.2
    latencies: list[float] = []
    errors = 0

    async def send(i: int) -> None:
        nonlocal errors
        planned = start + i * interval
        await asyncio.sleep(max(0.0, planned - clock()))
        status, _body = await pool.post(*requests[i])
        if status not in ok:
            errors += 1
        latencies.append((clock() - planned) * 1000)

    await asyncio.gather(*(send(i) for i in range(len(requests))))
    return latencies, errors, clock() - start


async def _drive(
    port: int,
    headers: dict[str, str],
    bodies: list[dict],
    warm: list[dict],
    rate: float,
    confirm_rate: float,
    cpu: _Cpu,
) -> dict:
    calculate_path, confirm_path = "/api/v1/pos/receipts/calculate", "/api/v1/pos/receipts/confirm"
    calculations = [json.dumps({**body, "payments": ["card"]}).encode() for body in bodies]
    pool = _Pool(port, 64)
    # Warm up: every worker compiles the offers and caches the whole catalog (six rounds:
    # whichever worker is free takes a request, so each sees nearly every receipt).
    warm_bodies = [json.dumps(body).encode() for body in warm]
    for _round in range(6):
        await asyncio.gather(*(pool.post(calculate_path, body, headers) for body in warm_bodies))

    # Calculate: open loop at the target rate; latency from each request's planned start.
    n = len(bodies)
    calculate_cpu = cpu.sample()
    latencies, errors, elapsed = await _open_loop(
        pool, [(calculate_path, body, headers) for body in calculations], rate, ok=(200,)
    )
    calculate_cpu = cpu.per_request(calculate_cpu, cpu.sample(), n, "calculate")

    # Confirm, each receipt new: first open loop at the target rate (latency from each
    # request's planned start, as for calculate), then as fast as 8 clients go (the
    # most the server confirms; their latency is mostly their own queue).
    run = uuid.uuid4().hex[:8]

    def confirmation(i: int, phase: str) -> tuple[str, bytes, dict[str, str]]:
        body = {
            **bodies[i],
            "external_id": f"bench-{run}-{phase}-{i}",
            "payments": [{"method": "card", "amount": "1.00"}],
        }
        return confirm_path, json.dumps(body).encode(), {**headers, "Idempotency-Key": f"{run}-{phase}-{i}"}

    # Warm up as for calculate: a worker's first confirmations take two to three times as
    # long (its database backend loads the catalog entries of the tables they write and
    # plans their statements; the interpreter specialises the code they run), which a
    # long-running server did long ago. A hundred, eight at a time, reach both workers.
    warm_confirms = [confirmation(i, "warm") for i in range(min(n, 100))]
    for first in range(0, len(warm_confirms), 8):
        await asyncio.gather(*(pool.post(*request) for request in warm_confirms[first : first + 8]))

    confirm_cpu = cpu.sample()
    confirm_latencies, confirm_errors, confirm_elapsed = await _open_loop(
        pool, [confirmation(i, "rate") for i in range(n)], confirm_rate, ok=(200, 201)
    )
    confirm_cpu = cpu.per_request(confirm_cpu, cpu.sample(), n, "confirm")

    most_latencies: list[float] = []
    confirms = _Pool(port, 8)
    queue = list(range(n))

    async def client() -> None:
        nonlocal confirm_errors
        while queue:
            path, body, confirm_headers = confirmation(queue.pop(), "most")
            t0 = time.perf_counter()
            status, _body = await confirms.post(path, body, confirm_headers)
            if status not in (200, 201):
                confirm_errors += 1
            most_latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(8)))
    most_elapsed = time.perf_counter() - t0
    return {
        "calculate_p50_ms": round(percentile(latencies, 50), 2),
        "calculate_p99_ms": round(percentile(latencies, 99), 2),
        "calculate_receipts_per_s": round(n / elapsed, 1),
        "calculate_errors": errors,
        **calculate_cpu,
        "confirm_receipts_per_s": round(n / confirm_elapsed, 1),
        "confirm_p50_ms": round(percentile(confirm_latencies, 50), 2),
        "confirm_p99_ms": round(percentile(confirm_latencies, 99), 2),
        "confirm_errors": confirm_errors,
        **confirm_cpu,
        "confirm_most_receipts_per_s": round(n / most_elapsed, 1),
        "confirm_most_p99_ms": round(percentile(most_latencies, 99), 2),
    }
