"""The per-gateway token bucket: a burst of one second's worth, then the rate."""

import uuid

import pytest
from django.conf import settings

from gateways import ratelimit


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_the_bucket_lets_a_seconds_worth_through_then_paces(shared, monkeypatch):
    if shared and not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL (CI does)")
    if not shared:
        monkeypatch.setattr(settings, "REDIS_URL", "")
    key = f"test:{uuid.uuid4().hex}"
    # given a gateway allowed 100 messages a second
    assert ratelimit.acquire(key, 100, rate=100) == 0  # the first second's worth goes at once
    # when 50 more are asked for at once, they must wait about half a second
    wait = ratelimit.acquire(key, 50, rate=100)
    assert 0.4 < wait <= 0.5
    # and the debt carries over to the next caller (another worker sharing the bucket)
    assert ratelimit.acquire(key, 10, rate=100) > wait
