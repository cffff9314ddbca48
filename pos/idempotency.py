"""``Idempotency-Key`` for every mutating request of the point-of-sale API.

The first request with a key claims it by inserting its record (``ON CONFLICT DO
NOTHING``) as the first statement of the transaction that does the work; the rendered
response is stored in the same transaction and the record marked ``done``, so the
ledger and the record commit together, in one commit. A concurrent request with the
same key waits on the record's unique index until the first one ends: when it
committed, the repeat gets the stored response back byte for byte (same status, same
body); when it rolled back (the work failed), the repeat claims the key and does the
work. The same key with a different method, path or body is refused with 422. An
``in_progress`` record that was committed (by a version that claimed keys in a
transaction of their own) answers 409 until it is ``POS_IDEMPOTENCY_STALE_SECONDS`` old,
and is then taken over.
"""

import datetime as dt
import functools
import hashlib
import json
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import connections, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.encoding import escape_uri_path
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError

from loyalty.prepared import insert_unless_exists
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
    """The parsed JSON body written one way: sorted keys, no spaces, UTF-8 (a lone
    surrogate, which JSON can carry as ``\\ud800``, kept as its code unit, so the body
    still has a fingerprint and its field is refused by validation, not by the hash)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8", "surrogatepass")


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


def _earlier(api_key: ApiKey, key: str, fp: Fingerprint) -> HttpResponse | None:
    """After losing the claim: the stored response of the request that won it, or
    ``None`` when the key is free again (its record was gone or stale)."""
    existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
    if existing is None:  # the first request failed and let go of the key meanwhile
        return None
    if (existing.method, existing.path) != (fp.method, fp.path):
        raise IdempotencyKeyReused(
            _("Key %(key)s was first used for %(method)s %(path)s; use a new key for another request.")
            % {"key": key, "method": existing.method, "path": existing.path}
        )
    if existing.body_hash != fp.body_hash:
        raise IdempotencyKeyReused(
            _("Key %(key)s was first used for %(method)s %(path)s with another body.")
            % {"key": key, "method": existing.method, "path": existing.path}
        )
    if existing.state == IdempotencyState.DONE:
        return _replay(existing)
    if existing.created_at < timezone.now() - _stale_after():
        IdempotencyRecord.objects.filter(
            pk=existing.pk, state=IdempotencyState.IN_PROGRESS, created_at=existing.created_at
        ).delete()
        return None
    raise IdempotencyInProgress(_("Repeat the request once the first one has finished."))


def _claim(api_key: ApiKey, key: str, fp: Fingerprint) -> IdempotencyRecord | None:
    """Insert the key's record, ``in_progress``, or ``None`` when the key is taken. A
    concurrent claim of the same key waits for the first one's transaction: committed,
    the key is taken; rolled back, this claim gets it."""
    record = IdempotencyRecord(
        api_key=api_key,
        key=key,
        method=fp.method,
        path=fp.path,
        body_hash=fp.body_hash,
        created_at=timezone.now(),
    )
    return record if insert_unless_exists(record, unique_fields=("api_key", "key")) else None


_STORE_SQL: dict[str, str] = {}


def _store(record: IdempotencyRecord, response) -> None:
    """Mark the record ``done`` with the rendered response: one UPDATE written once per
    process (a queryset's is compiled on every request)."""
    connection = connections[record._state.db or "default"]
    sql = _STORE_SQL.get(connection.alias)
    if sql is None:
        meta, quote = IdempotencyRecord._meta, connection.ops.quote_name
        columns = ("state", "response_status", "response_body", "response_content_type")
        sql = _STORE_SQL[connection.alias] = (
            f"UPDATE {quote(meta.db_table)} SET "
            + ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in columns)
            + f" WHERE {quote(meta.pk.column)} = %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                IdempotencyState.DONE,
                response.status_code,
                bytes(response.content),
                response.get("Content-Type", ""),
                record.pk,
            ],
        )


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
        fp = fingerprint(request)
        for _attempt in range(3):
            with transaction.atomic():
                record = _claim(request.auth, key, fp)
                if record is not None:
                    response = handler(view, request, *args, **kwargs)
                    response = view.finalize_response(request, response, *args, **kwargs)
                    if hasattr(response, "render"):
                        response.render()
                    if response.status_code < 400:
                        _store(record, response)
                    else:  # an error answered without raising: nothing of it may stay
                        transaction.set_rollback(True)
                    return response
            earlier = _earlier(request.auth, key, fp)
            if earlier is not None:
                return earlier
        raise IdempotencyInProgress(_("Repeat the request once the first one has finished."))

    return wrapper
