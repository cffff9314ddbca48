"""The delivery pipeline: creating messages, claiming and sending them in batches, and
applying what providers answer and report later.

Invariants:

* ``message_send`` is idempotent per (origin, origin id, occurrence, member, cascade
  step): a second call returns the first message.
* ``dispatch_batch`` claims due messages of one gateway with ``SELECT … FOR UPDATE SKIP
  LOCKED`` (PostgreSQL; SQLite serialises writers anyway) and leases them (status
  ``sending``, ``lease_until``, ``lease_token``) in one short transaction, sends outside
  any transaction, and writes results only where its lease token still holds. A worker
  that dies mid-batch leaves leased messages that the next claim takes back once the
  lease has run out; they are re-sent with the same ``ref``, which the provider
  deduplicates where it can; elsewhere the message is flagged ``possible_duplicate``.
* Status writes are set-wise ``UPDATE … WHERE id IN (…) AND status IN (allowed
  sources)`` (``communications.status``), so a stale or repeated result changes nothing.
* Work is handed to Celery only after the surrounding transaction commits.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from communications import status as lifecycle
from communications.models import (
    DeviceToken,
    Message,
    MessagePart,
    MessageStatus,
    Origin,
    Purpose,
    Status,
    Suppression,
)
from communications.models.delivery import SuppressionReason
from communications.services.budget import budget_apply
from communications.services.rendering import rows_render
from communications.services.tracking import email_prepare, unsubscribe_url
from gateways import ratelimit
from gateways.models import Cascade, Gateway
from gateways.providers import Lifecycle, Outcome, OutgoingMessage, ProviderError, SendResult, StatusUpdate
from gateways.services import content_errors, gateway_for_channel, gateway_provider

log = logging.getLogger(__name__)


def lease() -> timedelta:
    return timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)


BACKOFF_BASE = 30.0  # seconds; doubled per attempt, jittered, capped
BACKOFF_CAP = 3600.0
TABLE = Message._meta.db_table
HISTORY = MessageStatus._meta.db_table

LIFECYCLE_STATUS = {
    Lifecycle.QUEUED: Status.SENT,  # accepted by the provider: for us it has left
    Lifecycle.SENT: Status.SENT,
    Lifecycle.DELIVERED: Status.DELIVERED,
    Lifecycle.OPENED: Status.OPENED,
    Lifecycle.CLICKED: Status.CLICKED,
    Lifecycle.FAILED_TEMPORARY: Status.FAILED,
    Lifecycle.FAILED: Status.FAILED,
    Lifecycle.UNDELIVERABLE: Status.UNDELIVERABLE,
    Lifecycle.REJECTED: Status.REJECTED,
    Lifecycle.EXPIRED: Status.EXPIRED,
}
STAMP_FIELD = {
    Status.SENT: "sent_at",
    Status.DELIVERED: "delivered_at",
    Status.OPENED: "opened_at",
    Status.CLICKED: "clicked_at",
}


# --- creating messages ----------------------------------------------------------------
def address_for(member, channel: str) -> tuple[str, str]:
    """(address, platform) of ``member`` on ``channel``: the phone for SMS, Viber and
    social networks, the email, or the newest active device token for push."""
    if member is None:
        return "", ""
    if channel in ("sms", "viber", "social"):
        return member.phone, ""
    if channel == "email":
        return member.email, ""
    token = DeviceToken.objects.filter(member=member, active=True).order_by("-registered_at").first()
    return (token.token, token.platform) if token else ("", "")


def _history(rows: Iterable[tuple[int, str, str, int]], at: datetime) -> None:
    """Append status-history rows, one statement per call."""
    rows = list(rows)
    if not rows:
        return
    if connection.vendor == "postgresql":
        ids, statuses, reasons, attempts = (list(col) for col in zip(*rows, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {HISTORY} (message_id, status, at, reason, attempt)"
                " SELECT i, s, %s, left(r, 255), a FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[]) AS t(i, s, r, a)",
                [at, ids, [str(x) for x in statuses], [str(x) for x in reasons], attempts],
            )
        return
    MessageStatus.objects.bulk_create(
        [
            MessageStatus(message_id=mid, status=st, at=at, reason=reason[:255], attempt=attempt)
            for mid, st, reason, attempt in rows
        ],
        batch_size=500,
    )


@transaction.atomic
def message_send(
    *,
    channel: str,
    content: dict[str, Any],
    origin: str,
    member=None,
    address: str | None = None,
    platform: str = "",
    purpose: str = Purpose.MARKETING,
    origin_id: int = 0,
    occurrence: str = "",
    category: str = "",
    gateway: Gateway | None = None,
    cascade: Cascade | None = None,
    fallback_content: dict[str, dict] | None = None,
    not_before: datetime | None = None,
    expires_at: datetime | None = None,
    render: dict[str, Any] | None = None,
) -> Message:
    """Queue one message (or the first step of ``cascade``) and hand it to the
    dispatcher after commit. Idempotent per origin occurrence and member."""
    now = timezone.now()
    step_gateway = gateway
    if cascade is not None:
        first = cascade.steps.order_by("order").first()
        if first is None:
            raise ValueError("the cascade has no steps")
        channel = first.channel
        step_gateway = first.gateway
    if address is None:
        address, platform = address_for(member, channel)
    step_gateway = step_gateway or gateway_for_channel(channel)
    existing = None
    if member is not None:
        existing = Message.objects.filter(
            origin=origin, origin_id=origin_id, occurrence=occurrence, member=member, cascade_step=0
        ).first()
    if existing:
        return existing
    message = Message(
        member=member,
        channel=channel,
        gateway=step_gateway,
        address=address or "",
        platform=platform,
        content=content,
        render=render,
        purpose=purpose,
        origin=origin,
        origin_id=origin_id,
        occurrence=occurrence,
        category=category,
        cascade=cascade,
        communication=uuid.uuid4() if cascade else None,
        fallback_content=fallback_content or {},
        status=Status.QUEUED,
        status_at=now,
        next_attempt_at=not_before or now,
        expires_at=expires_at,
        created_at=now,
    )
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        return Message.objects.get(
            origin=origin, origin_id=origin_id, occurrence=occurrence, member=member, cascade_step=0
        )
    _history([(message.pk, Status.CREATED, "", 0), (message.pk, Status.QUEUED, "", 0)], now)
    if step_gateway is None:
        _transition([message.pk], Status.FAILED, _("no enabled gateway for this channel"), now)
    else:
        dispatch_soon([step_gateway.pk])
    return message


def dispatch_soon(gateway_ids: Iterable[int], copies: int = 1) -> None:
    """Start dispatch tasks for these gateways once the transaction commits."""
    from communications.tasks import dispatch

    ids = sorted(set(gateway_ids))

    def start():
        for gid in ids:
            for _i in range(copies):
                dispatch.delay(gid)

    transaction.on_commit(start)


@transaction.atomic
def messages_cancel(*, ids: Sequence[int], reason: str = "") -> int:
    """Cancel messages not yet handed to a provider."""
    # Only what has not left: a message in flight or already sent cannot be called back.
    pending = [Status.CREATED, Status.QUEUED, Status.FAILED_TEMPORARY]
    return len(
        _transition(ids, Status.CANCELLED, reason or _("cancelled"), timezone.now(), only_from=pending)
    )


# --- set-wise status moves ------------------------------------------------------------
def _transition(
    ids: Sequence[int],
    new: str,
    reason: str,
    at: datetime,
    *,
    extra: dict[str, Any] | None = None,
    lease_token: uuid.UUID | None = None,
    only_from: Sequence[str] | None = None,
) -> list[int]:
    """Move ``ids`` to ``new`` where the rules allow; record history; return moved ids."""
    if not ids:
        return []
    sources = list(only_from or lifecycle.sources_for(new))
    extra = {k: _dtp(v) if isinstance(v, datetime) else v for k, v in (extra or {}).items()}
    sets = {"status": new, "status_at": _dtp(at), "reason": reason[:255], **extra}
    stamp = STAMP_FIELD.get(new)
    set_sql = ", ".join(f"{col} = %s" for col in sets)
    params: list[Any] = list(sets.values())
    if stamp:
        set_sql += f", {stamp} = COALESCE({stamp}, %s)"
        params.append(_dtp(at))
    moved: list[int] = []
    for chunk_start in range(0, len(ids), 5000):
        chunk = list(ids[chunk_start : chunk_start + 5000])
        id_sql, id_params = _in(chunk)
        where = f"id {id_sql} AND status IN ({', '.join(['%s'] * len(sources))})"
        chunk_params = params + id_params + list(sources)
        if lease_token is not None:
            where += " AND lease_token = %s"
            chunk_params.append(_uuid_param(lease_token))
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {TABLE} SET {set_sql} WHERE {where} RETURNING id, attempts", chunk_params)
            rows = cursor.fetchall()
        moved += [r[0] for r in rows]
        _history(((mid, new, reason, attempts) for mid, attempts in rows), at)
    return moved


def _in(values: Sequence) -> tuple[str, list]:
    """``= ANY(%s)`` with one array parameter on PostgreSQL (a 500-placeholder IN list
    costs more to prepare than to run), an IN list elsewhere."""
    if connection.vendor == "postgresql":
        return "= ANY(%s)", [list(values)]
    return f"IN ({', '.join(['%s'] * len(values))})", list(values)


def _dtp(value: datetime):
    """A datetime as the backend stores it (SQLite compares datetimes as text, so raw SQL
    must write them exactly as the ORM does)."""
    return connection.ops.adapt_datetimefield_value(value.astimezone(dt.UTC))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _uuid_param(value: uuid.UUID):
    return value if connection.vendor == "postgresql" else value.hex


# --- dispatch -------------------------------------------------------------------------
@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    deferred: int = 0
    expired: int = 0
    reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: DispatchReport) -> None:
        for name in (
            "claimed",
            "sent",
            "delivered",
            "retried",
            "failed",
            "suppressed",
            "deferred",
            "expired",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


CLAIM_COLUMNS = (
    "id", "ref", "member_id", "channel", "address", "platform", "content", "purpose", "attempts",
    "expires_at", "cascade_id", "cascade_step", "status", "possible_duplicate", "render",
    "category",
)  # fmt: skip


def _claim(gateway: Gateway, limit: int, now: datetime) -> tuple[uuid.UUID, list[dict]]:
    token = uuid.uuid4()
    if connection.vendor == "postgresql":
        return token, _claim_postgres(gateway, limit, now, token)
    with transaction.atomic():
        due = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(
                gateway_id=gateway.pk,
                status__in=[Status.QUEUED, Status.FAILED_TEMPORARY],
                next_attempt_at__lte=now,
            )
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        stale: list[int] = []
        if len(due) < limit:
            stale = list(
                Message.objects.select_for_update(skip_locked=True)
                .filter(gateway_id=gateway.pk, status=Status.SENDING, lease_until__lt=now)
                .values_list("id", flat=True)[: limit - len(due)]
            )
        ids = due + stale
        if not ids:
            return token, []
        placeholders = ", ".join(["%s"] * len(ids))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET status = %s, status_at = %s, lease_until = %s, lease_token = %s,"
                f" attempts = attempts + 1 WHERE id IN ({placeholders})",
                [Status.SENDING, _dtp(now), _dtp(now + lease()), _uuid_param(token), *ids],
            )
        rows = list(Message.objects.filter(id__in=ids).values(*CLAIM_COLUMNS))
        stale_set = set(stale)
        _history(
            (
                (
                    r["id"],
                    Status.SENDING,
                    _("lease expired, sending again") if r["id"] in stale_set else "",
                    r["attempts"],
                )
                for r in rows
            ),
            now,
        )
        for r in rows:
            r["stale"] = r["id"] in stale_set
    return token, rows


def _claim_postgres(gateway: Gateway, limit: int, now: datetime, token: uuid.UUID) -> list[dict]:
    """One statement: pick due messages (and ones whose lease ran out) with SKIP LOCKED,
    lease them, log ``sending``, and return them."""
    columns = ", ".join(f"m.{c}" for c in CLAIM_COLUMNS)
    sql = f"""
        WITH due AS (
            SELECT id, false AS stale FROM {TABLE}
            WHERE gateway_id = %(gw)s AND status IN ('queued', 'failed_temporary') AND next_attempt_at <= %(now)s
            ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ), stale AS (
            SELECT id, true AS stale FROM {TABLE}
            WHERE gateway_id = %(gw)s AND status = 'sending' AND lease_until < %(now)s
            LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ), picked AS (
            SELECT * FROM due UNION ALL (SELECT * FROM stale) LIMIT %(limit)s
        ), leased AS (
            UPDATE {TABLE} m SET status = 'sending', status_at = %(now)s, lease_until = %(lease)s,
                lease_token = %(token)s, attempts = m.attempts + 1
            FROM picked WHERE m.id = picked.id
            RETURNING {columns}, picked.stale
        ), logged AS (
            INSERT INTO {HISTORY} (message_id, status, at, reason, attempt)
            SELECT id, 'sending', %(now)s, CASE WHEN stale THEN %(stale_reason)s ELSE '' END, attempts FROM leased
        )
        SELECT * FROM leased
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "gw": gateway.pk,
                "now": now,
                "limit": limit,
                "lease": now + lease(),
                "token": token,
                "stale_reason": str(_("lease expired, sending again")),
            },
        )
        names = [*CLAIM_COLUMNS, "stale"]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # Django leaves jsonb undecoded on raw cursors
        if isinstance(row["content"], str):
            row["content"] = json.loads(row["content"])
        if isinstance(row["render"], str):
            row["render"] = json.loads(row["render"])
    return rows


