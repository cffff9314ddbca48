"""HTTP plumbing shared by the adapters of HTTP providers.

One ``httpx.Client`` per adapter instance keeps connections alive between batches. The
failure classification follows what each provider's documentation says about retries:
a connection that never carried the request is a plain temporary failure; a timeout
after the request was written is an *unknown* outcome (the provider may have sent it);
429 and 5xx are temporary, honouring ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Sequence

import httpx
from django.utils.translation import gettext

from gateways.providers.base import Outcome, OutgoingMessage, SendResult

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def http_client(
    *, base_url: str, timeout: float | None = None, http2: bool = False, **kwargs
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)) if timeout else DEFAULT_TIMEOUT,
        limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=60),
        http2=http2,
        **kwargs,
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def transport_failure(exc: Exception) -> tuple[Outcome, str]:
    """Classify an exception raised while talking to the provider."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Outcome.TEMPORARY, f"connection failed: {exc}"
    if isinstance(exc, httpx.TimeoutException | httpx.RemoteProtocolError | httpx.ReadError):
        return Outcome.UNKNOWN, f"no answer after sending: {exc.__class__.__name__}"
    return Outcome.TEMPORARY, f"{exc.__class__.__name__}: {exc}"


def failed_batch(
    batch: Sequence[OutgoingMessage], outcome: Outcome, reason: str, retry_after: float | None = None
) -> list[SendResult]:
    return [SendResult(m.id, outcome, reason=reason, retry_after=retry_after) for m in batch]


def send_each(
    batch: Sequence[OutgoingMessage], send_one: Callable[[OutgoingMessage], tuple[SendResult, bool]]
) -> list[SendResult]:
    """Send a batch one message per request; when ``send_one`` says the service (or our
    access to it) is down, the rest of the batch waits too, as temporary failures."""
    results: list[SendResult] = []
    for i, message in enumerate(batch):
        result, stop = send_one(message)
        results.append(result)
        if stop:
            reason = gettext("not sent: %(reason)s") % {"reason": result.reason}
            results += failed_batch(batch[i + 1 :], Outcome.TEMPORARY, reason, result.retry_after)
            break
    return results


def status_failure(response: httpx.Response) -> tuple[Outcome, str, float | None] | None:
    """429 and 5xx are temporary for every HTTP provider here; ``None`` for anything else."""
    if response.status_code == 429:
        return Outcome.TEMPORARY, "429 Too Many Requests", retry_after_seconds(response)
    if response.status_code >= 500:
        return Outcome.TEMPORARY, f"HTTP {response.status_code}", retry_after_seconds(response)
    return None
