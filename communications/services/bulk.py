"""Queueing messages for many members in one statement.

Mailings, chain steps and regular notifications hand over a *source*: SQL selecting
``member_id`` (and optionally a per-member ``occurrence`` and ``event`` JSON). One
``INSERT ... SELECT`` joins it to the members, takes each member's address on the
channel, keeps only members who can be reached (a contact that is not marked invalid,
consent on the channel, not on the suppression list, not opted out of the mailing
category, not blocked; for marketing also outside the control groups), and writes one
queued message row each, rendered later at send time from the template. The unique
``(origin, origin_id, occurrence, member, cascade_step)`` makes a repeat a no-op, so a
crashed or repeated run never queues a member twice.

``audience_figures`` runs the same conditions as counts, for the preliminary cost.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from communications.models import (
    REF_NEW_SQL,
    CategoryOptOut,
    DeviceToken,
    Message,
    MessageTemplate,
    Purpose,
    Status,
    Suppression,
)
from gateways.models import Cascade, Gateway
from loyalty.models import Consent, Member
from segments.control import BUCKETS, MULTIPLIER, PRIME

MESSAGE = Message._meta.db_table
MEMBER = Member._meta.db_table
CONSENT = Consent._meta.db_table
SUPPRESSION = Suppression._meta.db_table
OPT_OUT = CategoryOptOut._meta.db_table
DEVICE = DeviceToken._meta.db_table


@dataclass(frozen=True)
class Source:
    """SQL selecting ``member_id`` (optionally ``occurrence`` text and ``event`` JSON
    text) and its parameters."""

    sql: str
    params: tuple = ()
    has_occurrence: bool = False
    has_event: bool = False


@dataclass(frozen=True)
class Holdout:
    """A control group to leave out: members whose hash bucket is under the share."""

    salt: int
    share_percent: Decimal


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _address_sql(channel: str) -> tuple[str, str]:
    """(address, platform) expressions over member ``m``."""
    if channel in ("sms", "viber", "social"):
        return "m.phone", "''"
    if channel == "email":
        return "m.email", "''"
    token = (
        f"(SELECT d.{{col}} FROM {DEVICE} d WHERE d.member_id = m.id AND d.active"
        " ORDER BY d.registered_at DESC LIMIT 1)"
    )
    return f"COALESCE({token.format(col='token')}, '')", f"COALESCE({token.format(col='platform')}, '')"


def _status_field(channel: str) -> str | None:
    return {
        "sms": "phone_status",
        "viber": "phone_status",
        "social": "phone_status",
        "email": "email_status",
    }.get(channel)


def _holdout_sql(holdout: Holdout) -> tuple[str, list]:
    limit = int(Decimal(str(holdout.share_percent)) * 100)
    if limit <= 0:
        return "", []
    return "(((m.id + %s) * %s) %% %s) %% %s < %s", [holdout.salt, MULTIPLIER, PRIME, BUCKETS, limit]


@dataclass(frozen=True)
class Reach:
    """SQL that keeps the reachable members of ``src JOIN member m``: outer joins to
    consent, suppression and category opt-outs (hash joins, not a lookup per member), the
    conditions over them, and the control groups' conditions."""

    joins: str
    join_params: list
    conds: list[str]
    params: list
    held: list[str]
    held_params: list