def dispatch_batch(
    *, gateway: Gateway, limit: int | None = None, now: datetime | None = None
) -> DispatchReport:
    """Claim up to ``limit`` due messages of ``gateway``, apply the contact budget, send
    the rest through the rate limiter, and write the results."""
    from communications.services.mailings import mailings_release

    report = DispatchReport()
    now = now or timezone.now()
    adapter = gateway_provider(gateway)
    limit = limit or adapter.max_batch
    mailings_release(gateway=gateway, limit=limit, now=now)  # mailings' next recipients, before claiming
    token, rows = _claim(gateway, limit, now)
    report.claimed = len(rows)
    if not rows:
        return report

    expired = [r["id"] for r in rows if r["expires_at"] and r["expires_at"] <= now]
    if expired:
        report.expired += len(
            _transition(expired, Status.EXPIRED, _("expired before it could be sent"), now, lease_token=token)
        )
    rows = [r for r in rows if r["id"] not in set(expired)]

    decision = budget_apply(rows, now=now)
    by_reason: dict[str, list[int]] = defaultdict(list)
    for mid, reason in decision.suppressed.items():
        by_reason[reason].append(mid)
    negative: list[int] = list(expired)
    for reason, ids in by_reason.items():
        moved = _transition(ids, Status.SUPPRESSED, reason, now, lease_token=token)
        report.suppressed += len(moved)
        report.reasons[reason] += len(moved)
        negative += moved
    deferred_by_time: dict[datetime, list[int]] = defaultdict(list)
    for mid, until in decision.deferred.items():
        deferred_by_time[until].append(mid)
    for until, ids in deferred_by_time.items():
        report.deferred += len(
            _transition(
                ids,
                Status.QUEUED,
                _("deferred by quiet hours until %(time)s") % {"time": until.isoformat(timespec="minutes")},
                now,
                extra={"next_attempt_at": until, "lease_until": None},
                lease_token=token,
                only_from=[Status.SENDING],
            )
        )

    ready, unrenderable = rows_render(decision.send, now=now)
    failed_by_reason: dict[str, list[int]] = defaultdict(list)
    for mid, reason in unrenderable.items():
        failed_by_reason[reason].append(mid)
    for reason, ids in failed_by_reason.items():
        moved = _transition(ids, Status.FAILED, reason, now, lease_token=token)
        report.failed += len(moved)
        negative += moved
    decision.send = ready
    outgoing = [_outgoing(r, gateway) for r in decision.send]
    results: list[SendResult] = []
    for start in range(0, len(outgoing), adapter.max_batch):
        chunk = outgoing[start : start + adapter.max_batch]
        ratelimit.wait(f"gateway:{gateway.pk}", sum(1 for _m in chunk), gateway.rate_limit)
        try:
            results += adapter.send(chunk)
        except ProviderError as exc:
            outcome = Outcome.TEMPORARY if exc.temporary else Outcome.PERMANENT
            results += [
                SendResult(m.id, outcome, reason=str(exc), retry_after=exc.retry_after) for m in chunk
            ]
        except Exception as exc:  # an adapter bug must not strand the batch in "sending"
            log.exception("gateway %s failed on a batch", gateway.pk)
            results += [
                SendResult(m.id, Outcome.TEMPORARY, reason=f"{exc.__class__.__name__}: {exc}") for m in chunk
            ]
    negative += _results_apply(
        gateway, adapter, {r["id"]: r for r in decision.send}, results, token, now, report
    )
    received = adapter.receipts()
    if received:
        status_updates_apply(gateway=gateway, updates=received, now=now)
    if negative:
        cascade_advance(ids=negative, now=now)
    return report


