"""Operators issue API keys from the command line; the printed key works."""

import io
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.pos.conftest import client_for, get

pytestmark = pytest.mark.django_db


def test_the_printed_key_authenticates(world):
    out = io.StringIO()
    call_command("create_api_key", "--partner", "retail", "--name", "Till 7", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]

    client = client_for(SimpleNamespace(token=token))
    assert (
        get(client, "members/lookup", phone="+79990000000").status_code == 404
    )  # authenticated, no such member
    with pytest.raises(CommandError, match="nope"):
        call_command("create_api_key", "--partner", "nope")
    with pytest.raises(CommandError):
        call_command("create_api_key", "--partner", "retail", "--point-of-sale", "other-1")
