"""Mass mailings: the preliminary cost, launch, set-wise preparation, pause / resume /
cancel, the report and the calendar.

A launched mailing is prepared once (``mailing_prepare``): its audience (a target
audience, or a segment's snapshot) goes through ``recipients_write`` in one statement,
which leaves out the control groups and the members who cannot be reached and writes
one narrow recipient row per remaining member with the moment it is due. Messages are
written from the recipients a chunk at a time (``mailing_release``): the first chunk
right away, the rest as the dispatcher sends (it releases a batch before it claims
one) and every minute for recipients whose local time has come. A recipient row is
deleted in the transaction that writes its message, and the unique key of a message
(origin, mailing, member) makes a repeat harmless, so a member gets at most one message
per mailing. Pausing stops the release and moves queued messages out of the
dispatcher's reach; resuming never sends a member twice; cancelling deletes the
recipients left and cancels the queued messages. Messages are rendered when sent.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.translation import gettext as _

from communications.models import (
    Mailing,
    MailingRecipient,
    MailingStatus,
    Message,
    Origin,
    Purpose,
    Schedule,
    Status,
    Watcher,
)
from communications.services.bulk import (
    Figures,
    Holdout,
    Source,
    audience_figures,
    local_moment,
    marketing_holdouts,
    member_zones,
    messages_queue,
    recipients_write,
    route,
)
from communications.services.delivery import dispatch_soon, message_send, messages_cancel
from communications.templating import RenderError, render_for_member
from gateways.services import gateway_for_channel

# Paused messages wait here; resuming brings them back to now (or their local time).
PAUSED_UNTIL = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
SAMPLE_SIZE = 200
# Messages written from recipients at once: when the mailing is prepared, and each time
# the dispatcher or the minute's run tops its queue up.
RELEASE_CHUNK = 5000


# --- audience ------------------------------------------------------------------------------
def mailing_source(mailing: Mailing) -> Source:
    """The SQL of the mailing's audience: the target audience's members, or the
    segment's last snapshot (taken now if the segment has none)."""
    from segments.models import AudienceMember, SegmentMember
    from segments.services import segment_materialise

    if mailing.audience_id:
        return Source(
            f"SELECT member_id FROM {AudienceMember._meta.db_table} WHERE audience_id = %s",
            (mailing.audience_id,),
        )
    if mailing.segment_id:
        segment = mailing.segment
        if segment.refreshed_at is None:
            segment_materialise(segment)
            segment.refresh_from_db()
        return Source(
            f"SELECT member_id FROM {SegmentMember._meta.db_table} WHERE segment_id = %s AND generation = %s",
            (segment.pk, segment.generation),
        )
    raise ValidationError({"audience": _("Choose a target audience or a segment.")})


def mailing_holdouts(mailing: Mailing) -> list[Holdout]:
    own = [Holdout(salt=mailing.pk, share_percent=mailing.control_share)] if mailing.control_share else []
    return marketing_holdouts(own)


def mailing_channel(mailing: Mailing) -> str:
    if mailing.cascade_id:
        first = mailing.cascade.steps.order_by("order").first()
        return first.channel if first else mailing.channel
    return mailing.channel


def mailing_validate(mailing: Mailing, *, launching: bool = True) -> None:
    """Refuse a mailing that cannot be launched, naming the field (the back-office form
    runs the same checks with ``launching=False``: a draft may wait for its gateway)."""
    errors: dict[str, str] = {}
    if not (mailing.audience_id or mailing.segment_id):
        errors["audience"] = _("Choose a target audience or a segment.")
    if mailing.audience_id and mailing.segment_id:
        errors["segment"] = _("Choose either a target audience or a segment, not both.")
    template = mailing.template if mailing.template_id else None
    if template is None:
        errors["template"] = _("Choose a template.")
    elif not mailing.cascade_id and template.channel != mailing.channel:
        errors["template"] = _("The template is for %(channel)s.") % {
            "channel": template.get_channel_display()
        }
    if mailing.schedule == Schedule.AT and not mailing.send_at:
        errors["send_at"] = _("Set the time to send.")
    if mailing.schedule == Schedule.LOCAL and not mailing.local_date:
        errors["local_date"] = _("Set the local date to send.")
    if mailing.schedule == Schedule.LOCAL and not mailing.local_time:
        errors["local_time"] = _("Set the local time to send.")
    if mailing.gateway_id and mailing.gateway.channel != mailing.channel and not mailing.cascade_id:
        errors["gateway"] = _("The gateway sends %(channel)s.") % {
            "channel": mailing.gateway.get_channel_display()
        }
    if launching and not mailing.cascade_id and not (mailing.gateway or gateway_for_channel(mailing.channel)):
        errors["gateway"] = _("No enabled gateway sends this channel.")
    if errors:
        raise ValidationError(errors)