def _outgoing(row: dict, gateway: Gateway) -> OutgoingMessage:
    content = row["content"]
    purpose = row["purpose"]
    unsubscribe = (
        unsubscribe_url(row["ref"])
        if row["channel"] == "email" and purpose != Purpose.TRANSACTIONAL and row["member_id"]
        else ""
    )
    if row["channel"] == "email" and row["member_id"]:
        content = email_prepare(content, ref=row["ref"], unsubscribe=unsubscribe)
    return OutgoingMessage(
        id=row["id"],
        ref=str(row["ref"]),
        channel=row["channel"],
        to=row["address"],
        content=content,
        marketing=purpose == Purpose.MARKETING,
        attempt=row["attempts"],
        unsubscribe_url=unsubscribe,
        platform=row["platform"],
    )


def _backoff(attempt: int, retry_after: float | None) -> float:
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt - 1))
    delay *= random.uniform(0.5, 1.5)
    return max(delay, retry_after or 0.0)


def _results_apply(
    gateway: Gateway, adapter, rows: dict[int, dict], results: list[SendResult], token, now, report
) -> list[int]:
    """Write one batch's results; return the ids that ended negatively (for cascades)."""
    accepted: list[tuple] = []
    parts: list[MessagePart] = []
    negative: list[int] = []
    grouped: dict[tuple[str, str], list[int]] = defaultdict(list)
    retry: list[tuple[int, datetime, str, bool]] = []
    retire: list[tuple[str, str]] = []
    suppress: list[tuple[str, str]] = []
    for result in results:
        row = rows.get(result.message_id)
        if row is None:
            continue
        if result.retire_address:
            retire.append((row["address"], result.reason))
        if result.suppress_address:
            suppress.append((row["channel"], row["address"]))
        if result.outcome == Outcome.ACCEPTED:
            new = Status.DELIVERED if result.status == Lifecycle.DELIVERED else Status.SENT
            cost = gateway.unit_price(result.segments or 1)
            accepted.append(
                (new, result.provider_message_id[:128], result.segments or 1, cost, result.message_id)
            )
            parts += [
                MessagePart(message_id=result.message_id, gateway_id=gateway.pk, provider_id=pid[:128])
                for pid in result.part_ids
            ]
        elif result.outcome in (Outcome.TEMPORARY, Outcome.UNKNOWN):
            unknown = result.outcome == Outcome.UNKNOWN
            duplicate_risk = unknown and not adapter.deduplicates
            if row["attempts"] >= gateway.max_attempts:
                grouped[
                    (
                        Status.FAILED,
                        _("gave up after %(n)s attempts: %(reason)s")
                        % {"n": row["attempts"], "reason": result.reason},
                    )
                ].append(result.message_id)
            else:
                at = now + timedelta(seconds=_backoff(row["attempts"], result.retry_after))
                retry.append((result.message_id, at, result.reason, duplicate_risk))
        elif result.outcome == Outcome.REJECTED:
            grouped[(Status.REJECTED, result.reason)].append(result.message_id)
        else:
            grouped[(Status.FAILED, result.reason)].append(result.message_id)

    if accepted:
        _accepted_write(accepted, token, now, report, rows)
    if parts:
        MessagePart.objects.bulk_create(parts, batch_size=1000)
    for mid, at, reason, duplicate_risk in retry:
        extra = {"next_attempt_at": at, "lease_until": None}
        if duplicate_risk or rows[mid].get("stale") and not adapter.deduplicates:
            extra["possible_duplicate"] = True
        if _transition([mid], Status.FAILED_TEMPORARY, reason, now, extra=extra, lease_token=token):
            report.retried += 1
    for (new, reason), ids in grouped.items():
        moved = _transition(ids, new, reason, now, lease_token=token)
        report.failed += len(moved)
        report.reasons[reason] += len(moved)
        negative += moved
    if retire:
        DeviceToken.objects.filter(token__in=[a for a, _r in retire], active=True).update(
            active=False, retired_at=now, retired_reason=retire[0][1][:255]
        )
    if suppress:
        Suppression.objects.bulk_create(
            [
                Suppression(
                    channel=ch,
                    address=addr,
                    reason=SuppressionReason.INVALID if ch != "email" else SuppressionReason.HARD_BOUNCE,
                )
                for ch, addr in suppress
                if addr
            ],
            ignore_conflicts=True,
        )
    return negative


