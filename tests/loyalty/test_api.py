import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from loyalty import roles
from loyalty.models import Member
from loyalty.services import ledger


@pytest.fixture
def api(db):
    user = User.objects.create_user(username="pos", password="x")
    user.groups.add(Group.objects.get(name=roles.API_USER))
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_register_member_normalises_contacts(api):
    response = api.post(
        "/api/v1/members/",
        {"first_name": "Анна", "phone": "8 (916) 123-45-67", "consents": {"sms": True}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["phone"] == "+79161234567" and body["consents"] == {"sms": True}


def test_bad_input_is_a_problem_naming_the_field(api):
    response = api.post("/api/v1/members/", {"phone": "12345", "email": "x@"}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid" and set(body["errors"]) == {"phone", "email"}
    assert not Member.objects.exists()


def test_find_by_phone_and_read_balance(api):
    created = api.post(
        "/api/v1/members/", {"first_name": "Анна", "phone": "+79161234567"}, format="json"
    ).json()
    found = api.get("/api/v1/members/", {"q": "8 916 123-45-67"}).json()
    assert [m["id"] for m in found] == [created["id"]]
    member = Member.objects.get(pk=created["id"])
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=member),
        amount=75,
        source=ledger.Source(type="offer", label="Welcome"),
    )
    balance = api.get(f"/api/v1/members/{member.pk}/balance/").json()
    assert balance[0]["available"] == "75.00"
    history = api.get(f"/api/v1/members/{member.pk}/history/").json()
    assert history["results"][0]["source_label"] == "Welcome"


def test_card_issue_bind_activate_block(api):
    member = api.post(
        "/api/v1/members/", {"first_name": "Анна", "phone": "+79161234567"}, format="json"
    ).json()
    card = api.post("/api/v1/cards/", {}, format="json").json()
    number = card["number"]
    assert (
        api.post(f"/api/v1/cards/{number}/bind/", {"member": member["id"]}, format="json").status_code == 200
    )
    assert api.post(f"/api/v1/cards/{number}/activate/").json()["state"] == "activated"
    refused = api.post(f"/api/v1/cards/{number}/block/", {}, format="json")
    assert refused.status_code == 400 and "reason" in refused.json()["errors"]
    assert (
        api.post(f"/api/v1/cards/{number}/block/", {"reason": "lost"}, format="json").json()["state"]
        == "blocked"
    )
    again = api.post(f"/api/v1/cards/{number}/block/", {"reason": "lost"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "card_state"


def test_report_event(api):
    member = api.post("/api/v1/members/", {"first_name": "Анна"}, format="json").json()
    response = api.post(
        "/api/v1/events/", {"event_type": "app_installed", "member": member["id"]}, format="json"
    )
    assert response.status_code == 201
    bad = api.post("/api/v1/events/", {"event_type": "nonsense", "member": member["id"]}, format="json")
    assert bad.status_code == 400 and "event_type" in bad.json()["errors"]
    # details PostgreSQL's jsonb cannot store are refused, naming the field
    nul = api.post(
        "/api/v1/events/",
        {"event_type": "social_activity", "member": member["id"], "payload": {"text": "a\u0000b"}},
        format="json",
    )
    assert nul.status_code == 400 and "payload" in nul.json()["errors"]
    # a purchase is recorded by confirming its receipt, not reported
    forged = api.post(
        "/api/v1/events/",
        {
            "event_type": "purchase_completed",
            "member": member["id"],
            "payload": {"receipt_id": 1, "total": "9"},
        },
        format="json",
    )
    assert forged.status_code == 400 and "event_type" in forged.json()["errors"]


def test_api_needs_the_api_role(db):
    User.objects.create_user(username="someone", password="x")
    client = APIClient()
    client.login(username="someone", password="x")
    assert client.get("/api/v1/members/", {"q": "1"}).status_code == 403
    assert APIClient().get("/api/v1/members/", {"q": "1"}).status_code == 401


def test_schema_and_docs_are_served(client, db):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
