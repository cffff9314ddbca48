import json

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from loyalty import roles
from segments.models import Segment, TargetAudience

WOMEN = {"metric": "gender", "operator": "in", "value": ["female"]}


def login_as(client, role):
    user = User.objects.create_user(username=role.lower().replace(" ", "-"), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)


@pytest.fixture
def segment(db):
    return Segment.objects.create(name="Women", rule=WOMEN)


def test_analyst_reads_segments_marketer_edits(client, segment):
    login_as(client, roles.ANALYST)
    assert client.get(reverse("admin:segments_segment_add")).status_code == 403
    page = client.get(reverse("admin:segments_segment_change", args=[segment.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(reverse("admin:segments_segment_refresh", args=[segment.pk])).status_code == 403
    client.logout()
    login_as(client, roles.MARKETER)
    assert client.post(reverse("admin:segments_segment_refresh", args=[segment.pk])).status_code == 302
    segment.refresh_from_db()
    assert segment.refreshed_at is not None


def test_preview_counts_and_explains_or_names_the_error(admin_client, world):
    url = reverse("admin:segments_segment_preview")
    ok = admin_client.post(url, json.dumps({"rule": WOMEN}), content_type="application/json").json()
    assert ok == {"count": 2, "words": "Gender is one of Female"}
    bad = admin_client.post(
        url,
        json.dumps({"rule": {"metric": "age", "operator": "gte", "value": "x"}}),
        content_type="application/json",
    )
    assert bad.status_code == 400 and "'x' is not a number" in bad.json()["error"]


def test_saving_an_invalid_rule_shows_the_error(admin_client, db):
    page = admin_client.post(
        reverse("admin:segments_segment_add"),
        {
            "name": "Broken",
            "auto_refresh": "on",
            "rule": json.dumps({"metric": "nope", "operator": "eq", "value": 1}),
        },
    )
    assert page.status_code == 200 and "unknown metric" in page.content.decode()
    assert not Segment.objects.exists()


def test_audience_import_page_reports_lines(admin_client, world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    audience = TargetAudience.objects.create(name="Imported")
    upload = SimpleUploadedFile("a.csv", b"8 916 000 00 01\nnobody@example.ru\n")
    page = admin_client.post(
        reverse("admin:segments_targetaudience_import", args=[audience.pk]), {"file": upload}
    )
    text = page.content.decode()
    assert "Added 1" in text and "nobody@example.ru" in text
    export = admin_client.get(reverse("admin:segments_targetaudience_export", args=[audience.pk]))
    assert "+79160000001" in b"".join(export.streaming_content).decode()


def test_rfm_page(admin_client, world):
    admin_client.post(reverse("admin:segments_rfm_recompute"))
    page = admin_client.get(reverse("admin:segments_rfmsettings_changelist"))
    assert page.status_code == 200
    assert page.context["grid"][0][4]["label"] == "Champions"
