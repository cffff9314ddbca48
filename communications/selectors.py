"""Reads over messages."""

from communications.models import Message

# Segment metric key -> the timestamp column that says it happened.
METRIC_STAMPS = {
    "messages_received": "delivered_at",
    "messages_opened": "opened_at",
    "messages_clicked": "clicked_at",
    "unsubscribed": "unsubscribed_at",
}


def message_rows(*, kind: str, channel: str | None, start, end):
    """Messages (rows with ``member_id``) for a segment metric over a period."""
    stamp = METRIC_STAMPS[kind]
    rows = Message.objects.filter(member__isnull=False, **{f"{stamp}__isnull": False})
    if start is not None:
        rows = rows.filter(**{f"{stamp}__gte": start})
    if end is not None:
        rows = rows.filter(**{f"{stamp}__lt": end})
    if channel:
        rows = rows.filter(channel=channel)
    return rows


def member_messages_panel(member) -> dict | None:
    """The member page's panel: the last messages with their status."""
    from django.utils import timezone
    from django.utils.translation import gettext as _

    from communications.models import Message

    rows = [
        [
            timezone.localtime(m.created_at).strftime("%Y-%m-%d %H:%M"),
            m.get_channel_display(),
            m.get_origin_display(),
            m.get_status_display(),
            m.reason,
        ]
        for m in Message.objects.filter(member=member).order_by("-id")[:10]
    ]
    if not rows:
        return None
    return {
        "title": _("Last messages"),
        "columns": [_("created"), _("channel"), _("origin"), _("status"), _("reason")],
        "rows": rows,
    }


def member_subscriptions_panel(member) -> dict | None:
    """The member page's panel: channels and mailing categories, on or off."""
    from django.utils.translation import gettext as _

    from communications.services.subscriptions import subscriptions_of
    from loyalty.models.members import ContactChannel

    subs = subscriptions_of(member)
    labels = dict(ContactChannel.choices)
    rows = [[labels.get(ch, ch), _("yes") if on else _("no")] for ch, on in subs.channels.items()]
    rows += [
        [_("Category: %(name)s") % {"name": c.name}, _("yes") if on else _("no")] for c, on in subs.categories
    ]
    return {"title": _("Subscriptions"), "columns": [_("channel or category"), _("subscribed")], "rows": rows}