# --- preliminary cost -------------------------------------------------------------------------
def _sample_segments(mailing: Mailing, source: Source, gateway) -> Decimal:
    """The mean number of SMS segments of the message, rendered for a sample of the
    audience (1 for channels priced per message)."""
    from gateways.services import gateway_provider

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT member_id FROM ({source.sql}) s LIMIT {SAMPLE_SIZE}", source.params)
        ids = [r[0] for r in cursor.fetchall()]
    adapter = gateway_provider(gateway) if gateway else None
    if not ids or adapter is None:
        return Decimal(1)
    parts = mailing.template.parts()
    total = 0
    counted = 0
    for member_id in ids:
        try:
            content = render_for_member(parts, member_id)
        except RenderError:
            continue
        total += max(1, adapter.segments({"text": content.get("text", "")}))
        counted += 1
    return (Decimal(total) / counted).quantize(Decimal("0.01")) if counted else Decimal(1)


def mailing_estimate(*, mailing: Mailing) -> dict:
    """Who the mailing reaches and what it costs before launch: the audience, minus the
    control groups, minus members without consent, contact or with a suppressed address,
    times the gateway's price (per message, or per SMS segment of the message rendered
    for a sample of the audience). Saved on the mailing."""
    mailing_validate(mailing)
    source = mailing_source(mailing)
    channel = mailing_channel(mailing)
    category = mailing.category.code if mailing.category_id else ""
    figures: Figures = audience_figures(
        source=source,
        channel=channel,
        purpose=Purpose.MARKETING,
        category=category,
        holdouts=mailing_holdouts(mailing),
    )
    gateway = mailing.gateway or gateway_for_channel(channel)
    segments = Decimal(1)
    price = Decimal(0)
    if gateway is not None:
        if gateway.price_unit == "segment":
            segments = _sample_segments(mailing, source, gateway)
        price = gateway.price * (segments if gateway.price_unit == "segment" else 1)
    estimate = {
        "audience": figures.audience,
        "control": figures.control,
        "unreachable": figures.unreachable,
        "reachable": figures.reachable,
        "segments": str(segments),
        "price": str(price.quantize(Decimal("0.0001"))),
        "cost": str((price * figures.reachable).quantize(Decimal("0.01"))),
        "gateway": gateway.name if gateway else "",
        "at": timezone.now().isoformat(),
    }
    Mailing.objects.filter(pk=mailing.pk).update(estimate=estimate)
    mailing.estimate = estimate
    return estimate


# --- lifecycle -------------------------------------------------------------------------------
def _first_moment(mailing: Mailing) -> dt.datetime:
    """When the mailing's first messages are due."""
    if mailing.schedule == Schedule.AT:
        return mailing.send_at
    if mailing.schedule == Schedule.LOCAL:
        moment = local_moment(mailing.local_date, mailing.local_time)
        return min(moment(zone) for zone in [*member_zones(), ""])
    return timezone.now()


