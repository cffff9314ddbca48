"""``Authorization: Api-Key <prefix>.<secret>``: the key, its permission and its
rate limit. The authenticated request carries the key as ``request.api_key`` (and
``request.auth``)."""

import datetime as dt
import threading
import time
from dataclasses import dataclass

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.redis import RedisCache
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from loyalty import refcache
from pos.models import ApiKey

KEYWORD = "Api-Key"
# Keys are read through the per-process reference cache: a revoked key stops working at
# once in the process that revoked it and within this many seconds in every other.
KEY_SECONDS = 10.0
# last_used_at is written at most this often per key, not on every request.
TOUCH_EVERY = dt.timedelta(minutes=1)


class ApiKeyUser:
    """Stands in for ``request.user``: the key is the caller, not a person."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.username = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(_("Send the key as: Authorization: Api-Key <prefix>.<secret>."))
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed(_("Invalid API key.")) from None
        prefix, _dot, secret = token.partition(".")
        if not prefix or not secret or len(prefix) > 16:
            raise AuthenticationFailed(_("Invalid API key."))
        key = refcache.cached(
            ("api_key", prefix),
            lambda: (
                ApiKey.objects.select_related("partner", "point_of_sale")
                .filter(prefix=prefix, active=True)
                .first()
            ),
            ttl=KEY_SECONDS,
        )
        if key is None or not key.secret_matches(secret):
            raise AuthenticationFailed(_("Invalid API key."))
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        request.api_key = key
        return ApiKeyUser(key), key

    def authenticate_header(self, request) -> str:
        return KEYWORD


class HasApiKey(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiKey)


# The throttle's count on Redis (``ApiKeyRateThrottle._count_on_redis``): KEYS the last and
# this window's counters; ARGV the last window's weight, the allowed number, the counters'
# lifetime in seconds, and the requests this process let through on its own since it
# last counted here, in this window and in the last one (added first). Answers (allowed,
# last window's count, this window's count before this request).
_REDIS_COUNT = """
local function add(key, n)
    if n > 0 and redis.call('INCRBY', key, n) == n then
        redis.call('EXPIRE', key, ARGV[3])
    end
end
add(KEYS[1], tonumber(ARGV[5]))
add(KEYS[2], tonumber(ARGV[4]))
local previous = tonumber(redis.call('GET', KEYS[1]) or '0')
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous * tonumber(ARGV[1]) + current >= tonumber(ARGV[2]) then
    return {0, previous, current}
end
add(KEYS[2], 1)
return {1, previous, current}
"""
# Per cache connection: (its client, a Redis client on its pool, the script). Made once:
# the cache makes a new Redis client, and fills its table of reply parsers, on every
# call, which cost more than the round trip itself.
_REDIS_COUNTERS: dict[int, tuple] = {}


def _redis_counter(cache: RedisCache):
    cache_client = cache._cache
    entry = _REDIS_COUNTERS.get(id(cache_client))
    if entry is None or entry[0] is not cache_client:
        client = cache_client.get_client(write=True)
        entry = _REDIS_COUNTERS[id(cache_client)] = (
            cache_client,
            client,
            client.register_script(_REDIS_COUNT),
        )
    return entry[1], entry[2]


# Counting a busy key in batches on Redis (``ApiKeyRateThrottle._count_on_redis``): a
# batch is this share of the key's allowance (6,000 a minute: 12 requests), let through
# by a process on its own while the counts it read leave this many batches of room and
# are no older than this many seconds.
LOCAL_SHARE = 500
LOCAL_MARGIN_BATCHES = 10
LOCAL_SECONDS = 0.5


@dataclass
class _LocalCount:
    """What this process last read of a key's counts on Redis, and what it let through since."""

    window: int
    previous: int
    current: int
    pending: int
    read_at: float


