import datetime as dt

import pytest
import time_machine

from gateways.models import Gateway
from gateways.services import gateway_save, providers_close
from loyalty.services.members import consent_set
from tests import factories

# Noon in Moscow: outside the default quiet hours.
NOON = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def noon():
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _fresh_adapters():
    yield
    providers_close()


@pytest.fixture
def make_gateway(db):
    def make(provider: str, *, name: str | None = None, config: dict | None = None, **fields) -> Gateway:
        gateway = Gateway(name=name or provider, provider=provider, **fields)
        return gateway_save(gateway=gateway, config=config or {})

    return make


@pytest.fixture
def make_member(db):
    def make(*, consents=("sms", "email", "viber", "push", "social"), **fields):
        fields.setdefault("email", f"m{factories.MemberFactory._meta.model.objects.count() + 1}@example.com")
        fields.setdefault("email_status", "valid")
        member = factories.MemberFactory(**fields)
        for channel in consents:
            consent_set(member=member, channel=channel, granted=True, source="test")
        return member

    return make
