"""Targeted content (promotional materials) a member may see now."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from loyalty.models import Member
from offers.models import OfferStatus
from portal.models import Placement, TargetedContent
from segments.models import AudienceMember

HIDDEN_OFFER_STATES = [OfferStatus.FINISHED, OfferStatus.ARCHIVED]


def window(content: TargetedContent) -> tuple[dt.datetime | None, dt.datetime | None]:
    """When the material is shown: its own dates, else derived from the advertised offer
    (``lead_days`` before it starts until it ends)."""
    offer = content.offer
    start, end = content.shown_from, content.shown_until
    if start is None and offer is not None and offer.starts_at:
        start = offer.starts_at - dt.timedelta(days=content.lead_days)
    if end is None and offer is not None:
        end = offer.ends_at
    return start, end


def visible_now(content: TargetedContent, now: dt.datetime) -> bool:
    if content.offer is not None and content.offer.status in HIDDEN_OFFER_STATES:
        return False
    start, end = window(content)
    return (start is None or start <= now) and (end is None or now < end)


def contents_for(
    member: Member,
    *,
    placement: str = Placement.ACCOUNT,
    personal: bool | None = None,
    now: dt.datetime | None = None,
) -> list[TargetedContent]:
    """Published materials for ``placement`` that ``member`` may see now (one query):
    those for everyone and those for a target audience the member is in.
    ``personal=True`` keeps only the audience ones (the "personal offers" section),
    ``False`` only those for everyone."""
    now = now or timezone.now()
    flag = "in_app" if placement == Placement.APP else "in_account"
    mine = AudienceMember.objects.filter(member=member).values("audience_id")
    rows = TargetedContent.objects.filter(published=True, **{flag: True}).select_related("offer")
    if personal is True:
        rows = rows.filter(audience_id__in=mine)
    elif personal is False:
        rows = rows.filter(audience__isnull=True)
    else:
        rows = rows.filter(Q(audience__isnull=True) | Q(audience_id__in=mine))
    rows = rows.exclude(shown_from__gt=now).exclude(shown_until__lte=now)
    return [c for c in rows.order_by("order", "-pk") if visible_now(c, now)]


def content_of(
    member: Member, content_id: int, *, placement: str = Placement.ACCOUNT
) -> TargetedContent | None:
    """One material the member may see now, or ``None``."""
    return next((c for c in contents_for(member, placement=placement) if c.pk == content_id), None)
