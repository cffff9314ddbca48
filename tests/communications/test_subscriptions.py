"""Unsubscribing per category and per channel, with reasons, from the page in a message."""

import pytest

from communications.models import (
    CategoryOptOut,
    MailingCategory,
    Message,
    Origin,
    Status,
    SubscriptionChange,
    Suppression,
    UnsubscribeReason,
)
from communications.services.delivery import dispatch_batch, message_send
from communications.services.subscriptions import category_set, subscriptions_of
from loyalty.models import Consent

pytestmark = pytest.mark.django_db


@pytest.fixture
def news(db):
    return MailingCategory.objects.create(code="news", name="News")


def send(member, category="", origin_id=1):
    return message_send(
        member=member, channel="sms", content={"text": "hi"}, origin=Origin.MAILING, origin_id=origin_id,
        category=category,
    )  # fmt: skip


def test_the_page_offers_the_category_and_the_reasons(client, make_member, news):
    message = send(make_member(), "news")
    page = client.get(f"/m/u/{message.ref}/").content.decode()
    assert "Only “News” messages" in page
    assert all(r.text in page for r in UnsubscribeReason.objects.filter(active=True))


def test_unsubscribing_from_a_category_keeps_the_channel_and_records_the_reason(
    noon, client, make_gateway, make_member, news
):
    # given
    gateway = make_gateway("file_sms")
    member = make_member()
    message = send(member, "news")
    reason = UnsubscribeReason.objects.get(text="I receive too many messages")
    # when
    response = client.post(
        f"/m/u/{message.ref}/", {"scope": "category", "reason": reason.pk, "comment": "weekly is enough"}
    )
    # then: the next News message is stopped, others still go
    assert response.status_code == 200 and "News" in response.content.decode()
    change = SubscriptionChange.objects.get(member=member)
    assert (change.category, change.subscribed, change.reason, change.comment) == (
        news, False, reason, "weekly is enough",
    )  # fmt: skip
    assert Consent.objects.get(member=member, channel="sms").granted is True
    later_news, other = send(member, "news", origin_id=2), send(member, "", origin_id=3)
    dispatch_batch(gateway=gateway)
    assert Message.objects.get(pk=later_news.pk).status == Status.SUPPRESSED
    assert Message.objects.get(pk=later_news.pk).reason == "unsubscribed from the mailing category"
    assert Message.objects.get(pk=other.pk).status == Status.DELIVERED


def test_unsubscribing_from_the_channel_withdraws_consent(client, make_member, news):
    member = make_member()
    message = send(member, "news")
    client.post(f"/m/u/{message.ref}/", {"scope": "channel"})
    assert Consent.objects.get(member=member, channel="sms").granted is False
    assert Suppression.objects.filter(channel="sms", address=member.phone).exists()
    assert SubscriptionChange.objects.get(member=member).channel == "sms"


def test_one_click_on_a_category_message_opts_out_of_the_category(client, make_member, news):
    member = make_member()
    message = send(member, "news")
    assert client.post(f"/m/u/{message.ref}/", {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert CategoryOptOut.objects.filter(member=member, category=news).exists()
    # repeating changes nothing more
    client.post(f"/m/u/{message.ref}/", {"List-Unsubscribe": "One-Click"})
    assert SubscriptionChange.objects.filter(member=member).count() == 1


def test_subscriptions_of_a_member(make_member, news):
    member = make_member(consents=("email",))
    category_set(member=member, category=news, subscribed=False, source="test")
    subs = subscriptions_of(member)
    assert subs.channels["email"] is True and subs.channels["sms"] is False
    assert subs.categories == [(news, False)]
    category_set(member=member, category=news, subscribed=True, source="test")
    assert subscriptions_of(member).categories == [(news, True)]
