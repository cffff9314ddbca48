"""``Idempotency-Key`` for every mutating request of the point-of-sale API.

The first request with a key claims it: an ``in_progress`` record is inserted and
committed on its own (a concurrent request with the same key loses on the unique index
and sees the claim). The work then runs in one transaction that also stores the rendered
response and marks the record ``done``, so the ledger and the record commit together.
A repeat gets the stored response back byte for byte (same status, same body); the same
key with a different method, path or body is refused with 422; a repeat while the first
is still running gets 409. When the work fails, the claim is deleted so the client can
retry with the same key. A claim left ``in_progress`` by a process that died (its work
rolled back with it) is taken over after ``POS_IDEMPOTENCY_STALE_SECONDS``.
"""

import datetime as dt
import functools
import hashlib
import json
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.encoding import escape_uri_path
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError

from pos.errors import IdempotencyInProgress, IdempotencyKeyMissing, IdempotencyKeyReused
from pos.models import ApiKey, IdempotencyRecord, IdempotencyState

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[!-~]{1,128}$"  # 1-128 visible ASCII characters (a UUID is typical)
_KEY_RE = re.compile(KEY_PATTERN)
REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": 128, "pattern": KEY_PATTERN},
    OpenApiParameter.HEADER,
    required=True,
    description=(
        "A key the client makes up for this operation (a UUID, say), 1-128 visible ASCII "
        "characters. Repeating the request with the same key returns the first response "
        "unchanged instead of doing the operation again."
    ),
)


def _stale_after() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "POS_IDEMPOTENCY_STALE_SECONDS", 300))


@dataclass(frozen=True)
class Fingerprint:
    method: str
    path: str
    body_hash: str


def canonical_body(data) -> bytes:
    """The parsed JSON body written one way: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def fingerprint(request) -> Fingerprint:
    data = request.data
    if hasattr(data, "lists"):  # a QueryDict (form data): keep every value
        data = {k: v for k, v in data.lists()}
    return Fingerprint(
        method=request.method,
        path=escape_uri_path(request.path)[:255],
        body_hash=hashlib.sha256(canonical_body(data)).hexdigest(),
    )


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        bytes(record.response_body or b""),
        status=record.response_status,
        content_type=record.response_content_type or None,
    )
    response[REPLAYED_HEADER] = "true"
    return response


def _claim(api_key: ApiKey, key: str, fp: Fingerprint) -> IdempotencyRecord | HttpResponse:
    """Our own ``in_progress`` record, or the stored response of an earlier request."""
    for _attempt in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    api_key=api_key,
                    key=key,
                    method=fp.method,
                    path=fp.path,
                    body_hash=fp.body_hash,
                    created_at=now,
                )
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
        if existing is None:  # the first request failed and let go of the key meanwhile
            continue
        if Fingerprint(existing.method, existing.path, existing.body_hash) != fp:
            raise IdempotencyKeyReused(
                _("Key %(key)s was first used for %(method)s %(path)s with another body.")
                % {"key": key, "method": existing.method, "path": existing.path}
            )
        if existing.state == IdempotencyState.DONE:
            return _replay(existing)
        if existing.created_at < now - _stale_after():
            taken = IdempotencyRecord.objects.filter(
                pk=existing.pk, state=IdempotencyState.IN_PROGRESS, created_at=existing.created_at
            ).update(created_at=now)
            if taken:
                existing.created_at = now
                return existing
        raise IdempotencyInProgress(_("Repeat the request once the first one has finished."))
    raise IdempotencyInProgress(_("Repeat the request once the first one has finished."))


def _release(record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyState.IN_PROGRESS).delete()


def idempotent(handler):
    """Decorate a view's handler method (``post``) to run under the request's
    ``Idempotency-Key``. The view must authenticate with an API key."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER, "")
        if not key:
            raise IdempotencyKeyMissing(_("Send an Idempotency-Key header with every change."))
        if not _KEY_RE.match(key):
            raise ValidationError({HEADER: [_("Use 1 to 128 visible ASCII characters.")]})
        claimed = _claim(request.auth, key, fingerprint(request))
        if isinstance(claimed, HttpResponse):
            return claimed
        stored = False
        try:
            with transaction.atomic():
                response = handler(view, request, *args, **kwargs)
                response = view.finalize_response(request, response, *args, **kwargs)
                if hasattr(response, "render"):
                    response.render()
                if response.status_code < 400:
                    IdempotencyRecord.objects.filter(pk=claimed.pk).update(
                        state=IdempotencyState.DONE,
                        response_status=response.status_code,
                        response_body=response.content,
                        response_content_type=response.get("Content-Type", ""),
                    )
                    stored = True
                else:  # an error answered without raising: nothing of it may stay
                    transaction.set_rollback(True)
        except BaseException:
            _release(claimed)
            raise
        if not stored:
            _release(claimed)
        return response

    return wrapper