@transaction.atomic
def mailing_launch(*, mailing: Mailing) -> Mailing:
    """Launch a draft: prepare it now (after commit, on a worker) or schedule it."""
    from communications.tasks import mailing_prepare as prepare_task

    mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if mailing.status != MailingStatus.DRAFT:
        raise ValidationError(_("Only a draft can be launched."))
    mailing_validate(mailing)
    now = timezone.now()
    mailing.launched_at = now
    due = mailing.schedule == Schedule.NOW or _first_moment(mailing) <= now
    mailing.status = MailingStatus.PREPARING if due else MailingStatus.SCHEDULED
    mailing.save(update_fields=["status", "launched_at"])
    if due:
        transaction.on_commit(lambda: prepare_task.delay(mailing.pk))
    return mailing


def mailing_prepare(*, mailing: Mailing) -> dict:
    """Write the mailing's recipients and its first messages (once; see the module
    docstring)."""
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
        if mailing.status not in (MailingStatus.PREPARING, MailingStatus.SCHEDULED):
            return {"skipped": mailing.status}
        try:
            source = mailing_source(mailing)
            channel = mailing_channel(mailing)
            category = mailing.category.code if mailing.category_id else ""
            holdouts = mailing_holdouts(mailing)
            now = timezone.now()
            local = (mailing.local_date, mailing.local_time) if mailing.schedule == Schedule.LOCAL else None
            not_before = mailing.send_at if mailing.schedule == Schedule.AT else now
            last = (
                max(local_moment(*local)(z) for z in [*member_zones(), ""]) if local else max(not_before, now)
            )
            mailing_gateway(mailing)  # refused now, on the mailing, if nothing can send it
            written, figures = recipients_write(
                source=source,
                mailing_id=mailing.pk,
                channel=channel,
                purpose=Purpose.MARKETING,
                category=category,
                holdouts=holdouts,
                not_before=not_before,
                local_send=local,
            )
        except (ValidationError, ValueError) as exc:
            mailing.status = MailingStatus.DRAFT
            mailing.error = str(exc)[:500]
            mailing.save(update_fields=["status", "error"])
            return {"error": mailing.error}
        mailing.audience_count = figures.audience
        mailing.control_count = figures.control
        mailing.excluded_count = figures.unreachable
        mailing.prepared_count = written
        mailing.expires_at = last + dt.timedelta(hours=mailing.expires_hours)
        mailing.recipients_waiting = written > 0
        mailing.prepared_at = timezone.now()
        mailing.status = MailingStatus.SENDING
        mailing.error = ""
        mailing.save()
        queued = mailing_release(mailing=mailing, limit=RELEASE_CHUNK, now=now)
        if queued:
            dispatch_soon([mailing_gateway(mailing).pk], copies=min(4, 1 + written // 20_000))
    return {"audience": figures.audience, "control": figures.control, "prepared": written, "queued": queued}


def mailing_gateway(mailing: Mailing):
    """The gateway the mailing's messages go through (``ValueError`` when none can)."""
    return route(channel=mailing.channel, gateway=mailing.gateway, cascade=mailing.cascade)[1]


def mailing_release(*, mailing: Mailing, limit: int = RELEASE_CHUNK, now: dt.datetime | None = None) -> int:
    """Write the messages of up to ``limit`` recipients who are due and delete those
    recipients, in one transaction; recipients who can no longer be
    reached (consent withdrawn, address suppressed since the launch) get no message and
    count as unreachable. Concurrent releases take different recipients (``SKIP
    LOCKED``). Returns the messages written."""
    now = now or timezone.now()
    with transaction.atomic():
        due = (
            MailingRecipient.objects.select_for_update(skip_locked=True)
            .filter(mailing_id=mailing.pk, due_at__lte=now)
            .order_by("member_id")  # the primary key's order: no sort of what is left
        )
        ids = list(due.values_list("member_id", flat=True)[:limit])
        if not ids:
            if not MailingRecipient.objects.filter(mailing_id=mailing.pk).exists():
                Mailing.objects.filter(pk=mailing.pk).update(recipients_waiting=False)
            return 0
        chosen = MailingRecipient.objects.filter(mailing_id=mailing.pk, member_id__any=ids)
        sql, params = chosen.values("member_id", "due_at").query.sql_with_params()
        written = messages_queue(
            source=Source(sql, tuple(params), has_due=True),
            channel=mailing_channel(mailing),
            template=mailing.template,
            origin=Origin.MAILING,
            origin_id=mailing.pk,
            purpose=Purpose.MARKETING,
            category=mailing.category.code if mailing.category_id else "",
            gateway=mailing.gateway,
            cascade=mailing.cascade,
            expires_at=mailing.expires_at,
            kick=False,  # the caller starts the dispatcher, or is the dispatcher
        )
        chosen.delete()
        if dropped := len(ids) - written:
            Mailing.objects.filter(pk=mailing.pk).update(
                prepared_count=F("prepared_count") - dropped, excluded_count=F("excluded_count") + dropped
            )
    return written


def mailings_release(*, gateway, limit: int, now: dt.datetime | None = None) -> int:
    """Top up the queue of ``gateway`` from the recipients of the mailings it sends
    (the dispatcher calls this before each batch). Returns the messages written."""
    released = 0
    waiting = Mailing.objects.filter(status=MailingStatus.SENDING, recipients_waiting=True).order_by("pk")
    for mailing in waiting.select_related("template", "category", "cascade", "gateway"):
        try:
            if mailing_gateway(mailing).pk != gateway.pk:
                continue
        except ValueError:
            continue
        released += mailing_release(mailing=mailing, limit=limit - released, now=now)
        if released >= limit:
            break
    return released


def _waiting_recipients(mailing: Mailing) -> int:
    return MailingRecipient.objects.filter(mailing_id=mailing.pk).count()


def _queued(mailing: Mailing):
    return Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk, status=Status.QUEUED)


@transaction.atomic
def mailing_pause(*, mailing: Mailing) -> int:
    """Stop sending: queued messages wait until resumed (those already with a provider
    finish). Returns how many wait."""
    mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if mailing.status not in (MailingStatus.SENDING, MailingStatus.SCHEDULED, MailingStatus.PREPARING):
        raise ValidationError(_("Only a sending or scheduled mailing can be paused."))
    mailing.status = MailingStatus.PAUSED
    mailing.save(update_fields=["status"])
    return _queued(mailing).update(next_attempt_at=PAUSED_UNTIL) + _waiting_recipients(mailing)


@transaction.atomic
def mailing_resume(*, mailing: Mailing) -> int:
    """Go on where the pause stopped; members already sent to are not sent again (their
    messages are no longer queued)."""
    mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if mailing.status != MailingStatus.PAUSED:
        raise ValidationError(_("Only a paused mailing can be resumed."))
    if mailing.prepared_at is None:
        mailing.status = (
            MailingStatus.SCHEDULED if mailing.schedule != Schedule.NOW else MailingStatus.PREPARING
        )
        mailing.save(update_fields=["status"])
        if mailing.status == MailingStatus.PREPARING:
            from communications.tasks import mailing_prepare as prepare_task

            transaction.on_commit(lambda: prepare_task.delay(mailing.pk))
        return 0
    mailing.status = MailingStatus.SENDING
    mailing.save(update_fields=["status"])
    now = timezone.now()
    waiting = _queued(mailing).filter(next_attempt_at=PAUSED_UNTIL)
    if mailing.schedule == Schedule.LOCAL:
        moment = local_moment(mailing.local_date, mailing.local_time)
        moved = 0
        zones = member_zones()
        for zone in zones:
            moved += waiting.filter(member__time_zone=zone).update(next_attempt_at=max(moment(zone), now))
        moved += waiting.update(next_attempt_at=max(moment(""), now))
    else:
        moved = waiting.update(next_attempt_at=max(mailing.send_at or now, now))
    gateways = set(
        Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk, status=Status.QUEUED)
        .values_list("gateway_id", flat=True)
        .distinct()
    )
    if mailing.recipients_waiting:
        gateways.add(mailing_gateway(mailing).pk)
    dispatch_soon(gateways)
    return moved


