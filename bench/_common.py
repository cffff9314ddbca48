"""Shared set-up for the benchmarks: a Django environment on a benchmark database
(PostgreSQL by default, created if missing and migrated), and figure printing."""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/loyalty_bench"


def setup_django(database_url: str | None) -> None:
    sys.path.insert(0, str(ROOT))
    url = database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DB
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Production shape: no query logging (DEBUG keeps every SQL statement in memory).
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key-" + "x" * 40)
    if url.startswith("postgres") and not os.environ.get("BENCH_SKIP_MIGRATE"):
        _create_database(url)
    import django

    django.setup()
    if os.environ.get("BENCH_SKIP_MIGRATE"):
        return
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _create_database(url: str) -> None:
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def report(title: str, figures: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    width = max(len(k) for k in figures)
    print(title)
    print("-" * (width + 16))
    for key, value in figures.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value}"
        print(f"{key:<{width}}  {shown:>12}")


__all__ = ["percentile", "report", "setup_django"]
