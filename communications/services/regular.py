"""Regular notifications: the birthday greeting, the bonus burnout notice and the bonus
activation notice, run by Celery beat every quarter of an hour (``regular_run``).

Each run works set-wise over all members, whatever their number: the members' distinct
time zones are listed (a few dozen rows), each zone's local date and time is worked out
here, and the zones whose local time has reached the task's ``send_time`` today go into
the SQL as a small table joined to the members. One statement then finds everyone the
occasion concerns, and one ``INSERT ... SELECT`` per channel queues their messages
(``communications.services.bulk.messages_queue``). Nothing loops over members in Python.

Occasions, and what makes each happen once:

* birthday: members whose birthday is ``days_before`` days after their local today (a
  29 February birthday counts on 28 February in other years). The occurrence is the
  birthday's year, so a member is greeted once a year; the birthday bonuses carry the
  key ``birthday:<year>:<member id>``, so they are accrued once a year, also to members
  who cannot be reached. The greeting goes out whether or not the member has bonuses.
* burnout: members whose available bonuses (what is left in their lots now, so spent
  points do not count) expiring by the end of the local day ``days_before`` days ahead
  total at least ``min_amount``. The occurrence is the local date of the earliest of
  them, so each expiry date is announced once.
* activation: the same over pending bonuses and their activation date.

A notice names its own figures through ``event``: ``event.amount`` (the bonuses
concerned; the birthday bonuses for a greeting), ``event.date`` (the earliest expiry or
activation date; the birthday) and ``event.days`` (days from the member's today to it).

Channels: each member gets the first channel of ``task.channels`` that has a template
and an enabled gateway and on which the member can be reached. The channels are queued in
that order, each source leaving out members who already have a message of this task and
occurrence (on any channel, from this run or an earlier one), so nobody gets two.

Purposes: the birthday greeting is marketing (consent, the global control group and
frequency caps apply); the burnout and activation notices are service messages about the
member's own account (consent applies, control groups and frequency caps do not). Quiet
hours apply to all three when the dispatcher sends them.

Idempotency and locking: a task runs in one transaction holding its row's lock (other
runs of the same task skip it meanwhile), so a crash leaves nothing half done; what a
committed run did is never repeated, because messages are unique per (task, occurrence,
member) and accruals per key.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from communications.models import Message, MessageTemplate, Origin, Purpose, RegularKind, RegularTask
from communications.services.bulk import Source, marketing_holdouts, member_zones, messages_queue
from communications.templating import amount_text, date_text
from loyalty.models import BonusAccount, LotRemainder, Member, SourceType
from loyalty.services import ledger

MEMBER = Member._meta.db_table
ACCOUNT = BonusAccount._meta.db_table
REMAINDER = LotRemainder._meta.db_table
MESSAGE = Message._meta.db_table


@dataclass(frozen=True)
class Zone:
    """One value of ``Member.time_zone`` as it stands at the moment of the run."""

    value: str  # as stored on members ('' when unknown)
    name: str  # the zone used for it (the program's zone for an empty or unknown value)
    local: dt.datetime

    @property
    def today(self) -> dt.date:
        return self.local.date()

    def midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=zoneinfo.ZoneInfo(self.name))


@dataclass(frozen=True)
class Candidates:
    """SQL selecting ``member_id``, ``occurrence`` and ``event`` (JSON text) of the members
    an occasion concerns now."""

    sql: str
    params: tuple


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _materialized() -> str:
    """Makes PostgreSQL compute a CTE once rather than inline it into the query."""
    return "MATERIALIZED " if _postgres() else ""


@functools.cache
def _zone_names_postgres() -> frozenset[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT name FROM pg_timezone_names")
        return frozenset(row[0] for row in cur.fetchall())


def _zone_name(value: str) -> str:
    try:
        name = str(zoneinfo.ZoneInfo(value).key) if value else settings.TIME_ZONE
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return settings.TIME_ZONE
    if _postgres() and name not in _zone_names_postgres():
        return settings.TIME_ZONE
    return name


def zones_due(*, now: dt.datetime, send_time: dt.time) -> list[Zone]:
    """The members' time zones in which ``send_time`` has come today at ``now``."""
    out = []
    for value in ["", *member_zones()]:
        name = _zone_name(value)
        local = now.astimezone(zoneinfo.ZoneInfo(name))
        if local.time().replace(tzinfo=None) >= send_time:
            out.append(Zone(value, name, local))
    return out


