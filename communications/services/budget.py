"""The contact budget, applied to each claimed batch so every sender obeys it.

For a batch it answers, set-wise (a handful of queries whatever the batch size), which
messages go now, which are suppressed and why, and which wait for the end of the
member's quiet hours:

* consent on the channel (marketing and service messages; transactional ones such as
  login codes need none);
* a contact to send to, not marked invalid, and not on the suppression list (hard
  bounces and invalid numbers stop everything, complaints and unsubscribes stop
  marketing and service messages);
* quiet hours in the member's time zone (default 21:00–09:00 for SMS, Viber and push;
  transactional messages are exempt): deferred to the end of the quiet hours, not dropped;
* the member's opt-out of the message's mailing category (marketing and service);
* frequency caps per member and channel, a day (the last 24 hours) and a week (the last
  7 days), counting marketing messages sent, marketing only.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils.translation import gettext as _

from communications.models import CategoryOptOut, ChannelPolicy, Message, Purpose, Status, Suppression
from communications.models.delivery import MARKETING_ONLY_REASONS, SuppressionReason
from loyalty.models import Consent, Member, MemberState
from loyalty.models.members import ContactStatus

DEFAULT_QUIET = {"sms": (time(21), time(9)), "viber": (time(21), time(9)), "push": (time(21), time(9))}
CONTACT_STATUS_FIELD = {
    "sms": "phone_status",
    "viber": "phone_status",
    "social": "phone_status",
    "email": "email_status",
}


@dataclass
class BudgetDecision:
    send: list[dict] = field(default_factory=list)
    suppressed: dict[int, str] = field(default_factory=dict)  # message id -> reason
    deferred: dict[int, datetime] = field(default_factory=dict)  # message id -> not before


def policies() -> dict[str, tuple[time | None, time | None, int | None, int | None]]:
    out = {ch: (start, end, None, None) for ch, (start, end) in DEFAULT_QUIET.items()}
    for policy in ChannelPolicy.objects.all():
        out[policy.channel] = (policy.quiet_start, policy.quiet_end, policy.daily_cap, policy.weekly_cap)
    return out


def quiet_until(now: datetime, zone: zoneinfo.ZoneInfo, start: time, end: time) -> datetime | None:
    """The end of the quiet hours if ``now`` falls in them in ``zone``, else ``None``."""
    local = now.astimezone(zone)
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)


_zones: dict[str, zoneinfo.ZoneInfo] = {}


def _zone(name: str) -> zoneinfo.ZoneInfo:
    name = name or settings.TIME_ZONE
    if name not in _zones:
        try:
            _zones[name] = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            _zones[name] = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return _zones[name]


def budget_apply(rows: list[dict], *, now: datetime) -> BudgetDecision:
    """Decide for claimed message rows (dicts with id, member_id, channel, address,
    purpose). Reads only; the caller writes the outcome."""
    decision = BudgetDecision()
    if not rows:
        return decision
    member_ids = {r["member_id"] for r in rows if r["member_id"]}
    channels = {r["channel"] for r in rows}
    members = {
        m["id"]: m
        for m in Member.objects.filter(id__in=member_ids).values(
            "id", "time_zone", "phone_status", "email_status", "state"
        )
    }
    consents = {
        (c["member_id"], c["channel"]): c["granted"]
        for c in Consent.objects.filter(member_id__in=member_ids, channel__in=channels).values(
            "member_id", "channel", "granted"
        )
    }
    by_channel: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r["address"]:
            by_channel[r["channel"]].add(r["address"])
    suppressed: dict[tuple[str, str], str] = {}
    if by_channel:
        q = Q()
        for channel, addresses in by_channel.items():
            q |= Q(channel=channel, address__in=addresses)
        suppressed = {
            (s.channel, s.address): s.reason
            for s in Suppression.objects.filter(q).only("channel", "address", "reason")
        }
    opted_out: set[tuple[int, str]] = set()
    categories = {r.get("category") for r in rows if r.get("category") and r["member_id"]}
    if categories:
        opted_out = set(
            CategoryOptOut.objects.filter(
                member_id__in=member_ids, category__code__in=categories
            ).values_list("member_id", "category__code")
        )
    rules = policies()
    capped_channels = {ch for ch in channels if rules.get(ch, (None, None, None, None))[2:] != (None, None)}
    sent_day: Counter = Counter()
    sent_week: Counter = Counter()
    marketing_members = {r["member_id"] for r in rows if r["purpose"] == Purpose.MARKETING and r["member_id"]}
    if capped_channels and marketing_members:
        counts = (
            Message.objects.filter(
                member_id__in=marketing_members,
                channel__in=capped_channels,
                purpose=Purpose.MARKETING,
                sent_at__gte=now - timedelta(days=7),
            )
            .values("member_id", "channel")
            .annotate(week=Count("id"), day=Count("id", filter=Q(sent_at__gte=now - timedelta(days=1))))
        )
        for c in counts:
            sent_day[(c["member_id"], c["channel"])] = c["day"]
            sent_week[(c["member_id"], c["channel"])] = c["week"]

    for r in rows:
        channel, purpose, member = r["channel"], r["purpose"], members.get(r["member_id"])
        transactional = purpose == Purpose.TRANSACTIONAL
        if not r["address"]:
            decision.suppressed[r["id"]] = _("no contact on this channel")
            continue
        if member is not None:
            if member["state"] == MemberState.BLOCKED and not transactional:
                decision.suppressed[r["id"]] = _("member is blocked")
                continue
            status_field = CONTACT_STATUS_FIELD.get(channel)
            if status_field and member[status_field] == ContactStatus.INVALID:
                decision.suppressed[r["id"]] = _("invalid contact")
                continue
            if not transactional and not consents.get((member["id"], channel), False):
                decision.suppressed[r["id"]] = _("no consent")
                continue
        if not transactional and r.get("category") and (r["member_id"], r["category"]) in opted_out:
            decision.suppressed[r["id"]] = _("unsubscribed from the mailing category")
            continue
        reason = suppressed.get((channel, r["address"]))
        if reason and not (transactional and reason in MARKETING_ONLY_REASONS):
            label = SuppressionReason(reason).label if reason in SuppressionReason.values else reason
            decision.suppressed[r["id"]] = _("address on the suppression list: %(reason)s") % {
                "reason": label
            }
            continue
        start, end, daily, weekly = rules.get(channel, (None, None, None, None))
        if not transactional and start is not None and end is not None:
            until = quiet_until(now, _zone(member["time_zone"] if member else ""), start, end)
            if until is not None:
                decision.deferred[r["id"]] = until
                continue
        if purpose == Purpose.MARKETING and member is not None:
            key = (member["id"], channel)
            if (daily is not None and sent_day[key] >= daily) or (
                weekly is not None and sent_week[key] >= weekly
            ):
                decision.suppressed[r["id"]] = _("frequency cap")
                continue
            sent_day[key] += 1
            sent_week[key] += 1
        decision.send.append(r)
    return decision


__all__ = ["BudgetDecision", "budget_apply", "quiet_until", "Status"]
