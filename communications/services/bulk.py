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

A mailing first writes *recipients* the same way (``recipients_write``: one narrow
row per reachable member, which is what makes preparing a million-member mailing take
seconds), and its messages are then written from them a chunk at a time.

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
    MailingRecipient,
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
RECIPIENT = MailingRecipient._meta.db_table


@dataclass(frozen=True)
class Source:
    """SQL selecting ``member_id`` (optionally ``occurrence`` text, ``event`` JSON text
    and ``due_at``) and its parameters."""

    sql: str
    params: tuple = ()
    has_occurrence: bool = False
    has_event: bool = False
    has_due: bool = False  # a ``due_at`` column: when each member's message is due


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
class _Check:
    """A row that must (or must not) exist for a member to be reachable: ``source`` (a
    table or subquery) as ``alias``, matched to member ``m`` by ``on``; ``key`` is a
    column that is never null in a matching row."""

    alias: str
    source: str
    on: str
    params: tuple
    must_exist: bool
    key: str = "id"

    def exists_sql(self) -> str:
        negation = "" if self.must_exist else "NOT "
        return f"{negation}EXISTS (SELECT 1 FROM {self.source} {self.alias} WHERE {self.on})"

    def join_sql(self) -> str:
        return f"LEFT JOIN {self.source} {self.alias} ON {self.on}"

    def joined_sql(self) -> str:
        return f"{self.alias}.{self.key} IS {'NOT ' if self.must_exist else ''}NULL"


@dataclass(frozen=True)
class Reach:
    """Who can be reached among ``src JOIN member m``: conditions on the member row,
    rows that must or must not exist (consent, suppression, category opt-out), and the
    control groups' conditions."""

    conds: list[str]
    checks: list[_Check]
    held: list[str]
    held_params: list

    def where(self) -> tuple[str, list]:
        """For writing messages: semi- and anti-joins (``[NOT] EXISTS``)."""
        params: list[Any] = []
        for check in self.checks:
            params += check.params
        held = [f"NOT ({' OR '.join(self.held)})"] if self.held else []
        sql = " AND ".join([*self.conds, *(c.exists_sql() for c in self.checks), *held])
        return sql, [*params, *self.held_params]

    def joins(self) -> tuple[str, list, str]:
        """For counting each member once whatever the outcome: outer joins and the
        condition over them (joins' SQL, its parameters, the reachable condition)."""
        params: list[Any] = []
        for check in self.checks:
            params += check.params
        joins = " ".join(c.join_sql() for c in self.checks)
        return joins, params, " AND ".join([*self.conds, *(c.joined_sql() for c in self.checks)])


def _reach(channel: str, purpose: str, category: str, holdouts: list[Holdout]) -> Reach:
    address, _platform = _address_sql(channel)
    conds = [f"{address} <> ''", "m.state <> 'blocked'"]
    status_field = _status_field(channel)
    if status_field:
        conds.append(f"m.{status_field} <> 'invalid'")
    suppressed = f"sup.channel = %s AND sup.address = {address}"
    if purpose != Purpose.TRANSACTIONAL:
        checks = [
            _Check(
                "cons",
                CONSENT,
                "cons.member_id = m.id AND cons.channel = %s AND cons.granted",
                (channel,),
                True,
            ),
            _Check("sup", SUPPRESSION, suppressed, (channel,), False),
        ]
        if category:
            opted_out = (
                f"(SELECT DISTINCT o.member_id FROM {OPT_OUT} o JOIN communications_mailingcategory mc"
                " ON mc.id = o.category_id WHERE mc.code = %s)"
            )
            checks.append(_Check("opt", opted_out, "opt.member_id = m.id", (category,), False, "member_id"))
    else:  # transactional: only hard failures stop it, not marketing opt-outs
        only_hard = " AND sup.reason NOT IN ('complaint', 'unsubscribed')"
        checks = [_Check("sup", SUPPRESSION, suppressed + only_hard, (channel,), False)]
    held: list[str] = []
    held_params: list[Any] = []
    for holdout in holdouts:
        sql, p = _holdout_sql(holdout)
        if sql:
            held.append(sql)
            held_params += p
    return Reach(conds, checks, held, held_params)


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
    joins, join_params, reach = r.joins()
    sql = f"""
        SELECT COUNT(*),
               SUM(CASE WHEN {held_expr} THEN 1 ELSE 0 END),
               SUM(CASE WHEN NOT ({held_expr}) AND {reach} THEN 1 ELSE 0 END)
        FROM ({source.sql}) src JOIN {MEMBER} m ON m.id = src.member_id {joins}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*r.held_params, *r.held_params, *source.params, *join_params])
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


def _when_sql(
    source: Source,
    local_send: tuple[dt.date, dt.time] | None,
    not_before: dt.datetime | None,
    now: dt.datetime,
) -> tuple[str, list]:
    """When each member's message is due: the source's own ``due_at``, the local date
    and time in each member's zone, or ``not_before`` (default now)."""
    if source.has_due:
        return "src.due_at", []
    if local_send is not None:
        when_sql, when_params = _zones_case("m.time_zone", local_moment(*local_send), member_zones())
        return when_sql, [_param_dt(w) if isinstance(w, dt.datetime) else w for w in when_params]
    return "%s", [_param_dt(not_before or now)]


