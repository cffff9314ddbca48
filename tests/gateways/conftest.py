import pytest
from django.test import RequestFactory

from gateways.providers import GatewaySettings, OutgoingMessage, providers


@pytest.fixture
def make_adapter():
    """An adapter of ``key`` configured with ``config`` (no database needed)."""
    made = []

    def make(key: str, config: dict, *, sender: str = "", callback_url: str = "http://testserver/cb/"):
        adapter = providers.get(key)(
            GatewaySettings(gateway_id=1, config=config, sender=sender, callback_url=callback_url)
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def outgoing():
    counter = iter(range(1, 10**6))

    def make(channel: str, to: str, content: dict, **kwargs) -> OutgoingMessage:
        n = next(counter)
        return OutgoingMessage(
            id=n, ref=f"00000000-0000-4000-8000-{n:012d}", channel=channel, to=to, content=content, **kwargs
        )

    return make


@pytest.fixture
def rf():
    return RequestFactory()