def _values_sql(rows: list[tuple], types: list[tuple[str, str]]) -> tuple[str, list]:
    """A derived table of literal rows, with named and (on PostgreSQL) typed columns."""
    params = [value for row in rows for value in row]
    if _postgres():
        row = "(" + ", ".join(f"%s::{pg_type}" for _name, pg_type in types) + ")"
        names = ", ".join(name for name, _type in types)
        return f"SELECT * FROM (VALUES {', '.join([row] * len(rows))}) AS v({names})", params
    row = "(" + ", ".join(["%s"] * len(types)) + ")"
    names = ", ".join(f"column{i + 1} AS {name}" for i, (name, _type) in enumerate(types))
    return f"SELECT {names} FROM (VALUES {', '.join([row] * len(rows))})", params


def _when(value: dt.datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _local_date_sql(moment: str, zone: str) -> str:
    """ISO text of the date of ``moment`` in the zone named by ``zone``."""
    if _postgres():
        return f"(({moment} AT TIME ZONE {zone})::date)::text"
    return f"django_datetime_cast_date({moment}, {zone}, '{connection.timezone_name}')"


def _days_between_sql(later: str, earlier: str) -> str:
    if _postgres():
        return f"({later}::date - {earlier}::date)"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def _amount_text_sql(total: str) -> str:
    """``templating.amount_text`` in SQL: 120, 120.5."""
    if _postgres():
        return f"trim_scale({total})::text"
    return (
        f"CASE WHEN {total} = CAST({total} AS INTEGER) THEN CAST(CAST({total} AS INTEGER) AS TEXT) "
        f"ELSE CAST(ROUND({total}, 2) AS TEXT) END"
    )


def _json_sql(pairs: list[tuple[str, str]]) -> str:
    fn = "json_build_object" if _postgres() else "json_object"
    body = ", ".join(f"'{key}', {expr}" for key, expr in pairs)
    return f"{fn}({body})::text" if _postgres() else f"{fn}({body})"


def _dates_text_sql(iso: str, days: Iterable[dt.date]) -> tuple[str, list]:
    """``templating.date_text`` of an ISO date text, as a CASE over the dates it can be."""
    whens, params = [], []
    for day in sorted(set(days)):
        whens.append("WHEN %s THEN %s")
        params += [day.isoformat(), date_text(day)]
    return f"CASE {iso} {' '.join(whens)} ELSE {iso} END", params


# --- the occasions ----------------------------------------------------------------------------


def _birthday(task: RegularTask, zones: list[Zone], now: dt.datetime) -> Candidates:
    """Members whose birthday is ``days_before`` days after their local today."""
    rows = []
    bonus = amount_text(task.bonus_amount) if task.bonus_amount > 0 else ""
    expires = ""
    if task.bonus_amount > 0 and task.bonus_lifetime_days:
        expires = date_text(now + dt.timedelta(days=task.bonus_lifetime_days))
    for zone in zones:
        day = zone.today + dt.timedelta(days=task.days_before)
        event = json.dumps(
            {"date": date_text(day), "days": task.days_before, "amount": bonus, "expires": expires}
        )
        month_days = [day.strftime("%m-%d")]
        if month_days == ["02-28"] and not _leap(day.year):
            month_days.append("02-29")
        rows += [(zone.value, month_day, str(day.year), event) for month_day in month_days]
    table, params = _values_sql(rows, [("zone", "text"), ("md", "text"), ("year", "text"), ("event", "text")])
    month_day_sql = "to_char(m.birth_date, 'MM-DD')" if _postgres() else "strftime('%%m-%%d', m.birth_date)"
    days = sorted({row[1] for row in rows})
    # The members are picked by a constant test first, so the zones are joined to a few
    # thousand rows whatever plan the database chooses for the join.
    sql = (
        f"WITH born AS {_materialized()}(SELECT m.id, m.time_zone, {month_day_sql} AS md FROM {MEMBER} m "
        f"WHERE m.birth_date IS NOT NULL AND m.state <> 'blocked' "
        f"AND {month_day_sql} IN ({', '.join(['%s'] * len(days))})) "
        f"SELECT born.id AS member_id, z.year AS occurrence, z.event AS event "
        f"FROM born JOIN ({table}) z ON z.zone = born.time_zone AND z.md = born.md"
    )
    params = [*days, *params]
    return Candidates(sql, tuple(params))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _lots_ahead(
    task: RegularTask, zones: list[Zone], now: dt.datetime, *, moment: str, amount: str
) -> Candidates:
    """Members whose lot remainders with ``amount`` > 0 and ``moment`` from now to the end
    of the local day ``days_before`` days ahead total at least ``min_amount``; the
    occurrence is the local date of the earliest such moment."""
    rows, horizons, days = [], [], set()
    for zone in zones:
        horizon = zone.midnight(zone.today + dt.timedelta(days=task.days_before + 1))
        horizons.append(horizon)
        days |= {zone.today + dt.timedelta(days=i) for i in range(task.days_before + 1)}
        rows.append((zone.value, zone.name, zone.today.isoformat(), _when(horizon)))
    table, zone_params = _values_sql(
        rows, [("zone", "text"), ("tz", "text"), ("today", "text"), ("horizon", "timestamptz")]
    )
    currency_sql, currency_params = (
        ("AND a.currency_id = %s", [task.currency_id]) if task.currency_id else ("", [])
    )
    # The lots in the widest window first, then the zones joined to them (see _birthday).
    lots = (
        f"WITH lots AS {_materialized()}(SELECT a.member_id, m.time_zone, r.{moment} AS moment, "
        f"r.{amount} AS amount FROM {REMAINDER} r JOIN {ACCOUNT} a ON a.id = r.account_id "
        f"JOIN {MEMBER} m ON m.id = a.member_id "
        f"WHERE r.{amount} > 0 AND r.{moment} > %s AND r.{moment} < %s "
        f"AND m.state <> 'blocked' {currency_sql}) "
    )
    lots_params = [_when(now), _when(max(horizons)), *currency_params]
    grouped = (
        "SELECT l.member_id AS member_id, z.tz AS tz, z.today AS today, "
        "MIN(l.moment) AS first, SUM(l.amount) AS total "
        f"FROM lots l JOIN ({table}) z ON z.zone = l.time_zone WHERE l.moment < z.horizon "
        "GROUP BY l.member_id, z.tz, z.today HAVING SUM(l.amount) >= CAST(%s AS NUMERIC)"
    )
    grouped_params = [*zone_params, task.min_amount]
    dated = f"SELECT g.*, {_local_date_sql('g.first', 'g.tz')} AS occurrence FROM ({grouped}) g"
    date_sql, date_params = _dates_text_sql("d.occurrence", days)
    event = _json_sql(
        [
            ("amount", _amount_text_sql("d.total")),
            ("date", date_sql),
            ("days", _days_between_sql("d.occurrence", "d.today")),
        ]
    )
    sql = f"{lots}SELECT d.member_id AS member_id, d.occurrence AS occurrence, {event} AS event "
    sql += f"FROM ({dated}) d"
    return Candidates(sql, tuple([*lots_params, *date_params, *grouped_params]))


def _burnout(task: RegularTask, zones: list[Zone], now: dt.datetime) -> Candidates:
    return _lots_ahead(task, zones, now, moment="expires_at", amount="available")


def _activation(task: RegularTask, zones: list[Zone], now: dt.datetime) -> Candidates:
    return _lots_ahead(task, zones, now, moment="activates_at", amount="pending")


OCCASIONS: dict[str, tuple[Callable[[RegularTask, list[Zone], dt.datetime], Candidates], str]] = {
    RegularKind.BIRTHDAY: (_birthday, Purpose.MARKETING),
    RegularKind.BURNOUT: (_burnout, Purpose.SERVICE),
    RegularKind.ACTIVATION: (_activation, Purpose.SERVICE),
}


# --- running ----------------------------------------------------------------------------------


CANDIDATES_TABLE = "regular_candidates"


def _materialize(candidates: Candidates) -> Candidates:
    """Write the candidates once into a temporary table of this connection (the
    statements that follow read it several times; the table goes at commit)."""
    pg = _postgres()
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {CANDIDATES_TABLE}")
        cur.execute(
            f"CREATE TEMPORARY TABLE {CANDIDATES_TABLE} "
            f"(member_id bigint, occurrence varchar(64), event text){' ON COMMIT DROP' if pg else ''}"
        )
        cur.execute(
            f"INSERT INTO {CANDIDATES_TABLE} (member_id, occurrence, event) "
            f"SELECT c.member_id, c.occurrence, c.event FROM ({candidates.sql}) c",
            candidates.params,
        )
        if pg:
            cur.execute(f"ANALYZE {CANDIDATES_TABLE}")
    return Candidates(f"SELECT member_id, occurrence, event FROM {CANDIDATES_TABLE}", ())


def _not_yet_notified(task: RegularTask, candidates: Candidates) -> Source:
    sql = (
        f"SELECT c.member_id, c.occurrence, c.event FROM ({candidates.sql}) c "
        f"WHERE NOT EXISTS (SELECT 1 FROM {MESSAGE} x WHERE x.origin = %s AND x.origin_id = %s "
        "AND x.occurrence = c.occurrence AND x.member_id = c.member_id)"
    )
    return Source(sql, (*candidates.params, Origin.REGULAR, task.pk), has_occurrence=True, has_event=True)


def _birthday_bonuses(task: RegularTask, candidates: Candidates, now: dt.datetime) -> int:
    if task.bonus_amount <= 0:
        return 0
    currency = task.bonus_currency or ledger.currency_default()
    expires_at = now + dt.timedelta(days=task.bonus_lifetime_days) if task.bonus_lifetime_days else None
    return ledger.bonus_accrue_bulk(
        members_sql=(
            "SELECT c.member_id AS member_id, 'birthday:' || c.occurrence || ':' || c.member_id "
            f"AS idempotency_key FROM ({candidates.sql}) c"
        ),
        params=candidates.params,
        currency=currency,
        amount=task.bonus_amount,
        source=ledger.Source(type=SourceType.REGULAR_TASK, id=str(task.pk), label=str(task)),
        expires_at=expires_at,
        at=now,
    )


def _templates(task: RegularTask) -> dict[str, MessageTemplate]:
    out: dict[str, MessageTemplate] = {}
    for template in task.templates.order_by("pk"):
        out.setdefault(template.channel, template)
    return out


def regular_task_run(*, task: RegularTask, now: dt.datetime | None = None) -> dict:
    """Run one task now (see the module docstring) and record its figures on the task:
    members the occasion concerns (``found``), of them not notified before (``new``),
    messages queued per channel, channels left out and why, bonuses accrued."""
    from gateways.services import gateway_for_channel

    now = now or timezone.now()
    with transaction.atomic():
        task = RegularTask.objects.select_for_update(skip_locked=True).filter(pk=task.pk).first()
        if task is None:
            return {"skipped": "running"}
        find, purpose = OCCASIONS[task.kind]
        zones = zones_due(now=now, send_time=task.send_time)
        figures: dict = {"at": now.isoformat(), "zones": len(zones), "found": 0, "new": 0, "queued": {}}
        if zones:
            candidates = _materialize(find(task, zones, now))
            if task.kind == RegularKind.BIRTHDAY:
                figures["accrued"] = _birthday_bonuses(task, candidates, now)
            source = _not_yet_notified(task, candidates)
            with connection.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM ({candidates.sql}) c", candidates.params)
                figures["found"] = cur.fetchone()[0]
                cur.execute(f"SELECT COUNT(*) FROM ({source.sql}) s", source.params)
                figures["new"] = cur.fetchone()[0]
            templates = _templates(task)
            usable, left_out = [], {}
            for channel in task.channels:
                if channel not in templates:
                    left_out[channel] = "no template"
                elif gateway_for_channel(channel) is None:
                    left_out[channel] = "no gateway"
                else:
                    usable.append(channel)
            if left_out:
                figures["left_out"] = left_out
            holdouts = marketing_holdouts() if purpose == Purpose.MARKETING else []
            waiting = figures["new"]
            for channel in usable:
                if not waiting:
                    break
                queued = messages_queue(
                    source=source,
                    channel=channel,
                    template=templates[channel],
                    origin=Origin.REGULAR,
                    origin_id=task.pk,
                    purpose=purpose,
                    category=task.category.code if task.category_id else "",
                    holdouts=holdouts,
                    not_before=now,
                )
                figures["queued"][channel] = queued
                waiting -= queued
            with connection.cursor() as cur:
                cur.execute(f"DROP TABLE {CANDIDATES_TABLE}")
        RegularTask.objects.filter(pk=task.pk).update(last_run_at=now, last_run=figures)
    return figures


def regular_run(*, now: dt.datetime | None = None, kinds: Iterable[str] | None = None) -> dict:
    """Run the enabled regular notifications (only those of ``kinds`` when given);
    returns each kind's figures. A task that is switched off is reported, not run."""
    now = now or timezone.now()
    tasks = (
        RegularTask.objects.filter(kind__in=list(kinds))
        if kinds is not None
        else RegularTask.objects.filter(enabled=True)
    )
    out = {}
    for task in tasks.order_by("kind"):
        out[task.kind] = regular_task_run(task=task, now=now) if task.enabled else {"skipped": "disabled"}
    return out