@transaction.atomic
def mailing_cancel(*, mailing: Mailing) -> int:
    """Stop for good: messages not yet sent are cancelled."""
    mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
    if mailing.status in (MailingStatus.DONE, MailingStatus.CANCELLED):
        raise ValidationError(_("The mailing has already ended."))
    mailing.status = MailingStatus.CANCELLED
    mailing.finished_at = timezone.now()
    mailing.recipients_waiting = False
    mailing.save(update_fields=["status", "finished_at", "recipients_waiting"])
    never_written, _counts = MailingRecipient.objects.filter(mailing_id=mailing.pk).delete()
    ids = list(_queued(mailing).values_list("id", flat=True))
    return (messages_cancel(ids=ids, reason=_("mailing cancelled")) if ids else 0) + never_written


def mailings_start_due(*, now: dt.datetime | None = None) -> int:
    """Every minute: prepare scheduled mailings whose first moment has come, and mark
    sending ones done when nothing of theirs is waiting any more."""
    from communications.tasks import mailing_prepare as prepare_task

    now = now or timezone.now()
    started = 0
    for mailing in Mailing.objects.filter(status=MailingStatus.SCHEDULED):
        if _first_moment(mailing) <= now:
            Mailing.objects.filter(pk=mailing.pk, status=MailingStatus.SCHEDULED).update(
                status=MailingStatus.PREPARING
            )
            prepare_task.delay(mailing.pk)
            started += 1
    for mailing in Mailing.objects.filter(status=MailingStatus.SENDING):
        if mailing.recipients_waiting and mailing_release(mailing=mailing, now=now):
            dispatch_soon([mailing_gateway(mailing).pk])  # recipients whose local time has come
        mailing_finish_if_idle(mailing=mailing, now=now)
    return started