def _reach(channel: str, purpose: str, category: str, holdouts: list[Holdout]) -> Reach:
    address, _platform = _address_sql(channel)
    joins: list[str] = []
    join_params: list[Any] = []
    conds = [f"{address} <> ''", "m.state <> 'blocked'"]
    params: list[Any] = []
    status_field = _status_field(channel)
    if status_field:
        conds.append(f"m.{status_field} <> 'invalid'")
    if purpose != Purpose.TRANSACTIONAL:
        joins.append(
            f"LEFT JOIN {CONSENT} cons ON cons.member_id = m.id AND cons.channel = %s AND cons.granted"
        )
        join_params.append(channel)
        conds.append("cons.member_id IS NOT NULL")
        joins.append(f"LEFT JOIN {SUPPRESSION} sup ON sup.channel = %s AND sup.address = {address}")
        join_params.append(channel)
        if category:
            joins.append(
                f"LEFT JOIN (SELECT DISTINCT o.member_id FROM {OPT_OUT} o"
                " JOIN communications_mailingcategory mc ON mc.id = o.category_id WHERE mc.code = %s) opt"
                " ON opt.member_id = m.id"
            )
            join_params.append(category)
            conds.append("opt.member_id IS NULL")
    else:
        joins.append(
            f"LEFT JOIN {SUPPRESSION} sup ON sup.channel = %s AND sup.address = {address}"
            " AND sup.reason NOT IN ('complaint', 'unsubscribed')"
        )
        join_params.append(channel)
    conds.append("sup.id IS NULL")
    held: list[str] = []
    held_params: list[Any] = []
    for holdout in holdouts:
        sql, p = _holdout_sql(holdout)
        if sql:
            held.append(sql)
            held_params += p
    return Reach(" ".join(joins), join_params, conds, params, held, held_params)


def marketing_holdouts(extra: list[Holdout] | None = None) -> list[Holdout]:
    """The global control group (when enabled) plus ``extra``."""
    from segments.models import GlobalControlGroup

    group = GlobalControlGroup.current()
    out = list(extra or [])
    if group.enabled:
        out.append(Holdout(group.salt, group.share_percent))
    return out


@dataclass
class Figures:
    audience: int = 0
    control: int = 0
    unreachable: int = 0
    reachable: int = 0


def audience_figures(
    *, source: Source, channel: str, purpose: str = Purpose.MARKETING, category: str = "", holdouts=()
) -> Figures:
    """How many members the source holds, how many the control groups keep back, and
    how many of the rest can be reached on ``channel`` (one query)."""
    r = _reach(channel, purpose, category, list(holdouts))
    held_expr = " OR ".join(r.held) if r.held else "1 = 0"
    reach = " AND ".join(r.conds)
    sql = f"""
        SELECT COUNT(*),
               SUM(CASE WHEN {held_expr} THEN 1 ELSE 0 END),
               SUM(CASE WHEN NOT ({held_expr}) AND {reach} THEN 1 ELSE 0 END)
        FROM ({source.sql}) src JOIN {MEMBER} m ON m.id = src.member_id {r.joins}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*r.held_params, *r.held_params, *r.params, *source.params, *r.join_params])
        total, control, reachable = cursor.fetchone()
    total, control, reachable = int(total or 0), int(control or 0), int(reachable or 0)
    return Figures(total, control, total - control - reachable, reachable)


def _zones_case(column: str, moment_for_zone, zones: list[str]) -> tuple[str, list]:
    """``CASE column WHEN zone THEN moment ... END`` with the default zone's moment last."""
    parts, params = [], []
    for zone in zones:
        parts.append("WHEN %s THEN %s")
        params += [zone, moment_for_zone(zone)]
    params.append(moment_for_zone(""))
    return f"CASE {column} {' '.join(parts)} ELSE %s END", params


def local_moment(day: dt.date, at: dt.time):
    """A function of a zone name giving ``day`` ``at`` in that zone (the program's zone
    for an empty or unknown name)."""

    def moment(zone: str) -> dt.datetime:
        try:
            tz = zoneinfo.ZoneInfo(zone or settings.TIME_ZONE)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        return dt.datetime.combine(day, at, tzinfo=tz)

    return moment


def member_zones() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT time_zone FROM {MEMBER} WHERE time_zone <> ''")
        return sorted(r[0] for r in cursor.fetchall())


def _param_dt(value: dt.datetime):
    """Datetimes as the backend stores them (SQLite keeps UTC text without an offset)."""
    if _postgres():
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