def _accepted_write(accepted: list[tuple], token, now, report, rows) -> None:
    """One statement per batch: UPDATE … FROM (VALUES …) on PostgreSQL, executemany elsewhere."""
    token_param = _uuid_param(token)
    if connection.vendor == "postgresql":
        statuses, pids, segments, costs, ids = (list(col) for col in zip(*accepted, strict=True))
        sql = (
            f"UPDATE {TABLE} AS m SET status = CASE WHEN m.status = 'sending' THEN v.status ELSE m.status END,"
            f" status_at = %s, reason = '', provider_message_id = v.pid,"
            f" segments = v.segments, cost = v.cost, lease_until = NULL, sent_at = COALESCE(m.sent_at, %s),"
            f" delivered_at = CASE WHEN v.status = 'delivered' THEN %s ELSE m.delivered_at END"
            f" FROM unnest(%s::text[], %s::text[], %s::int[], %s::numeric[], %s::bigint[]) AS v(status, pid, segments, cost, id)"
            f" WHERE m.id = v.id AND m.lease_token = %s AND m.lease_until IS NOT NULL"
            f" RETURNING m.id, m.status, m.attempts, m.status = v.status"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                sql, [now, now, now, [str(x) for x in statuses], pids, segments, costs, ids, token_param]
            )
            done = cursor.fetchall()
    else:
        done = []
        with connection.cursor() as cursor:
            for new, pid, segments, cost, mid in accepted:
                cursor.execute(
                    f"UPDATE {TABLE} SET status = CASE WHEN status = 'sending' THEN %s ELSE status END,"
                    f" status_at = %s, reason = '', provider_message_id = %s,"
                    f" segments = %s, cost = %s, lease_until = NULL, sent_at = COALESCE(sent_at, %s),"
                    f" delivered_at = CASE WHEN %s = 'delivered' THEN %s ELSE delivered_at END"
                    f" WHERE id = %s AND lease_token = %s AND lease_until IS NOT NULL"
                    f" RETURNING id, status, attempts, status = %s",
                    [
                        new,
                        _dtp(now),
                        pid,
                        segments,
                        str(Decimal(cost)),
                        _dtp(now),
                        new,
                        _dtp(now),
                        mid,
                        token_param,
                        new,
                    ],
                )
                done += cursor.fetchall()
    history = []
    for mid, new, attempts, moved in done:
        report.sent += 1
        if not moved:  # a callback got there first; its status stands
            continue
        history.append((mid, Status.SENT, "", attempts))
        if new == Status.DELIVERED:
            history.append((mid, Status.DELIVERED, "", attempts))
            report.delivered += 1
    _history(history, now)
    if any(rows[mid]["cascade_id"] for mid, _s, _a, _m in done):
        _deadlines_set([mid for mid, _s, _a, _m in done], now)


