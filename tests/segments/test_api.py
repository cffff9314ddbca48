import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from loyalty import roles
from segments.models import Segment
from segments.services import audience_fill_from_segment, segment_materialise


@pytest.fixture
def api(db):
    user = User.objects.create_user(username="app", password="x")
    user.groups.add(Group.objects.get(name=roles.API_USER))
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_segments_audiences_and_a_members_memberships(api, world):
    segment = Segment.objects.create(
        name="Women", rule={"metric": "gender", "operator": "in", "value": ["female"]}
    )
    segment_materialise(segment)
    audience_fill_from_segment(world["audience"], segment)
    Segment.objects.create(name="Never refreshed", rule={})
    segments = api.get("/api/v1/segments/").json()["results"]
    assert [(s["name"], s["member_count"]) for s in segments] == [("Never refreshed", None), ("Women", 2)]
    assert segments[1]["summary"] == "Gender is one of Female"
    audiences = api.get("/api/v1/audiences/").json()["results"]
    assert [(a["name"], a["member_count"]) for a in audiences] == [("VIP", 2)]
    anna = world["members"]["anna"]
    body = api.get(f"/api/v1/members/{anna.pk}/segments/").json()
    assert [s["name"] for s in body["segments"]] == ["Women"]
    assert [a["name"] for a in body["audiences"]] == ["VIP"]
    gleb = world["members"]["gleb"]
    assert api.get(f"/api/v1/members/{gleb.pk}/segments/").json() == {"segments": [], "audiences": []}
    assert api.get("/api/v1/members/999999/segments/").status_code == 404
