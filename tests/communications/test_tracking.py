"""Opens, clicks and unsubscribes on email, and what they change for the next mailing."""

import email
import email.policy
import html
import re
from pathlib import Path

import pytest
from django.conf import settings

from communications.models import Message, Origin, Purpose, Status, Suppression
from communications.services.delivery import dispatch_batch, message_send
from loyalty.models import Consent
from segments.services import segment_count

pytestmark = pytest.mark.django_db

HTML = (
    '<html><body><p>Sale!</p><a href="https://shop.example/sale?a=1&amp;b=2">Shop</a>'
    ' <a href="{{unsubscribe_url}}">Unsubscribe</a></body></html>'
)


@pytest.fixture
def sent_email(noon, make_gateway, make_member):
    gateway = make_gateway("file_email", sender="Shop <club@shop.example>")
    member = make_member()
    message = message_send(
        member=member,
        channel="email",
        content={"subject": "Неделя скидок", "text": "Sale! {{unsubscribe_url}}", "html": HTML},
        origin=Origin.MAILING,
        origin_id=1,
    )
    dispatch_batch(gateway=gateway)
    message.refresh_from_db()
    eml = Path(settings.OUTBOX_DIR, "email", message.provider_message_id)
    return message, email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)


def _html(parsed) -> str:
    return parsed.get_body(("html",)).get_content()


def test_the_email_carries_tracked_links_a_pixel_and_one_click_unsubscribe(sent_email):
    message, parsed = sent_email
    unsubscribe = f"{settings.PUBLIC_BASE_URL}/m/u/{message.ref}/"
    assert parsed["Subject"] == "Неделя скидок"
    assert parsed["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = _html(parsed)
    assert f"/m/c/{message.ref}/?u=https" in html and "shop.example/sale" not in html.split("?u=")[0]
    assert f'href="{unsubscribe}"' in html  # the unsubscribe link itself is not wrapped
    assert f"/m/o/{message.ref}.gif" in html
    assert unsubscribe in parsed.get_body(("plain",)).get_content()


def test_open_and_click_are_recorded_in_order(sent_email, client):
    message, parsed = sent_email
    click = html.unescape(re.search(r'href="http://[^"]+(/m/c/[^"]+)"', _html(parsed)).group(1))
    # when: the member clicks before the pixel loads, then the pixel loads
    response = client.get(click)
    pixel = client.get(f"/m/o/{message.ref}.gif")
    # then
    assert response.status_code == 302 and response["Location"] == "https://shop.example/sale?a=1&b=2"
    assert pixel.status_code == 200 and pixel["Content-Type"] == "image/gif"
    message.refresh_from_db()
    assert message.status == Status.CLICKED and message.opened_at and message.clicked_at
    assert list(message.history.values_list("status", flat=True))[-3:] == ["delivered", "opened", "clicked"]
    assert (
        segment_count(
            {"metric": "messages_clicked", "operator": "gt", "value": 0, "params": {"channel": "email"}},
            use_cache=False,
        )
        == 1
    )


def test_a_tampered_click_link_redirects_nowhere(sent_email, client):
    message, _parsed = sent_email
    response = client.get(f"/m/c/{message.ref}/?u=https://evil.example/&s=0000")
    assert response.status_code == 404
    message.refresh_from_db()
    assert message.clicked_at is None


def test_one_click_unsubscribe_stops_marketing_but_not_account_mail(sent_email, client, make_gateway):
    message, _parsed = sent_email
    member = message.member
    page = client.get(f"/m/u/{message.ref}/")
    assert page.status_code == 200 and b"<form" in page.content
    # when: the mail client posts the RFC 8058 one-click request
    response = client.post(f"/m/u/{message.ref}/", {"List-Unsubscribe": "One-Click"})
    # then
    assert response.status_code == 200
    assert Consent.objects.get(member=member, channel="email").granted is False
    assert Suppression.objects.filter(channel="email", address=member.email, reason="unsubscribed").exists()
    message.refresh_from_db()
    assert message.unsubscribed_at is not None
    assert (
        segment_count({"metric": "unsubscribed", "operator": "gt", "value": 0, "params": {}}, use_cache=False)
        == 1
    )
    gateway = message.gateway
    promo = message_send(
        member=member,
        channel="email",
        content={"subject": "s", "text": "t"},
        origin=Origin.MAILING,
        origin_id=2,
    )
    receipt = message_send(
        member=member,
        channel="email",
        content={"subject": "s", "text": "t"},
        origin=Origin.TRANSACTIONAL,
        purpose=Purpose.TRANSACTIONAL,
    )
    dispatch_batch(gateway=gateway)
    assert Message.objects.get(pk=promo.pk).status == Status.SUPPRESSED
    assert Message.objects.get(pk=receipt.pk).status == Status.DELIVERED
    # and unsubscribing twice changes nothing more
    client.post(f"/m/u/{message.ref}/", {"List-Unsubscribe": "One-Click"})
    assert member.consent_changes.filter(channel="email", granted=False).count() == 1


def test_a_complaint_reported_by_the_provider_suppresses_the_address(noon, make_gateway, make_member):
    from communications.services.delivery import status_updates_apply
    from gateways.providers import Lifecycle, StatusUpdate

    gateway = make_gateway("file_email")
    member = make_member()
    message = message_send(
        member=member, channel="email", content={"subject": "s", "text": "t"}, origin=Origin.MAILING
    )
    dispatch_batch(gateway=gateway)
    message.refresh_from_db()
    status_updates_apply(
        gateway=gateway, updates=[StatusUpdate(message.provider_message_id, Lifecycle.COMPLAINED)]
    )
    assert Suppression.objects.get(channel="email", address=member.email).reason == "complaint"
    assert Consent.objects.get(member=member, channel="email").granted is False
