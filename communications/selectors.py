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
