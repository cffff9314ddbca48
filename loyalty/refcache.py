"""A short-lived per-process cache for reference data the hot API paths read on every
request (points of sale, payment methods, the default currency, products by SKU, API
keys, the offers' version).

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


def forget(key: tuple) -> None:
    """Drop one entry (this process learns of a change at once; others within its ttl)."""
    with _lock:
        _store.pop(key, None)


def cached_many(prefix: str, keys, loader: Callable[[list], dict], ttl: float = 60.0) -> dict:
    """``{key: value}`` for ``keys``: cached entries, and the others loaded together by
    ``loader(missing) -> {key: value}``. Keys the loader does not return are not cached
    (something created a moment later is found on the next call)."""
    now = time.monotonic()
    found: dict = {}
    missing = []
    with _lock:
        for key in keys:
            hit = _store.get((prefix, key))
            if hit is not None and hit[0] > now:
                found[key] = hit[1]
            else:
                missing.append(key)
    if missing:
        loaded = loader(missing)
        with _lock:
            if len(_store) > 50000:
                _store.clear()
            for key, value in loaded.items():
                _store[(prefix, key)] = (now + ttl, value)
        found.update(loaded)
    return found


def refcache_clear() -> None:
    with _lock:
        _store.clear()