def messages_queue(
    *,
    source: Source,
    channel: str,
    template: MessageTemplate,
    origin: str,
    origin_id: int,
    occurrence: str = "",
    purpose: str = Purpose.MARKETING,
    category: str = "",
    gateway: Gateway | None = None,
    cascade: Cascade | None = None,
    holdouts: list[Holdout] | tuple = (),
    not_before: dt.datetime | None = None,
    local_send: tuple[dt.date, dt.time] | None = None,
    expires_at: dt.datetime | None = None,
    extra: dict[str, Any] | None = None,
    kick: bool = True,
) -> int:
    """Queue one message per reachable member of ``source`` (see the module docstring);
    returns how many rows were written. ``local_send`` sends at that date and time in
    each member's zone; otherwise at ``not_before`` (default now). The dispatcher is
    started after commit unless ``kick`` is false."""
    from communications.services.delivery import dispatch_soon
    from gateways.services import gateway_for_channel

    now = timezone.now()
    cascade_step_gateway = None
    if cascade is not None:
        first = cascade.steps.order_by("order").select_related("gateway").first()
        if first is None:
            raise ValueError("the cascade has no steps")
        channel, cascade_step_gateway = first.channel, first.gateway
    gateway = cascade_step_gateway or gateway or gateway_for_channel(channel)
    if gateway is None:
        raise ValueError(f"no enabled gateway for {channel}")
    r = _reach(channel, purpose, category, list(holdouts))
    address, platform = _address_sql(channel)
    pg = _postgres()
    uuid_expr = REF_NEW_SQL if pg else "lower(hex(randomblob(16)))"
    render_base = {
        "template": template.pk,
        **({"offer": extra["offer"]} if extra and "offer" in extra else {}),
    }
    event_base = (extra or {}).get("event", {})
    if source.has_event:
        render_sql = (
            "jsonb_build_object('template', %s::bigint, 'event', src.event::jsonb)"
            if pg
            else "json_object('template', %s, 'event', json(src.event))"
        )
        render_params: list[Any] = [template.pk]
    else:
        render_sql = "%s::jsonb" if pg else "%s"
        render_params = [json.dumps({**render_base, "event": event_base})]
    occurrence_sql, occurrence_params = (
        ("src.occurrence", []) if source.has_occurrence else ("%s", [occurrence])
    )
    if local_send is not None:
        when_sql, when_params = _zones_case("m.time_zone", local_moment(*local_send), member_zones())
        when_params = [_param_dt(w) if isinstance(w, dt.datetime) else w for w in when_params]
    else:
        when_sql, when_params = "%s", [_param_dt(not_before or now)]
    json_empty = "'{}'::jsonb" if pg else "'{}'"
    communication = uuid_expr if cascade is not None else "NULL"
    where = " AND ".join(r.conds + ([f"NOT ({' OR '.join(r.held)})"] if r.held else []))
    sql = f"""
        INSERT INTO {MESSAGE} (
            ref, member_id, channel, gateway_id, address, platform, content, render, purpose, category,
            origin, origin_id, occurrence, status, status_at, reason, attempts, next_attempt_at,
            possible_duplicate, expires_at, provider_message_id, segments, cost, communication,
            cascade_id, cascade_step, cascaded, fallback_content, created_at
        )
        SELECT {uuid_expr}, m.id, %s, %s, {address}, {platform}, {json_empty}, {render_sql}, %s, %s,
            %s, %s, {occurrence_sql}, %s, %s, '', 0, {when_sql},
            {"false" if pg else "0"}, %s, '', 0, 0, {communication},
            %s, 0, {"false" if pg else "0"}, {json_empty}, %s
        FROM ({source.sql}) src JOIN {MEMBER} m ON m.id = src.member_id {r.joins}
        WHERE {where}
        ON CONFLICT DO NOTHING
    """
    params = [
        channel, gateway.pk, *render_params, purpose, category,
        origin, origin_id, *occurrence_params, Status.QUEUED, _param_dt(now), *when_params,
        _param_dt(expires_at) if expires_at else None,
        cascade.pk if cascade else None, _param_dt(now),
        *source.params, *r.join_params, *r.params, *r.held_params,
    ]  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = max(cursor.rowcount, 0)
        if written and kick:
            dispatch_soon([gateway.pk], copies=min(4, 1 + written // 20_000))
    return written
