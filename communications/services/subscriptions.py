"""Members' subscriptions: channels (the consent in ``loyalty``) and mailing categories.

A change is immediate (the contact budget reads it on the next batch) and recorded as a
``SubscriptionChange`` with the reason the member chose and where it was made.
Repeating a change records nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from communications.models import (
    CategoryOptOut,
    MailingCategory,
    Message,
    SubscriptionChange,
    UnsubscribeReason,
)
from loyalty.models import Consent, Member


@transaction.atomic
def category_set(
    *,
    member: Member,
    category: MailingCategory,
    subscribed: bool,
    source: str,
    reason: UnsubscribeReason | None = None,
    comment: str = "",
    message: Message | None = None,
) -> bool:
    """Opt the member in or out of ``category``; returns whether anything changed."""
    if subscribed:
        changed = CategoryOptOut.objects.filter(member=member, category=category).delete()[0] > 0
    else:
        _opt_out, changed = CategoryOptOut.objects.get_or_create(member=member, category=category)
    if changed:
        SubscriptionChange.objects.create(
            member=member,
            category=category,
            subscribed=subscribed,
            reason=None if subscribed else reason,
            comment=comment[:500],
            source=source[:64],
            message=message,
        )
    return changed


@transaction.atomic
def channel_set(
    *,
    member: Member,
    channel: str,
    subscribed: bool,
    source: str,
    reason: UnsubscribeReason | None = None,
    comment: str = "",
    message: Message | None = None,
) -> bool:
    """Grant or withdraw consent on ``channel``; returns whether anything changed."""
    from loyalty.services.members import consent_set

    current = Consent.objects.filter(member=member, channel=channel).values_list("granted", flat=True).first()
    if current is not None and bool(current) == subscribed:
        return False
    consent_set(member=member, channel=channel, granted=subscribed, source=source[:64])
    SubscriptionChange.objects.create(
        member=member,
        channel=channel,
        subscribed=subscribed,
        reason=None if subscribed else reason,
        comment=comment[:500],
        source=source[:64],
        message=message,
    )
    return True


@dataclass
class Subscriptions:
    channels: dict[str, bool]
    categories: list[tuple[MailingCategory, bool]]


def subscriptions_of(member: Member) -> Subscriptions:
    """The member's channels and the active categories, each with whether it is on."""
    from loyalty.models.members import ContactChannel

    granted = dict(Consent.objects.filter(member=member).values_list("channel", "granted"))
    opted_out = set(CategoryOptOut.objects.filter(member=member).values_list("category_id", flat=True))
    return Subscriptions(
        channels={c: bool(granted.get(c, False)) for c in ContactChannel.values},
        categories=[(c, c.pk not in opted_out) for c in MailingCategory.objects.filter(active=True)],
    )