def _deadlines_set(ids: list[int], now: datetime) -> None:
    """Start the fall-back clock of cascade steps that were just sent."""
    if not ids:
        return
    waits = {}
    for mid, cascade_id, step in Message.objects.filter(id__in=ids, cascade__isnull=False).values_list(
        "id", "cascade_id", "cascade_step"
    ):
        waits.setdefault((cascade_id, step), []).append(mid)
    from gateways.models import CascadeStep

    for (cascade_id, step), mids in waits.items():
        steps = list(CascadeStep.objects.filter(cascade_id=cascade_id).order_by("order"))
        if step + 1 < len(steps) and steps[step].wait_minutes:
            Message.objects.filter(id__in=mids, step_deadline__isnull=True).update(
                step_deadline=now + timedelta(minutes=steps[step].wait_minutes)
            )


# --- statuses reported later ----------------------------------------------------------
def status_updates_apply(
    *, gateway: Gateway, updates: Sequence[StatusUpdate], now: datetime | None = None
) -> int:
    """Apply callback / polling / receipt updates. Idempotent and order-tolerant: each
    update moves a message only forward. Returns how many messages moved."""
    now = now or timezone.now()
    if not updates:
        return 0
    pids = {u.provider_message_id for u in updates}
    id_by_pid = dict(
        Message.objects.filter(gateway=gateway, provider_message_id__in=pids).values_list(
            "provider_message_id", "id"
        )
    )
    # A status that overtook the send's own answer: find its message by our ref.
    early = {
        u.ref: u.provider_message_id for u in updates if u.ref and u.provider_message_id not in id_by_pid
    }
    if early:
        refs = [r for r in early if _is_uuid(r)]
        for ref, mid in Message.objects.filter(gateway=gateway, ref__in=refs).values_list("ref", "id"):
            id_by_pid[early[str(ref)]] = mid
    part_rows = list(
        MessagePart.objects.filter(gateway_id=gateway.pk, provider_id__in=pids - set(id_by_pid)).values_list(
            "provider_id", "message_id", "id"
        )
    )
    moved = 0
    negative: list[int] = []
    suppress: list[int] = []
    grouped: dict[tuple[str, str], list[int]] = defaultdict(list)
    for update in updates:
        new = LIFECYCLE_STATUS.get(update.status)
        if update.status in (Lifecycle.UNSUBSCRIBED, Lifecycle.COMPLAINED):
            mid = id_by_pid.get(update.provider_message_id)
            if mid:
                from communications.services.tracking import message_unsubscribe

                message_unsubscribe(
                    message=Message.objects.get(pk=mid),
                    complaint=update.status == Lifecycle.COMPLAINED,
                    source="provider",
                )
            continue
        if new is None:
            continue
        mid = id_by_pid.get(update.provider_message_id)
        if mid is None:
            for pid, part_mid, part_id in part_rows:
                if pid == update.provider_message_id:
                    MessagePart.objects.filter(pk=part_id).update(status=new)
                    # Delivered only when every part is; a failed part fails the message.
                    if (
                        new == Status.DELIVERED
                        and MessagePart.objects.filter(message_id=part_mid)
                        .exclude(status__in=lifecycle.DELIVERED_OR_LATER)
                        .exists()
                    ):
                        new = None
                    mid = part_mid
            if new is None or mid is None:
                continue
        elif (
            new == Status.DELIVERED
            and MessagePart.objects.filter(message_id=mid)
            .exclude(status__in=lifecycle.DELIVERED_OR_LATER)
            .exists()
        ):
            continue
        if update.suppress_address:
            suppress.append(mid)
        reason = update.reason or (update.url and _("link: %(url)s") % {"url": update.url}) or ""
        grouped[(new, reason)].append(mid)
    for (new, reason), ids in grouped.items():
        # A click implies the message was delivered and opened.
        ladder = (
            [Status.DELIVERED, Status.OPENED, Status.CLICKED]
            if new == Status.CLICKED
            else ([Status.DELIVERED, Status.OPENED] if new == Status.OPENED else [new])
        )
        for step in ladder:
            ids_moved = _transition(ids, step, reason if step == new else "", now)
            if step == new:
                moved += len(ids_moved)
                if new in lifecycle.FINAL_NEGATIVE:
                    negative += ids_moved
    if suppress:
        rows = Message.objects.filter(id__in=suppress).values_list("channel", "address")
        Suppression.objects.bulk_create(
            [
                Suppression(
                    channel=ch,
                    address=a,
                    reason=SuppressionReason.HARD_BOUNCE if ch == "email" else SuppressionReason.INVALID,
                )
                for ch, a in rows
                if a
            ],
            ignore_conflicts=True,
        )
    if negative:
        cascade_advance(ids=negative, now=now)
    return moved


