"""A marketer configures a gateway, sends a test message and reads its status history."""

import json

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from communications.models import Message, Status
from gateways.crypto import secrets_decrypt
from gateways.models import Gateway
from loyalty.roles import MARKETER
from tests.gateways.peers import HttpPeer, PeerResponse

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer_client(client):
    user = User.objects.create_user("marketer", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=MARKETER))
    client.force_login(user)
    return client


def test_marketer_configures_a_gateway_with_secret_credentials(marketer_client, noon):
    # when: the provider is chosen, its settings appear
    page = marketer_client.get("/admin/gateways/gateway/add/?provider=devino_sms")
    assert page.status_code == 200
    assert b"cfg_api_key" in page.content and b"cfg_base_url" in page.content
    with HttpPeer(lambda r: PeerResponse(200, {"result": [{"code": "OK", "messageId": "42"}]})) as peer:
        response = marketer_client.post(
            "/admin/gateways/gateway/add/?provider=devino_sms",
            {
                "name": "Devino",
                "provider": "devino_sms",
                "enabled": "on",
                "priority": 10,
                "sender": "SHOP",
                "price": "2.10",
                "price_unit": "segment",
                "rate_limit": 100,
                "max_attempts": 5,
                "cfg_base_url": peer.url,
                "cfg_api_key": "very-secret",
                "cfg_priority": "HIGH",
                "cfg_validity": 0,
                "cfg_timeout": 5,
            },
        )
        assert response.status_code == 302, response.content.decode()[:3000]
        gateway = Gateway.objects.get(name="Devino")
        # then: the key is stored encrypted and never shown back
        assert (
            "very-secret" not in json.dumps(gateway.config) and "very-secret" not in gateway.secrets_encrypted
        )
        assert secrets_decrypt(gateway.secrets_encrypted) == {"api_key": "very-secret"}
        change = marketer_client.get(f"/admin/gateways/gateway/{gateway.pk}/change/")
        assert b"very-secret" not in change.content and gateway.webhook_token.encode() in change.content
        # and a test message goes out and its history is on the message page
        response = marketer_client.post(
            f"/admin/gateways/gateway/{gateway.pk}/test/", {"to": "+7 916 000-00-01"}
        )
        message = Message.objects.get()
        assert response.status_code == 302 and response["Location"].endswith(f"/message/{message.pk}/change/")
    assert peer.requests[0].headers["authorization"] == "Key very-secret"
    assert message.status == Status.SENT and message.provider_message_id == "42"
    page = marketer_client.get(response["Location"])
    assert page.status_code == 200
    for label in (b"created", b"queued", b"sending", b"sent"):
        assert label in page.content


def test_saving_again_without_the_secret_keeps_it(marketer_client):
    from gateways.services import gateway_save

    gateway = gateway_save(
        gateway=Gateway(name="D", provider="devino_sms"),
        config={"api_key": "k1", "base_url": "http://127.0.0.1:9"},
    )
    response = marketer_client.post(
        f"/admin/gateways/gateway/{gateway.pk}/change/",
        {
            "name": "D",
            "provider": "devino_sms",
            "priority": 1,
            "price": "0",
            "price_unit": "message",
            "rate_limit": 10,
            "max_attempts": 3,
            "cfg_base_url": "http://127.0.0.1:9",
            "cfg_api_key": "",
            "cfg_priority": "LOW",
            "cfg_timeout": 3,
        },
    )
    assert response.status_code == 302
    gateway.refresh_from_db()
    assert (
        secrets_decrypt(gateway.secrets_encrypted) == {"api_key": "k1"}
        and gateway.config["priority"] == "LOW"
    )


def test_bad_settings_are_refused_on_their_field(marketer_client):
    response = marketer_client.post(
        "/admin/gateways/gateway/add/?provider=devino_sms",
        {
            "name": "X",
            "provider": "devino_sms",
            "priority": 1,
            "price": "0",
            "price_unit": "message",
            "rate_limit": 10,
            "max_attempts": 3,
            "cfg_base_url": "not a url",
            "cfg_api_key": "k",
            "cfg_priority": "LOW",
        },
    )
    assert response.status_code == 200
    assert "cfg_base_url" in response.context["adminform"].form.errors
    assert not Gateway.objects.exists()


def test_gateway_test_command_sends_through_the_file_gateway(make_gateway, capsys, noon, settings):
    make_gateway("file_email", name="Mail files", sender="Shop <shop@example.com>")
    call_command("gateway_test", "Mail files", "--to", "anna@example.com", "--text", "Привет")
    out = capsys.readouterr().out
    assert "Delivered" in out or "delivered" in out
    (eml,) = (settings.OUTBOX_DIR / "email").iterdir()
    assert eml.suffix == ".eml" and "anna@example.com" in eml.read_text()


def test_a_test_message_to_a_bad_address_or_with_refused_content_is_refused_on_its_field(
    marketer_client, make_gateway
):
    sms = make_gateway("file_sms", name="SMS files")
    response = marketer_client.post(f"/admin/gateways/gateway/{sms.pk}/test/", {"to": "12"})
    assert response.status_code == 200 and "to" in response.context["form"].errors
    viber = make_gateway("devino_viber", name="Viber", config={"api_key": "k"})
    response = marketer_client.post(
        f"/admin/gateways/gateway/{viber.pk}/test/", {"to": "+79160000001", "text": "x" * 1001}
    )
    assert response.status_code == 200
    assert "1000" in " ".join(response.context["form"].errors["text"])
    assert not Message.objects.exists()


def test_gateway_test_command_names_a_bad_address(make_gateway):
    from django.core.management.base import CommandError

    make_gateway("file_email", name="Mail files")
    with pytest.raises(CommandError, match="to:"):
        call_command("gateway_test", "Mail files", "--to", "not-an-email")