def mailing_finish_if_idle(*, mailing: Mailing, now: dt.datetime | None = None) -> bool:
    """Mark a sending mailing done once no recipient waits for a message and none of its
    messages is waiting or in flight."""
    if MailingRecipient.objects.filter(mailing_id=mailing.pk).exists():
        return False
    busy = Message.objects.filter(
        origin=Origin.MAILING,
        origin_id=mailing.pk,
        status__in=[Status.QUEUED, Status.SENDING, Status.FAILED_TEMPORARY, Status.CREATED],
    ).exists()
    if busy:
        return False
    done = Mailing.objects.filter(pk=mailing.pk, status=MailingStatus.SENDING).update(
        status=MailingStatus.DONE, finished_at=now or timezone.now()
    )
    if done:
        mailing.refresh_from_db()
    return bool(done)


# --- test sends ------------------------------------------------------------------------------
def template_test_send(*, template, member=None, watchers=None, extra: dict | None = None) -> list[Message]:
    """Render ``template`` with ``member``'s data (or the example values) and send it to
    each active watcher who has an address on the template's channel."""
    from communications.services.rendering import content_for_channel
    from communications.templating import metavariables, render_parts

    watchers = list(watchers if watchers is not None else Watcher.objects.filter(active=True))
    parts = template.parts()
    rendered = (
        render_for_member(parts, member.pk, extra)
        if member is not None
        else render_parts(parts, {**metavariables.examples(), **(extra or {})})
    )
    content = content_for_channel(template.channel, template.channel, rendered)
    sent = []
    for watcher in watchers:
        address = {
            "sms": watcher.phone,
            "viber": watcher.phone,
            "social": watcher.phone,
            "email": watcher.email,
        }.get(template.channel, watcher.push_token)
        if not address:
            continue
        sent.append(
            message_send(
                channel=template.channel,
                content=content,
                origin=Origin.TEST,
                address=address,
                purpose=Purpose.SERVICE,
                occurrence=f"template:{template.pk}:{timezone.now().timestamp()}:{watcher.pk}",
            )
        )
    return sent


