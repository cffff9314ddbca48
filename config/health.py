"""``/healthz`` and ``/readyz`` for the proxy, the load balancer and the orchestrator.

Answered by the first middleware, before host validation, HTTPS redirects, sessions and
the URL configuration: a load balancer probes by the container's address, over plain
HTTP, and must get the process's own answer, not a redirect or a 400 for an unknown host.

* ``/healthz``: the process serves requests (nothing else is touched);
* ``/readyz``: it can do its work: the database answers and the cache stores and reads a
  value. 503 names what failed, so the instance leaves the pool until it recovers.
"""

import logging
import uuid

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

log = logging.getLogger(__name__)


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _cache() -> None:
    key, value = f"readyz:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=10)
    if cache.get(key) != value:
        raise RuntimeError("the cache did not return what was stored")
    cache.delete(key)


CHECKS = {"database": _database, "cache": _cache}


def readiness() -> tuple[bool, dict[str, str]]:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure makes the instance not ready
            log.warning("readiness check %s failed: %s", name, exc)
            results[name] = "failed"
    return all(v == "ok" for v in results.values()), results


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            ready, results = readiness()
            return JsonResponse(
                {"status": "ok" if ready else "failed", **results}, status=200 if ready else 503
            )
        return self.get_response(request)