_LOCAL: dict[str, _LocalCount] = {}
_LOCAL_LOCK = threading.Lock()


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key; the rate is ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["pos"]``
    (env ``POS_THROTTLE_RATE``), read on each request so a settings change applies.

    Counted in constant time, as a sliding window estimated from two fixed windows (the
    last one's count weighted by how much of it the sliding window still covers):
    DRF's throttle keeps the time of every request of the last period in one cache
    value and reads, trims and writes all of it on each request, which at the default
    6,000 a minute is a list of thousands of floats per till request. Here one read of
    two counters and one increment, whatever the rate; on Redis (the production cache)
    both in one round trip, a script run by the server (through the cache's calls they
    took four: a read, an add that fails once the window has a count, and an increment
    that checks the key exists first), and for a busy key one round trip a batch."""

    scope = "pos"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        base = self.get_cache_key(request, view)
        if base is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.elapsed = now / self.duration - window  # the share of this window gone by
        backend = caches[DEFAULT_CACHE_ALIAS] if self.cache is default_cache else self.cache
        if isinstance(backend, RedisCache):  # (``default_cache`` is a proxy to it)
            return self._count_on_redis(backend, base, window)
        previous_key, current_key = f"{base}:{window - 1}", f"{base}:{window}"
        counts = self.cache.get_many([previous_key, current_key])
        self.previous = counts.get(previous_key, 0)
        self.current = counts.get(current_key, 0)
        if self.previous * (1 - self.elapsed) + self.current >= self.num_requests:
            return False
        # Kept two periods: the next window weighs this one.
        if not self.cache.add(current_key, 1, timeout=2 * self.duration):
            try:
                self.cache.incr(current_key)
            except ValueError:  # expired in between
                self.cache.add(current_key, 1, timeout=2 * self.duration)
        return True

    def _count_on_redis(self, cache: RedisCache, base: str, window: int) -> bool:
        """``allow_request``'s read, check and increment as one script on the Redis
        server: one round trip, and atomic. The keys and values are the cache's own
        (its key prefix and version; a count is stored as the integer's digits, as the
        cache's serializer stores integers).

        A key allowed thousands of requests a window is counted in batches: while the
        counts this process last read (at most ``LOCAL_SECONDS`` ago) leave a wide
        margin (``LOCAL_MARGIN_BATCHES`` batches), it lets fewer than a batch
        (``LOCAL_SHARE`` of the allowance) through on its own and adds them with its
        next round trip. Near the limit by its last read every request is decided by
        the script. A key can therefore pass its limit by less than a batch per
        process (at most 22 at 6,000 a minute on two workers), when other processes used up
        the margin since this one last read; a key allowed fewer than 1,000 requests a
        window is counted exactly, each request on the server."""
        batch = self.num_requests // LOCAL_SHARE
        weight = 1 - self.elapsed
        with _LOCAL_LOCK:
            local = _LOCAL.get(base)
            if (
                batch > 1
                and local is not None
                and local.window == window
                and local.pending + 1 < batch
                and time.monotonic() - local.read_at < LOCAL_SECONDS
                and local.previous * weight + local.current + local.pending + 1 + LOCAL_MARGIN_BATCHES * batch
                <= self.num_requests
            ):
                local.pending += 1
                self.previous, self.current = local.previous, local.current + local.pending - 1
                return True
            flush = flush_previous = 0
            if local is not None:
                if local.window == window:
                    flush = local.pending
                elif local.window == window - 1:
                    flush_previous = local.pending
                local.pending = 0
        client, script = _redis_counter(cache)
        allowed, self.previous, self.current = script(
            keys=[
                cache.make_and_validate_key(f"{base}:{window - 1}"),
                cache.make_and_validate_key(f"{base}:{window}"),
            ],
            args=[repr(weight), self.num_requests, 2 * self.duration, flush, flush_previous],
            client=client,
        )
        with _LOCAL_LOCK:
            if len(_LOCAL) > 100_000:  # keys that stopped calling
                _LOCAL.clear()
            _LOCAL[base] = _LocalCount(
                window, self.previous, self.current + bool(allowed), 0, time.monotonic()
            )
        return bool(allowed)

    def wait(self) -> float:
        """Seconds until the estimate leaves room for one more request."""
        if self.current < self.num_requests and self.previous:
            # the last window's weight has to fall far enough
            share = 1 - (self.num_requests - self.current) / self.previous
            return max(0.0, (share - self.elapsed) * self.duration)
        # the next window, and in it this one's weight has to fall
        share = 1 - self.num_requests / self.current if self.current else 0.0
        return (1 - self.elapsed + max(0.0, share)) * self.duration

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
