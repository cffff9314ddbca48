"""A short-lived per-process cache for reference data the hot API paths read on every
request (points of sale, payment methods, the default currency).

Entries live ``ttl`` seconds, so a change made in the back office reaches every process
within that time; callers that must not refuse something new (an unknown payment
method) check the database when the cached answer says no.
"""

import threading
import time
from collections.abc import Callable
from typing import Any

_store: dict[tuple, tuple[float, Any]] = {}
_lock = threading.Lock()


def cached(key: tuple, loader: Callable[[], Any], ttl: float = 60.0) -> Any:
    now = time.monotonic()
    with _lock:
        hit = _store.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    value = loader()
    with _lock:
        if len(_store) > 50000:
            _store.clear()
        _store[key] = (now + ttl, value)
    return value


def refcache_clear() -> None:
    with _lock:
        _store.clear()
