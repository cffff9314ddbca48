"""The OpenAPI schema answers requests that arrive together (drf-spectacular's generator
is not safe to run in two threads at once)."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest


@pytest.mark.django_db
def test_the_schema_answers_concurrent_requests(live_server):
    # when: eight requests at once, each in its own server thread
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda _i: httpx.get(f"{live_server.url}/api/schema/", timeout=60).status_code, range(8))
        )
    # then
    assert statuses == [200] * 8
