"""Where segment metrics get data owned by apps above this one.

The communications app registers a function returning message rows (anything with a
``member_id`` column) for a metric key, channel and period; until it does, message
metrics see no messages.
"""

from collections.abc import Callable

MessageSource = Callable[..., object]
_message_source: MessageSource | None = None


def register_message_source(source: MessageSource) -> None:
    global _message_source
    _message_source = source


def message_counts(kind: str, channel: str | None, start, end):
    if _message_source is None:
        return None
    return _message_source(kind=kind, channel=channel, start=start, end=end)