# --- report and calendar ---------------------------------------------------------------------
def mailing_report(mailing: Mailing) -> dict:
    """Sent, delivered, opened, clicked, failed by reason, complaints, unsubscribes and
    cost, plus sends and deliveries by hour."""
    messages = Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk)
    by_status = dict(messages.values_list("status").annotate(n=Count("id")).order_by())
    totals = messages.aggregate(
        total=Count("id"),
        sent=Count("id", filter=Q(sent_at__isnull=False)),
        delivered=Count("id", filter=Q(delivered_at__isnull=False)),
        opened=Count("id", filter=Q(opened_at__isnull=False)),
        clicked=Count("id", filter=Q(clicked_at__isnull=False)),
        unsubscribed=Count("id", filter=Q(unsubscribed_at__isnull=False)),
        complained=Count("id", filter=Q(complained_at__isnull=False)),
        cost=Sum("cost"),
        first_sent=Min("sent_at"),
    )
    failed_statuses = [
        Status.FAILED,
        Status.UNDELIVERABLE,
        Status.REJECTED,
        Status.SUPPRESSED,
        Status.EXPIRED,
    ]
    reasons = list(
        messages.filter(status__in=failed_statuses)
        .values("status", "reason")
        .annotate(n=Count("id"))
        .order_by("-n")[:20]
    )
    timeline: dict[dt.datetime, dict[str, int]] = defaultdict(lambda: {"sent": 0, "delivered": 0})
    for row in (
        messages.filter(sent_at__isnull=False)
        .annotate(h=TruncHour("sent_at"))
        .values("h")
        .annotate(n=Count("id"))
    ):
        timeline[row["h"]]["sent"] = row["n"]
    for row in (
        messages.filter(delivered_at__isnull=False)
        .annotate(h=TruncHour("delivered_at"))
        .values("h")
        .annotate(n=Count("id"))
    ):
        timeline[row["h"]]["delivered"] = row["n"]
    unwritten = _waiting_recipients(mailing)  # recipients whose message is not written yet
    waiting = unwritten + sum(
        by_status.get(s, 0) for s in (Status.QUEUED, Status.SENDING, Status.FAILED_TEMPORARY, Status.CREATED)
    )
    sent = totals["sent"] or 0
    planned = totals["total"] + unwritten

    def share(n: int) -> str:
        return f"{100 * n / sent:.1f}" if sent else "0"

    return {
        **totals,
        "cost": totals["cost"] or Decimal(0),
        "waiting": waiting,
        "by_status": by_status,
        "failed": sum(by_status.get(s, 0) for s in failed_statuses),
        "reasons": reasons,
        "timeline": sorted(timeline.items()),
        "progress": round(100 * (planned - waiting) / planned) if planned else 0,
        "rates": {
            "delivered": share(totals["delivered"]),
            "opened": share(totals["opened"]),
            "clicked": share(totals["clicked"]),
            "unsubscribed": share(totals["unsubscribed"]),
        },
    }


def mailing_calendar(*, year: int, month: int) -> dict[dt.date, list[dict]]:
    """Mailings by day of the month: planned ones on their send date with the estimated
    volume, launched ones on the day they started with the messages written."""
    tz = timezone.get_current_timezone()
    first = dt.date(year, month, 1)
    after = (first + dt.timedelta(days=32)).replace(day=1)
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz) - dt.timedelta(days=1)
    end = dt.datetime.combine(after, dt.time(), tzinfo=tz) + dt.timedelta(days=1)
    days: dict[dt.date, list[dict]] = defaultdict(list)
    mailings = Mailing.objects.filter(
        Q(send_at__range=(start, end))
        | Q(local_date__range=(first, after))
        | Q(launched_at__range=(start, end))
        | Q(status=MailingStatus.DRAFT, created_at__range=(start, end))
    ).exclude(status=MailingStatus.CANCELLED)
    for m in mailings:
        if m.launched_at and m.status not in (MailingStatus.SCHEDULED,):
            day = timezone.localtime(m.prepared_at or m.launched_at, tz).date()
            volume, planned = m.prepared_count, False
        elif m.schedule == Schedule.LOCAL and m.local_date:
            day, volume, planned = m.local_date, int(m.estimate.get("reachable", 0)), True
        elif m.send_at:
            day, volume, planned = (
                timezone.localtime(m.send_at, tz).date(),
                int(m.estimate.get("reachable", 0)),
                True,
            )
        else:
            continue
        if first <= day < after:
            days[day].append({"mailing": m, "volume": volume, "planned": planned})
    return dict(days)