# --- cascades -------------------------------------------------------------------------
def cascade_advance(*, ids: Sequence[int], now: datetime | None = None) -> list[Message]:
    """Start the next cascade step for messages that could not reach the member (or
    were not delivered in time). Each message moves its cascade on at most once."""
    from gateways.models import CascadeStep

    now = now or timezone.now()
    with transaction.atomic():
        candidates = list(
            Message.objects.select_for_update(of=("self",))
            .filter(id__in=ids, cascade__isnull=False, cascaded=False)
            .select_related("member")
        )
        created: list[Message] = []
        steps_cache: dict[int, list[CascadeStep]] = {}
        for msg in candidates:
            steps = steps_cache.setdefault(
                msg.cascade_id,
                list(
                    CascadeStep.objects.filter(cascade_id=msg.cascade_id)
                    .order_by("order")
                    .select_related("gateway")
                ),
            )
            msg.cascaded = True
            nxt = msg.cascade_step + 1
            if nxt >= len(steps):
                continue
            step = steps[nxt]
            gateway = step.gateway or gateway_for_channel(step.channel)
            address, platform = address_for(msg.member, step.channel)
            content = msg.fallback_content.get(step.channel) or msg.content
            created.append(
                Message(
                    member=msg.member,
                    channel=step.channel,
                    gateway=gateway,
                    address=address,
                    platform=platform,
                    content=content if not msg.render else {},
                    render=msg.render,
                    fallback_content=msg.fallback_content,
                    purpose=msg.purpose,
                    category=msg.category,
                    origin=msg.origin,
                    origin_id=msg.origin_id,
                    occurrence=msg.occurrence,
                    cascade_id=msg.cascade_id,
                    cascade_step=nxt,
                    communication=msg.communication,
                    status=Status.QUEUED if gateway else Status.FAILED,
                    reason="" if gateway else _("no enabled gateway for this channel"),
                    status_at=now,
                    next_attempt_at=now,
                    expires_at=msg.expires_at,
                    created_at=now,
                )
            )
        Message.objects.bulk_update(candidates, ["cascaded"])
        if created:
            Message.objects.bulk_create(created, ignore_conflicts=True)
            fresh = list(
                Message.objects.filter(
                    communication__in={m.communication for m in created},
                    cascade_step__in={m.cascade_step for m in created},
                ).exclude(history__isnull=False)
            )
            _history(((m.pk, Status.CREATED, "", 0) for m in fresh), now)
            _history(((m.pk, m.status, m.reason, 0) for m in fresh), now)
            dispatch_soon({m.gateway_id for m in fresh if m.gateway_id})
            return fresh
    return []


