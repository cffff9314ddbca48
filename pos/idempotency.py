"""``Idempotency-Key`` for every mutating request of the point-of-sale API.

The first request with a key claims it by inserting its record (``ON CONFLICT DO
NOTHING``) as the first statement of the transaction that does the work; the rendered
response is stored in the same transaction and the record marked ``done``, so the
ledger and the record commit together, in one commit. A repeat while the first request
still runs is answered 409 at once (on PostgreSQL the claim takes the key's advisory
lock without waiting; it is held until the first request's transaction ends). A repeat
after it committed gets the stored response back byte for byte (same status, same
body); after it rolled back (the work failed), the repeat claims the key and does the
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
        "unchanged instead of doing the operation again; a repeat while the first is still "
        "running is answered 409 `idempotency_in_progress`."
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


BUSY = object()  # _claim: a request with this key is running right now
_CLAIM_SQL: dict[str, tuple[str, list]] = {}


def _lock_id(api_key: ApiKey, key: str) -> int:
    """The key's transaction-scoped advisory lock: 64 bits of a hash of (API key, key)."""
    digest = hashlib.blake2b(f"{api_key.pk}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _claim_sql(connection) -> tuple[str, list]:
    """``INSERT`` of the record, run only when the key's advisory lock is free, in one
    statement that answers (got the lock, the new record's id or NULL): written once per
    process."""
    cached = _CLAIM_SQL.get(connection.alias)
    if cached is None:
        meta, quote = IdempotencyRecord._meta, connection.ops.quote_name
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        cached = _CLAIM_SQL[connection.alias] = (
            "WITH lock AS (SELECT pg_try_advisory_xact_lock(%s) AS got), "
            f"claim AS (INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"SELECT {', '.join(['%s'] * len(fields))} FROM lock WHERE lock.got "
            f"ON CONFLICT ({quote(meta.get_field('api_key').column)}, {quote(meta.get_field('key').column)}) "
            f"DO NOTHING RETURNING {quote(meta.pk.column)}) "
            "SELECT lock.got, (SELECT * FROM claim) FROM lock",
            fields,
        )
    return cached


def _claim(api_key: ApiKey, key: str, fp: Fingerprint):
    """Insert the key's record, ``in_progress``; ``None`` when the key is taken (by a
    request that has finished: its answer is stored, or it failed and let go of the key);
    ``BUSY`` when a request with the key is running right now. On PostgreSQL the claim
    takes the key's advisory lock without waiting, so a repeat that arrives while the
    first runs is answered at once instead of holding a worker until the first ends;
    elsewhere (one writer at a time) a repeat waits for the first."""
    record = IdempotencyRecord(
        api_key=api_key,
        key=key,
        method=fp.method,
        path=fp.path,
        body_hash=fp.body_hash,
        created_at=timezone.now(),
    )
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return record if insert_unless_exists(record, unique_fields=("api_key", "key")) else None
    sql, fields = _claim_sql(connection)
    values = [f.get_db_prep_save(f.pre_save(record, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [_lock_id(api_key, key), *values])
        got, pk = cursor.fetchone()
    if not got:
        return BUSY
    if pk is None:
        return None
    record.pk = pk
    record._state.adding, record._state.db = False, connection.alias
    return record


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
                if record is BUSY:
                    raise IdempotencyInProgress(_("Repeat the request once the first one has finished."))
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