def recipients_write(
    *,
    source: Source,
    mailing_id: int,
    channel: str,
    purpose: str = Purpose.MARKETING,
    category: str = "",
    holdouts: list[Holdout] | tuple = (),
    not_before: dt.datetime | None = None,
    local_send: tuple[dt.date, dt.time] | None = None,
) -> tuple[int, Figures]:
    """Write a mailing's recipients (``MailingRecipient``): the reachable members of
    ``source`` outside the control groups, each with the moment it is due; a repeat adds
    nothing. Returns the rows written and the audience's figures (as
    ``audience_figures`` counts them).

    On PostgreSQL one statement does both: the audience is joined to members, consent,
    suppression and opt-outs once, counted, and its reachable part inserted. A mailing's
    first write skips the conflict check, which costs a speculative insert per row (its
    sources hold each member once)."""
    holdouts = list(holdouts)
    r = _reach(channel, purpose, category, holdouts)
    when_sql, when_params = _when_sql(source, local_send, not_before, timezone.now())
    first = not MailingRecipient.objects.filter(mailing_id=mailing_id).exists()
    on_conflict = "" if first else "ON CONFLICT DO NOTHING"
    with transaction.atomic(), connection.cursor() as cursor:
        if _postgres():
            joins, join_params, reach = r.joins()
            held = " OR ".join(r.held) if r.held else "false"
            cursor.execute("SET LOCAL work_mem = '64MB'")  # the audience kept in memory once
            cursor.execute(
                f"""
                WITH audience AS MATERIALIZED (
                    SELECT m.id AS member_id, ({held}) AS held, ({reach}) AS reach, {when_sql} AS due_at
                    FROM ({source.sql}) src JOIN {MEMBER} m ON m.id = src.member_id {joins}
                ), written AS (
                    INSERT INTO {RECIPIENT} (mailing_id, member_id, due_at)
                    SELECT %s, member_id, due_at FROM audience WHERE reach AND NOT held
                    {on_conflict}
                    RETURNING 1
                )
                SELECT COUNT(*), COUNT(*) FILTER (WHERE held), COUNT(*) FILTER (WHERE reach AND NOT held),
                       (SELECT COUNT(*) FROM written)
                FROM audience
                """,
                [*r.held_params, *when_params, *source.params, *join_params, mailing_id],
            )
            total, control, reachable, written = cursor.fetchone()
            figures = Figures(total, control, total - control - reachable, reachable)
            if written >= 10_000:
                # Statistics for the rows just loaded, so releasing takes them in key order
                # from the index rather than sorting every one left each time.
                cursor.execute(f"ANALYZE {RECIPIENT}")
            return written, figures
        figures = audience_figures(
            source=source, channel=channel, purpose=purpose, category=category, holdouts=holdouts
        )
        where, where_params = r.where()
        cursor.execute(
            f"""
            INSERT INTO {RECIPIENT} (mailing_id, member_id, due_at)
            SELECT %s, m.id, {when_sql}
            FROM ({source.sql}) src JOIN {MEMBER} m ON m.id = src.member_id
            WHERE {where}
            {on_conflict}
            """,
            [mailing_id, *when_params, *source.params, *where_params],
        )
        return max(cursor.rowcount, 0), figures


def route(
    *, channel: str, gateway: Gateway | None = None, cascade: Cascade | None = None
) -> tuple[str, Gateway]:
    """The channel and gateway messages go out on: a cascade's first step's, else the
    given gateway, else the channel's default; ``ValueError`` when there is none."""
    from gateways.services import gateway_for_channel

    step_gateway = None
    if cascade is not None:
        first = cascade.steps.order_by("order").select_related("gateway").first()
        if first is None:
            raise ValueError("the cascade has no steps")
        channel, step_gateway = first.channel, first.gateway
    gateway = step_gateway or gateway or gateway_for_channel(channel)
    if gateway is None:
        raise ValueError(f"no enabled gateway for {channel}")
    return channel, gateway


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

    now = timezone.now()
    channel, gateway = route(channel=channel, gateway=gateway, cascade=cascade)
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
    when_sql, when_params = _when_sql(source, local_send, not_before, now)
    json_empty = "'{}'::jsonb" if pg else "'{}'"
    communication = uuid_expr if cascade is not None else "NULL"
    where, where_params = r.where()
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
        FROM ({source.sql}) src JOIN {MEMBER} m ON m.id = src.member_id
        WHERE {where}
        ON CONFLICT DO NOTHING
    """
    params = [
        channel, gateway.pk, *render_params, purpose, category,
        origin, origin_id, *occurrence_params, Status.QUEUED, _param_dt(now), *when_params,
        _param_dt(expires_at) if expires_at else None,
        cascade.pk if cascade else None, _param_dt(now),
        *source.params, *where_params,
    ]  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = max(cursor.rowcount, 0)
        if written and kick:
            dispatch_soon([gateway.pk], copies=min(4, 1 + written // 20_000))
    return written