def fallbacks_due(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Cascade steps sent but not delivered within their wait: start the next step."""
    now = now or timezone.now()
    ids = list(
        Message.objects.filter(
            cascaded=False,
            step_deadline__lte=now,
            status__in=[Status.QUEUED, Status.SENDING, Status.FAILED_TEMPORARY, Status.SENT],
        ).values_list("id", flat=True)[:limit]
    )
    return len(cascade_advance(ids=ids, now=now))


def due_gateways(now: datetime | None = None) -> dict[int, int]:
    """Gateways with messages due (or leases run out), with how many."""
    now = now or timezone.now()
    from django.db.models import Count, Q

    rows = (
        Message.objects.filter(
            Q(status__in=[Status.QUEUED, Status.FAILED_TEMPORARY], next_attempt_at__lte=now)
            | Q(status=Status.SENDING, lease_until__lt=now),
            gateway__isnull=False,
            gateway__enabled=True,
        )
        .values("gateway_id")
        .annotate(n=Count("id"))
    )
    return {r["gateway_id"]: r["n"] for r in rows}


def statuses_poll(*, gateway: Gateway, max_age: timedelta = timedelta(hours=48), limit: int = 1000) -> int:
    """Ask a polling-only provider for the statuses of messages still in flight."""
    adapter = gateway_provider(gateway)
    if not adapter.polling:
        return 0
    since = timezone.now() - max_age
    pids = list(
        Message.objects.filter(gateway=gateway, status=Status.SENT, sent_at__gte=since)
        .exclude(provider_message_id="")
        .values_list("provider_message_id", flat=True)[:limit]
    )
    pids += list(
        MessagePart.objects.filter(
            gateway_id=gateway.pk, message__status=Status.SENT, message__sent_at__gte=since
        )
        .exclude(status__in=lifecycle.DELIVERED_OR_LATER)
        .values_list("provider_id", flat=True)[:limit]
    )
    if not pids:
        return 0
    return status_updates_apply(gateway=gateway, updates=adapter.poll(pids))


def _test_address(channel: str, to: str) -> str:
    """The address normalised for the channel; ``ValidationError`` on ``to`` otherwise."""
    from loyalty.services.contacts import email_parse, phone_parse

    try:
        if channel in ("sms", "viber", "social"):
            return phone_parse(to).e164
        if channel == "email":
            return email_parse(to)
    except ValidationError as exc:
        raise ValidationError({"to": exc.messages}) from exc
    if not to.strip():
        raise ValidationError({"to": [_("Enter the device token.")]})
    return to.strip()


def test_message_send(*, gateway: Gateway, to: str, text: str = "") -> Message:
    """A test message to any address through ``gateway`` (a watcher, the operator):
    ``text`` (or a default naming the program) in the shape the gateway's channel takes.
    The address and the content are checked; ``ValidationError`` names ``to`` or ``text``."""
    text = text or _("Test message from %(program)s") % {"program": settings.LOYALTY["PROGRAM_NAME"]}
    subject = _("Test message")
    content = {
        "sms": {"text": text},
        "viber": {"text": text},
        "email": {"subject": subject, "text": text, "html": f"<p>{html.escape(text)}</p>"},
        "push": {"title": subject, "body": text},
        "social": {"template_id": "test", "text": text},
    }[gateway.channel]
    to = _test_address(gateway.channel, to)
    errors = content_errors(channel=gateway.channel, content=content, gateway=gateway)
    if errors:
        raise ValidationError({"text": errors})
    return message_send(
        channel=gateway.channel,
        content=content,
        origin=Origin.TEST,
        address=to,
        purpose=Purpose.TRANSACTIONAL,
        gateway=gateway,
    )
