"""Where callbacks go: the app that owns messages registers a sink for status updates.

``gateways`` depends on nothing of ours, so the callback view parses the provider's
request into ``StatusUpdate`` rows and hands them to the sink registered here by
``communications`` in its ``AppConfig.ready()``.
"""

from collections.abc import Callable, Sequence

from gateways.providers import StatusUpdate

StatusSink = Callable[..., int]
_sink: StatusSink | None = None


def register_status_sink(sink: StatusSink) -> None:
    global _sink
    _sink = sink


def status_sink(*, gateway, updates: Sequence[StatusUpdate]) -> int:
    if _sink is None:
        return 0
    return _sink(gateway=gateway, updates=updates)
