"""A marketer creates an SMS and an email mailing to a target audience in the back office,
sees the preview and the preliminary cost, launches them and watches the report fill in."""

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

from communications.models import (
    ChannelPolicy,
    Mailing,
    MailingStatus,
    Message,
    MessageTemplate,
    Origin,
    Status,
)
from gateways.models import Gateway
from gateways.services import gateway_save
from loyalty import roles
from loyalty.services.members import consent_set
from segments.models import AudienceMember, TargetAudience
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path(settings.VAR_DIR) / "screenshots"


@pytest.fixture
def tasks_inline(monkeypatch):
    """No worker runs under the test server: queued tasks run in its thread."""
    from communications import tasks

    monkeypatch.setattr(tasks.mailing_prepare, "delay", lambda pk: tasks.mailing_prepare(pk))
    monkeypatch.setattr(tasks.dispatch, "delay", lambda gateway_id: tasks.dispatch(gateway_id))


def login(page, url):
    marketer = User.objects.create_user(username="mia", password="s3cret-pass", is_staff=True)
    marketer.groups.add(Group.objects.get(name=roles.MARKETER))
    page.goto(f"{url}/admin/login/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")


def create_and_launch(page, url, *, name, channel, template, audience):
    page.goto(f"{url}/admin/communications/mailing/add/")
    page.fill("#id_name", name)
    page.select_option("#id_channel", channel)
    page.select_option("#id_template", str(template.pk))
    page.select_option("#id_audience", str(audience.pk))
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")
    # the preview shows the first member's real data
    preview = page.inner_text(".field-preview")
    page.click("button[data-action=estimate]")
    page.wait_for_selector("table.estimate")
    estimate = page.inner_text("table.estimate")
    page.click("button[data-action=launch]")
    page.wait_for_selector("ul.messagelist")
    mailing = Mailing.objects.get(name=name)
    page.goto(f"{url}/admin/communications/mailing/{mailing.pk}/report/")
    return mailing, preview, estimate


def test_marketer_sends_an_sms_and_an_email_mailing_and_watches_the_report(
    live_server, browser_page, tasks_inline
):
    # given: the file gateways, three reachable members and one without consent in an audience,
    # and no quiet hours: the server runs on the wall clock, which may be night in Moscow
    ChannelPolicy.objects.update_or_create(channel="sms", defaults={"quiet_start": None, "quiet_end": None})
    gateway_save(gateway=Gateway(name="SMS outbox", provider="file_sms", price="2.5"), config={})
    gateway_save(gateway=Gateway(name="Email outbox", provider="file_email"), config={})
    audience = TargetAudience.objects.create(name="Autumn VIP")
    members = []
    for i, first in enumerate(["Olga", "Ivan", "Anna", "Petr"]):
        member = factories.MemberFactory(first_name=first, email=f"m{i}@example.com", email_status="valid")
        if first != "Petr":
            for channel in ("sms", "email"):
                consent_set(member=member, channel=channel, granted=True, source="test")
        members.append(member)
        AudienceMember.objects.create(audience=audience, member=member)
    sms = MessageTemplate.objects.create(
        name="Autumn SMS", channel="sms", text="{{ first_name }}, autumn sale!"
    )
    email = MessageTemplate.objects.create(
        name="Autumn email",
        channel="email",
        subject="{{ first_name }}, the autumn sale",
        html="<html><body><p>{{ salutation }}, see the sale.</p></body></html>",
        text="{{ salutation }}, see the sale.",
    )
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    login(page, live_server.url)

    # when: the SMS mailing
    mailing, preview, estimate = create_and_launch(
        page, live_server.url, name="Autumn SMS mailing", channel="sms", template=sms, audience=audience
    )
    # then: preview with Olga's data, cost of three messages, all delivered in the report
    assert "Olga, autumn sale!" in preview and "1 segment" in preview
    assert "3" in estimate and "7.50" in estimate
    page.wait_for_function("document.getElementById('fig-delivered').textContent.trim() === '3'")
    assert page.inner_text("#fig-sent").strip() == "3"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "mailing-report.png"), full_page=True)
    sent = Message.objects.filter(origin=Origin.MAILING, origin_id=mailing.pk)
    assert sorted(sent.values_list("member__first_name", flat=True)) == ["Anna", "Ivan", "Olga"]
    assert set(sent.values_list("status", flat=True)) == {Status.DELIVERED}

    # when: the email mailing
    mailing, preview, estimate = create_and_launch(
        page, live_server.url, name="Autumn email mailing", channel="email", template=email, audience=audience
    )
    # then
    assert "Olga, the autumn sale" in preview
    page.wait_for_function("document.getElementById('fig-delivered').textContent.trim() === '3'")
    outbox = list((Path(settings.OUTBOX_DIR) / "email").glob("*"))
    assert len(outbox) >= 3

    # and the calendar shows both on today's date
    page.goto(f"{live_server.url}/admin/communications/mailing/calendar/")
    calendar = page.inner_text("table.mailing-calendar")
    assert "Autumn SMS mailing" in calendar and "Autumn email mailing" in calendar
    page.screenshot(path=str(SHOTS / "mailing-calendar.png"), full_page=True)
    assert Mailing.objects.filter(status=MailingStatus.DONE).count() == 2
    assert page.js_errors == []
