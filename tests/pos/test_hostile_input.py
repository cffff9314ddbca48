"""Hostile bodies that used to reach a 500: JSON nested deeper than Python's decoder
goes, and ids beyond what a database column holds. Each is a 400 problem naming why."""

import pytest
from rest_framework.test import APIClient

from portal.services.auth import token_issue
from tests import factories


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def problem_400(response) -> dict:
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


@pytest.fixture
def member_app(db) -> APIClient:
    member = factories.MemberFactory(phone="+79161234567")
    _token, key = token_issue(member=member, name="test phone")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_deeply_nested_json_is_a_400_everywhere(world, api, member_app):
    body = '{"event_type": "app_installed", "payload": {"a": ' + deep(5000) + "}}"
    for client, path, headers in (
        (api, "/api/v1/pos/events", {"HTTP_IDEMPOTENCY_KEY": "k-1"}),
        (APIClient(), "/api/v1/me/auth/code", {}),  # before any sign-in
        (member_app, "/api/v1/me/events", {}),
    ):
        answer = client.post(path, body, content_type="application/json", **headers)
        assert "nested too deeply" in problem_400(answer)["detail"]


def test_ids_beyond_a_database_column_are_refused_by_their_field(member_app):
    too_big = 2**63 + 5
    picks = problem_400(
        member_app.put("/api/v1/me/personal-products/1", {"products": [too_big]}, format="json")
    )
    assert any(key.startswith("products") for key in picks["errors"])
    subscriptions = problem_400(
        member_app.put("/api/v1/me/subscriptions", {"categories": {str(too_big): False}}, format="json")
    )
    assert "categories" in subscriptions["errors"]


def test_a_back_office_event_for_a_member_id_beyond_a_column_is_400(admin_client):
    answer = admin_client.post(
        "/api/v1/events/", {"event_type": "app_installed", "member": 2**70}, content_type="application/json"
    )
    assert answer.status_code == 400 and "member" in answer.json().get("errors", answer.json())


def test_a_member_cannot_be_given_a_future_birth_date_or_an_unknown_time_zone(world, api, member_app):
    from tests.pos.conftest import post

    future = problem_400(post(api, "members", {"phone": "+79160000001", "birth_date": "2999-01-01"}))
    assert "birth_date" in future["errors"]
    assert problem_400(member_app.patch("/api/v1/me/", {"time_zone": "Mars/Olympus"}, format="json"))[
        "errors"
    ].get("time_zone")
    assert problem_400(member_app.patch("/api/v1/me/", {"birth_date": "3000-01-01"}, format="json"))[
        "errors"
    ].get("birth_date")
    assert (
        member_app.patch("/api/v1/me/", {"time_zone": "Asia/Yekaterinburg"}, format="json").status_code == 200
    )


def test_a_misspelt_channel_is_an_error_on_that_key_not_a_silent_200(member_app):
    body = problem_400(
        member_app.put("/api/v1/me/subscriptions", {"channels": {"fax": False}}, format="json")
    )
    assert "channels.fax" in body["errors"]
