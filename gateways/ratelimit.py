"""A token bucket per gateway, shared by every worker process through Redis.

``acquire(key, n, rate)`` takes ``n`` tokens and returns how long the caller must wait
before sending them (0 when the bucket had enough). The bucket is refilled at ``rate``
tokens per second up to one second's worth (the burst). Without Redis (the embedded
default runs one worker) the bucket lives in the process.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

_LUA = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
tokens = tokens - n
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('EXPIRE', key, 3600)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


class _LocalBucket:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, key: str, n: int, rate: float, burst: float) -> float:
        with self.lock:
            now = time.monotonic()
            tokens, at = self.state.get(key, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate) - n
            self.state[key] = (tokens, now)
            return 0.0 if tokens >= 0 else -tokens / rate


_local = _LocalBucket()
_redis = None
_script = None


def _redis_script():
    global _redis, _script
    if _script is None:
        import redis

        _redis = redis.Redis.from_url(settings.REDIS_URL)
        _script = _redis.register_script(_LUA)
    return _script


def acquire(key: str, n: int, rate: float) -> float:
    """Take ``n`` tokens from bucket ``key``; return the seconds to wait before using them."""
    burst = max(rate, float(n))
    if getattr(settings, "REDIS_URL", ""):
        return float(_redis_script()(keys=[f"ratelimit:{key}"], args=[rate, burst, n]))
    return _local.take(key, n, rate, burst)


def wait(key: str, n: int, rate: float) -> float:
    delay = acquire(key, n, rate)
    if delay > 0:
        time.sleep(delay)
    return delay
