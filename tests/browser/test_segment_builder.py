"""A marketer builds, counts, saves and uploads a segment in the browser."""

import pytest
from django.contrib.auth.models import Group, User

from loyalty import roles
from segments.models import AudienceMember, Segment, TargetAudience
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def test_marketer_builds_counts_saves_and_uploads_a_segment(live_server, browser_page):
    # given members and a marketer
    for gender in ["female", "female", "female", "male"]:
        factories.MemberFactory(gender=gender)
    marketer = User.objects.create_user(username="mia", password="s3cret-pass", is_staff=True)
    marketer.groups.add(Group.objects.get(name=roles.MARKETER))
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")

    # when she builds "women" and watches the live count
    page.goto(f"{live_server.url}/admin/segments/segment/add/")
    page.fill("#id_name", "Women")
    page.click("button.add-condition")
    page.select_option(".segment-condition >> nth=0 >> select.metric-picker", "gender")
    page.select_option(".segment-condition >> nth=0 >> select[multiple]", ["female"])
    page.wait_for_function("document.getElementById('segment-count').textContent.trim() === '3'")
    assert "Gender is one of Female" in page.inner_text("#segment-words")

    # and saves it
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")
    segment = Segment.objects.get(name="Women")
    assert segment.rule["items"][0]["metric"] == "gender"

    # and uploads it to a new target audience
    page.fill("#new-audience", "Women audience")
    page.click("#upload-button")
    page.wait_for_url("**/targetaudience/**/change/")
    audience = TargetAudience.objects.get(name="Women audience")
    assert AudienceMember.objects.filter(audience=audience).count() == 3
    assert "3 member(s) added" in page.inner_text("ul.messagelist")
    assert page.js_errors == []
