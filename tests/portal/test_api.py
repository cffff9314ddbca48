"""The member API of the mobile app: signing in with a code, the token, and each member's
data visible to that member only."""

import datetime as dt
import re
from decimal import Decimal

import httpx
import pytest
import schemathesis
import time_machine
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from communications.models import (
    DeviceToken,
    FeedbackTopic,
    MailingCategory,
    Message,
    SubscriptionChange,
    UnsubscribeReason,
)
from communications.services.feedback import feedback_answer, feedback_open
from loyalty.models import (
    Card,
    CardState,
    Consent,
    CustomField,
    Member,
    MemberEvent,
    Receipt,
    ReceiptLine,
    ReceiptState,
)
from loyalty.services import ledger
from offers.models import PersonalProduct, PersonalProductProgram
from portal.models import LoginCode, TargetedContent
from portal.services.auth import token_issue
from pos.services import api_key_create
from segments.models import AudienceMember, TargetAudience
from tests import factories

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"
PHONE = "+79161234567"


def code_sent_to(address: str) -> str:
    """The code in the newest message queued for ``address``, as the member reads it."""
    message = Message.objects.filter(address=address).order_by("-pk").first()
    assert message is not None, f"no message to {address}"
    return re.search(r"\b(\d{6})\b", message.content["text"]).group(1)


def as_member(member: Member) -> APIClient:
    _token, key = token_issue(member=member, name="test phone")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def anna(db) -> Member:
    return factories.MemberFactory(phone=PHONE, email="anna@example.com")


@pytest.fixture
def boris(db) -> Member:
    return factories.MemberFactory(first_name="Борис", phone="+79167654321")


@pytest.fixture
def app(anna) -> APIClient:
    return as_member(anna)


@pytest.fixture
def store(db):
    return factories.PointOfSaleFactory(name="Store on Main St")


# --- signing in -----------------------------------------------------------------------------
def test_a_member_signs_in_with_the_code_sent_to_their_phone(anna):
    # given
    client = APIClient()
    # when: the app asks for a code with the phone as the member types it
    sent = client.post(f"{ME}auth/code", {"login": "8 (916) 123-45-67"}, format="json")
    code = code_sent_to(PHONE)
    issued = client.post(
        f"{ME}auth/token", {"login": PHONE, "code": code, "device_name": "Pixel"}, format="json"
    )
    # then
    assert sent.status_code == 202, sent.json()
    assert sent.json()["channel"] == "sms" and sent.json()["retry_after"] == 60
    assert issued.status_code == 201, issued.json()
    body = issued.json()
    assert body["token"].startswith("mt_") and body["member_id"] == anna.pk
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    me = client.get(ME)
    assert me.status_code == 200 and me.json()["id"] == anna.pk


def test_a_member_signs_in_by_email_too(anna):
    client = APIClient()
    assert client.post(f"{ME}auth/code", {"login": "Anna@Example.com"}, format="json").json()["channel"] == (
        "email"
    )
    issued = client.post(
        f"{ME}auth/token",
        {"login": "anna@example.com", "code": code_sent_to("anna@example.com")},
        format="json",
    )
    assert issued.status_code == 201 and issued.json()["member_id"] == anna.pk


def test_an_unknown_address_is_answered_like_a_member_but_nothing_is_sent(anna):
    client = APIClient()
    known = client.post(f"{ME}auth/code", {"login": PHONE}, format="json")
    unknown = client.post(f"{ME}auth/code", {"login": "+79160000000"}, format="json")
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert not Message.objects.filter(address="+79160000000").exists()
    refused = client.post(f"{ME}auth/token", {"login": "+79160000000", "code": "123456"}, format="json")
    assert refused.status_code == 400 and "code" in refused.json()["errors"]


def test_a_login_that_is_neither_phone_nor_email_is_400_naming_login(db):
    response = APIClient().post(f"{ME}auth/code", {"login": "12"}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert list(response.json()["errors"]) == ["login"]


def test_wrong_codes_count_and_the_code_dies_after_the_limit(anna, settings):
    # given a code and three tries allowed
    settings.PORTAL = {**settings.PORTAL, "CODE_ATTEMPTS": 3}
    client = APIClient()
    client.post(f"{ME}auth/code", {"login": PHONE}, format="json")
    code = code_sent_to(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    # when
    answers = [
        client.post(f"{ME}auth/token", {"login": PHONE, "code": wrong}, format="json") for _ in range(3)
    ]
    late = client.post(f"{ME}auth/token", {"login": PHONE, "code": code}, format="json")
    # then: each wrong try names the field, and the right code no longer works
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert all(a.json()["code"] == "code_invalid" and "code" in a.json()["errors"] for a in answers)
    assert LoginCode.objects.get(address=PHONE).attempts == 3
    assert late.status_code == 400
    assert not anna.api_tokens.exists()


def test_a_second_code_within_the_resend_gap_is_429_with_retry_after(anna):
    client = APIClient()
    assert client.post(f"{ME}auth/code", {"login": PHONE}, format="json").status_code == 202
    again = client.post(f"{ME}auth/code", {"login": PHONE}, format="json")
    assert again.status_code == 429
    assert again.json()["code"] == "code_throttled"
    assert 0 < int(again["Retry-After"]) <= 60
    assert Message.objects.filter(address=PHONE).count() == 1


def test_codes_asked_from_one_network_are_limited(db, settings):
    settings.PORTAL = {**settings.PORTAL, "CODES_PER_IP_HOUR": 2}
    client = APIClient()

    def ask(phone: str, ip: str):
        return client.post(f"{ME}auth/code", {"login": phone}, format="json", REMOTE_ADDR=ip)

    assert [ask(f"+7916000000{i}", "10.0.0.1").status_code for i in range(3)] == [202, 202, 429]
    assert ask("+79160000009", "10.0.0.2").status_code == 202


# --- the token ------------------------------------------------------------------------------
MEMBER_ENDPOINTS = [
    ("get", ""),
    ("patch", ""),
    ("post", "auth/logout"),
    ("post", "contacts/code"),
    ("post", "contacts/confirm"),
    ("get", "questionnaire"),
    ("post", "questionnaire"),
    ("get", "balance"),
    ("get", "cards"),
    ("post", "cards/bind"),
    ("get", "history/receipts"),
    ("get", "history/receipts/1"),
    ("get", "history/movements"),
    ("get", "offers"),
    ("get", "offers/personal"),
    ("get", "offers/1"),
    ("get", "personal-products"),
    ("put", "personal-products/1"),
    ("get", "subscriptions"),
    ("put", "subscriptions"),
    ("get", "subscriptions/reasons"),
    ("get", "feedback"),
    ("post", "feedback"),
    ("get", "feedback/topics"),
    ("get", "feedback/1"),
    ("post", "feedback/1/messages"),
    ("get", "feedback/1/messages/1/attachment"),
    ("post", "devices"),
    ("post", "devices/unregister"),
    ("post", "events"),
]


@pytest.mark.parametrize(("method", "path"), MEMBER_ENDPOINTS)
def test_every_member_endpoint_needs_a_member_token(anna, method, path):
    response = getattr(APIClient(), method)(f"{ME}{path}", {}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response["Content-Type"] == "application/problem+json"


def test_back_office_credentials_are_no_member(anna):
    # given a superuser's session, a DRF token and a partner's API key
    admin = User.objects.create_superuser(username="admin", password="x")
    session = APIClient()
    session.force_login(admin)
    drf_token = APIClient()
    drf_token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
    api_key = APIClient()
    issued = api_key_create(name="Tills", partner=factories.PartnerFactory())
    api_key.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.token}")
    # then none of them opens the member API
    assert [c.get(ME).status_code for c in (session, drf_token, api_key)] == [401, 401, 401]


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer mt_nonsense", "Bearer a b", "Bearer not-a-member-token"]
)
def test_a_malformed_or_unknown_token_is_401(anna, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(ME).status_code == 401


def test_after_logout_the_token_is_refused(app):
    assert app.get(ME).status_code == 200
    assert app.post(f"{ME}auth/logout").status_code == 204
    assert app.get(ME).status_code == 401


def test_an_expired_token_is_refused(anna, settings):
    app = as_member(anna)
    with time_machine.travel(timezone.now() + dt.timedelta(days=settings.PORTAL["TOKEN_DAYS"], minutes=1)):
        assert app.get(ME).status_code == 401


def test_a_blocked_member_token_is_refused(anna, app):
    Member.objects.filter(pk=anna.pk).update(state="blocked")
    assert app.get(ME).status_code == 401


# --- registration ---------------------------------------------------------------------------
def test_registration_creates_the_member_with_consents_and_binds_a_free_card(db):
    # given a card handed out at a store, bound to nobody
    card = factories.CardFactory(member=None, state=CardState.ISSUED)
    client = APIClient()
    sent = client.post(f"{ME}auth/code", {"login": "+79165550000", "purpose": "register"}, format="json")
    # when
    response = client.post(
        f"{ME}auth/register",
        {
            "login": "+7 916 555-00-00",
            "code": code_sent_to("+79165550000"),
            "first_name": "Вера",
            "last_name": "Петрова",
            "birth_date": "1990-05-17",
            "consents": {"sms": True, "email": False, "push": True, "social": True},
            "card_number": card.number,
            "device_name": "iPhone",
        },
        format="json",
    )
    # then
    assert sent.status_code == 202
    assert response.status_code == 201, response.json()
    member = Member.objects.get(phone="+79165550000")
    assert response.json()["member_id"] == member.pk
    assert (member.first_name, member.birth_date, member.registration_channel) == (
        "Вера",
        dt.date(1990, 5, 17),
        "mobile_app",
    )
    consents = dict(Consent.objects.filter(member=member).values_list("channel", "granted"))
    assert consents == {"sms": True, "email": False, "push": True, "social": True}
    card.refresh_from_db()
    assert card.member == member
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    assert client.get(ME).json()["first_name"] == "Вера"


def test_registration_with_another_members_card_creates_nobody(boris):
    theirs = factories.CardFactory(member=boris)
    client = APIClient()
    client.post(f"{ME}auth/code", {"login": "+79165550000", "purpose": "register"}, format="json")
    response = client.post(
        f"{ME}auth/register",
        {
            "login": "+79165550000",
            "code": code_sent_to("+79165550000"),
            "first_name": "Вера",
            "card_number": theirs.number,
        },
        format="json",
    )
    assert response.status_code == 400 and "card_number" in response.json()["errors"]
    assert not Member.objects.filter(phone="+79165550000").exists()


def test_registration_needs_a_registration_code_and_wrong_ones_count(db):
    client = APIClient()
    client.post(f"{ME}auth/code", {"login": "+79165550000", "purpose": "register"}, format="json")
    response = client.post(
        f"{ME}auth/register", {"login": "+79165550000", "code": "000000", "first_name": "Вера"}, format="json"
    )
    assert response.status_code == 400 and "code" in response.json()["errors"]
    assert not Member.objects.filter(phone="+79165550000").exists()
    assert LoginCode.objects.get(address="+79165550000").attempts == 1


# --- profile, contacts, questionnaire -------------------------------------------------------
def test_me_shows_profile_status_and_card(anna, app):
    card = factories.CardFactory(member=anna)
    body = app.get(ME).json()
    assert body["phone"] == PHONE and body["first_name"] == anna.first_name
    assert body["card"]["number"] == card.number
    assert set(body["status"]) == {"current", "next", "qualifying", "needed", "percent"}


def test_patch_changes_the_profile_and_keeps_other_answers(anna, app):
    CustomField.objects.create(code="pet", label="Pet", kind="choice", choices=["cat", "dog"])
    CustomField.objects.create(code="shoe", label="Shoe size", kind="number")
    Member.objects.filter(pk=anna.pk).update(custom_fields={"shoe": "38"})
    response = app.patch(
        ME, {"first_name": "Анастасия", "city": "Казань", "custom_fields": {"pet": "cat"}}, format="json"
    )
    assert response.status_code == 200, response.json()
    anna.refresh_from_db()
    assert (anna.first_name, anna.city) == ("Анастасия", "Казань")
    assert anna.custom_fields == {"shoe": "38", "pet": "cat"}


def test_an_answer_to_a_retired_field_survives_a_patch(anna, app):
    CustomField.objects.create(code="old", label="Old", kind="text", active=False)
    CustomField.objects.create(code="pet", label="Pet", kind="text")
    Member.objects.filter(pk=anna.pk).update(custom_fields={"old": "kept"})
    response = app.patch(ME, {"custom_fields": {"pet": "cat"}}, format="json")
    anna.refresh_from_db()
    assert response.status_code == 200 and anna.custom_fields == {"old": "kept", "pet": "cat"}


def test_patch_refuses_contacts_and_unknown_custom_fields(anna, app):
    CustomField.objects.create(code="old", label="Old", kind="text", active=False)
    phone = app.patch(ME, {"phone": "+79160000001"}, format="json")
    custom = app.patch(ME, {"custom_fields": {"old": "x"}}, format="json")
    assert phone.status_code == 400 and "phone" in phone.json()["errors"]
    assert custom.status_code == 400 and "custom_fields.old" in custom.json()["errors"]
    anna.refresh_from_db()
    assert anna.phone == PHONE and anna.custom_fields == {}


def test_a_new_email_is_bound_after_its_code(anna, app):
    sent = app.post(f"{ME}contacts/code", {"login": "anna.new@example.com"}, format="json")
    wrong = app.post(f"{ME}contacts/confirm", {"login": "anna.new@example.com", "code": "x"}, format="json")
    confirmed = app.post(
        f"{ME}contacts/confirm",
        {"login": "anna.new@example.com", "code": code_sent_to("anna.new@example.com")},
        format="json",
    )
    assert sent.status_code == 202 and sent.json()["channel"] == "email"
    assert wrong.status_code == 400 and "code" in wrong.json()["errors"]
    assert confirmed.status_code == 200, confirmed.json()
    assert confirmed.json()["email"] == "anna.new@example.com"
    assert MemberEvent.objects.filter(member=anna, event_type="email_bound", channel="mobile_app").exists()


def test_another_members_code_does_not_bind_their_phone(anna, boris, app):
    # Boris asks for a code to bind a number; Anna cannot use it for herself.
    as_member(boris).post(f"{ME}contacts/code", {"login": "+79165550000"}, format="json")
    response = app.post(
        f"{ME}contacts/confirm",
        {"login": "+79165550000", "code": code_sent_to("+79165550000")},
        format="json",
    )
    assert response.status_code == 400
    anna.refresh_from_db()
    assert anna.phone == PHONE


def test_the_questionnaire_records_its_event_once_complete(anna, app):
    CustomField.objects.create(code="pet", label="Pet", kind="choice", choices=["cat", "dog"], required=True)
    CustomField.objects.create(code="hobby", label="Hobby", kind="text")
    fields = app.get(f"{ME}questionnaire").json()["fields"]
    incomplete = app.post(f"{ME}questionnaire", {"custom_fields": {"hobby": "chess"}}, format="json")
    done = app.post(f"{ME}questionnaire", {"custom_fields": {"pet": "dog", "hobby": "chess"}}, format="json")
    again = app.post(f"{ME}questionnaire", {"custom_fields": {"pet": "cat"}}, format="json")
    assert {f["code"]: f["required"] for f in fields} == {"pet": True, "hobby": False}
    assert incomplete.status_code == 400 and "custom_fields.pet" in incomplete.json()["errors"]
    assert done.status_code == 200 and done.json()["event_recorded"] is True
    assert again.status_code == 200 and again.json()["event_recorded"] is False
    assert MemberEvent.objects.filter(member=anna, event_type="questionnaire_filled").count() == 1


# --- balance, cards, history ----------------------------------------------------------------
def test_balance_and_movements_say_why_the_points_moved(anna, app):
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=anna),
        amount=Decimal("150"),
        source=ledger.Source(type="offer", label="Welcome bonus"),
    )
    balance = app.get(f"{ME}balance").json()
    movements = app.get(f"{ME}history/movements").json()
    assert balance["balances"][0]["available"] == "150.00"
    assert movements["results"][0]["reason"] == "Welcome bonus"
    assert movements["results"][0]["available_delta"] == "150.00"
    assert movements["next_offset"] is None


def receipt_make(member: Member, store, number: str, total: str = "500.00") -> Receipt:
    receipt = Receipt.objects.create(
        point_of_sale=store,
        external_id=number,
        member=member,
        state=ReceiptState.CONFIRMED,
        amount=Decimal(total),
        total=Decimal(total),
    )
    ReceiptLine.objects.create(
        receipt=receipt, position=1, sku="COFFEE", name="Coffee", quantity=1, price=total, amount=total
    )
    return receipt


def test_receipts_page_by_cursor_and_only_the_members_own(anna, boris, app, store):
    mine = [receipt_make(anna, store, f"A-{i}") for i in range(3)]
    theirs = receipt_make(boris, store, "B-1")
    first = app.get(f"{ME}history/receipts", {"limit": 2}).json()
    second = app.get(f"{ME}history/receipts", {"limit": 2, "before": first["next_before"]}).json()
    assert [r["number"] for r in first["results"] + second["results"]] == ["A-2", "A-1", "A-0"]
    assert second["next_before"] is None
    assert first["results"][0]["lines"][0]["sku"] == "COFFEE"
    assert app.get(f"{ME}history/receipts/{mine[0].pk}").json()["number"] == "A-0"
    other = app.get(f"{ME}history/receipts/{theirs.pk}")
    assert other.status_code == 404 and other.json()["code"] == "not_found"


def test_a_free_card_binds_another_members_card_is_not_found_a_blocked_one_conflicts(anna, boris, app):
    free = factories.CardFactory(member=None, state=CardState.ISSUED)
    theirs = factories.CardFactory(member=boris)
    blocked = factories.CardFactory(member=None, state=CardState.BLOCKED)
    bound = app.post(f"{ME}cards/bind", {"number": free.number}, format="json")
    stolen = app.post(f"{ME}cards/bind", {"number": theirs.number}, format="json")
    unknown = app.post(f"{ME}cards/bind", {"number": "7800000000000"}, format="json")
    conflict = app.post(f"{ME}cards/bind", {"number": blocked.number}, format="json")
    assert bound.status_code == 200 and bound.json()["number"] == free.number
    # another member's card is answered exactly like a number that does not exist
    assert stolen.status_code == unknown.status_code == 404 and stolen.json() == unknown.json()
    assert conflict.status_code == 409 and conflict.json()["code"] == "card_state"
    assert Card.objects.get(pk=theirs.pk).member == boris
    assert [c["number"] for c in app.get(f"{ME}cards").json()] == [free.number]


# --- offers ---------------------------------------------------------------------------------
def test_offers_show_everyones_and_the_members_audience_only(anna, boris, app):
    mine, theirs = TargetAudience.objects.create(name="Anna's"), TargetAudience.objects.create(name="Boris's")
    AudienceMember.objects.create(audience=mine, member=anna)
    AudienceMember.objects.create(audience=theirs, member=boris)
    common = TargetedContent.objects.create(title="For all", published=True)
    personal = TargetedContent.objects.create(title="For Anna", published=True, audience=mine)
    hidden = TargetedContent.objects.create(title="For Boris", published=True, audience=theirs)
    web_only = TargetedContent.objects.create(title="Web", published=True, in_app=False)
    assert {c["id"] for c in app.get(f"{ME}offers").json()} == {common.pk, personal.pk}
    assert [c["id"] for c in app.get(f"{ME}offers/personal").json()] == [personal.pk]
    assert app.get(f"{ME}offers/{personal.pk}").json()["personal"] is True
    assert app.get(f"{ME}offers/{hidden.pk}").status_code == 404
    assert app.get(f"{ME}offers/{web_only.pk}").status_code == 404


# --- personal products ----------------------------------------------------------------------
def test_personal_products_are_picked_within_the_lists_limit(anna, app):
    now = timezone.now()
    products = [factories.ProductFactory() for _ in range(3)]
    stray = factories.ProductFactory()
    program = PersonalProductProgram.objects.create(
        name="Pick two",
        max_picks=2,
        starts_at=now - dt.timedelta(days=1),
        ends_at=now + dt.timedelta(days=30),
    )
    program.products.set(products)
    url = f"{ME}personal-products/{program.pk}"
    too_many = app.put(url, {"products": [p.pk for p in products]}, format="json")
    off_list = app.put(url, {"products": [stray.pk]}, format="json")
    picked = app.put(url, {"products": [products[0].pk, products[2].pk]}, format="json")
    lists = app.get(f"{ME}personal-products").json()
    assert too_many.status_code == 400 and "products" in too_many.json()["errors"]
    assert off_list.status_code == 400 and "products" in off_list.json()["errors"]
    assert picked.status_code == 200 and picked.json()["picked"] == sorted([products[0].pk, products[2].pk])
    assert lists[0]["id"] == program.pk and len(lists[0]["products"]) == 3
    assert lists[0]["picked"] == picked.json()["picked"]
    assert PersonalProduct.objects.filter(member=anna).count() == 2
    assert (
        app.put(f"{ME}personal-products/{program.pk + 1}", {"products": []}, format="json").status_code == 404
    )


# --- subscriptions --------------------------------------------------------------------------
def test_unsubscribing_is_recorded_with_the_reason(anna, app):
    news = MailingCategory.objects.create(code="news", name="News")
    reason = UnsubscribeReason.objects.create(text="Too many messages", order=1)
    Consent.objects.create(member=anna, channel="sms", granted=True, changed_at=timezone.now(), source="test")
    reasons = app.get(f"{ME}subscriptions/reasons").json()
    response = app.put(
        f"{ME}subscriptions",
        {
            "channels": {"sms": False, "push": True},
            "categories": {str(news.pk): False},
            "reason_id": reason.pk,
            "comment": "weekly is enough",
        },
        format="json",
    )
    assert reason.pk in [r["id"] for r in reasons]
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["channels"]["sms"] is False and body["channels"]["push"] is True
    assert [c["subscribed"] for c in body["categories"] if c["id"] == news.pk] == [False]
    assert Consent.objects.get(member=anna, channel="sms").granted is False
    changes = SubscriptionChange.objects.filter(member=anna, source="mobile_app")
    sms = changes.get(channel="sms")
    assert (sms.subscribed, sms.reason, sms.comment) == (False, reason, "weekly is enough")
    assert changes.get(category=news).subscribed is False
    assert changes.get(channel="push").reason is None


def test_an_unknown_category_changes_nothing(anna, app):
    response = app.put(
        f"{ME}subscriptions", {"channels": {"sms": False}, "categories": {"999": False}}, format="json"
    )
    assert response.status_code == 400 and "categories" in response.json()["errors"]
    assert not SubscriptionChange.objects.exists()


# --- feedback -------------------------------------------------------------------------------
def test_a_question_with_a_file_is_asked_answered_and_continued(anna, app):
    topic = FeedbackTopic.objects.create(name="Bonuses")
    upload = SimpleUploadedFile("receipt.txt", b"receipt 42", content_type="text/plain")
    opened = app.post(
        f"{ME}feedback",
        {"topic": topic.pk, "subject": "Missing bonuses", "text": "Where are they?", "attachment": upload},
        format="multipart",
    )
    assert opened.status_code == 201, opened.json()
    thread = opened.json()
    message = thread["messages"][0]
    assert message["attachment"]["name"] == "receipt.txt"
    download = app.get(message["attachment"]["url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"receipt 42"
    assert "attachment" in download["Content-Disposition"]
    reply = app.post(f"{ME}feedback/{thread['id']}/messages", {"text": "Any news?"}, format="json")
    assert reply.status_code == 201 and reply.json()["author"] == "member"
    assert [f["id"] for f in app.get(f"{ME}feedback").json()] == [thread["id"]]
    assert topic.pk in [t["id"] for t in app.get(f"{ME}feedback/topics").json()]


def test_another_members_question_and_files_are_not_found(anna, boris, app):
    upload = SimpleUploadedFile("passport.pdf", b"%PDF secret", content_type="application/pdf")
    theirs = feedback_open(member=boris, topic=None, subject="Mine", text="Private", attachment=upload)
    theirs_message = theirs.messages.get()
    operator = User.objects.create_user(username="operator")
    feedback_answer(feedback=theirs, operator=operator, text="Answer")
    mine = feedback_open(member=anna, topic=None, subject="Anna's", text="Hello")
    base = f"{ME}feedback/{theirs.pk}"
    assert app.get(base).status_code == 404
    assert app.post(f"{base}/messages", {"text": "hi"}, format="json").status_code == 404
    assert app.get(f"{base}/messages/{theirs_message.pk}/attachment").status_code == 404
    # nor through Anna's own thread id
    assert app.get(f"{ME}feedback/{mine.pk}/messages/{theirs_message.pk}/attachment").status_code == 404
    assert theirs.messages.count() == 2
    assert [f["id"] for f in app.get(f"{ME}feedback").json()] == [mine.pk]


# --- devices and events ---------------------------------------------------------------------
def test_a_push_token_registers_moves_to_the_member_signed_in_and_unregisters(anna, boris, app):
    device = {"platform": "android", "token": "fcm:abc-123", "app": "club.app"}
    first = app.post(f"{ME}devices", device, format="json")
    again = app.post(f"{ME}devices", device, format="json")
    # the phone changes hands: Boris signs in on it
    boris_app = as_member(boris)
    moved = boris_app.post(f"{ME}devices", {"platform": "android", "token": "fcm:abc-123"}, format="json")
    assert (first.status_code, again.status_code, moved.status_code) == (201, 200, 200)
    row = DeviceToken.objects.get(token="fcm:abc-123")
    assert (row.member, row.app, row.active) == (boris, "club.app", True)
    gone = {"token": "fcm:abc-123"}
    assert app.post(f"{ME}devices/unregister", gone, format="json").status_code == 404
    assert boris_app.post(f"{ME}devices/unregister", gone, format="json").status_code == 204
    row.refresh_from_db()
    assert row.active is False and row.retired_at is not None
    assert boris_app.post(f"{ME}devices", device, format="json").json()["active"] is True


def test_app_installed_is_recorded_once_social_events_each_time(anna, app):
    first = app.post(f"{ME}events", {"type": "app_installed"}, format="json")
    repeat = app.post(f"{ME}events", {"type": "app_installed"}, format="json")
    social = [
        app.post(f"{ME}events", {"type": "social_activity", "payload": {"network": "vk"}}, format="json")
        for _ in range(2)
    ]
    refused = app.post(f"{ME}events", {"type": "purchase_completed"}, format="json")
    nul = app.post(f"{ME}events", {"type": "social_activity", "payload": {"text": "a\x00b"}}, format="json")
    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json()["id"] == first.json()["id"]
    assert [s.status_code for s in social] == [201, 201]
    assert refused.status_code == 400 and "type" in refused.json()["errors"]
    assert nul.status_code == 400 and "payload" in nul.json()["errors"]
    events = MemberEvent.objects.filter(member=anna)
    assert events.filter(event_type="app_installed").count() == 1
    activity = events.filter(event_type="social_activity")
    assert activity.count() == 2 and activity.first().channel == "mobile_app"
    assert activity.first().payload == {"network": "vk"}


# --- schema ---------------------------------------------------------------------------------
def test_the_schema_describes_every_member_operation(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    ops = {
        (method, path.removeprefix("/api/v1/me/")): op
        for path, methods in schema["paths"].items()
        if path.startswith("/api/v1/me/")
        for method, op in methods.items()
    }
    templated = {(m, re.sub(r"\{\w+\}", "1", p)) for m, p in ops}
    assert templated == set(MEMBER_ENDPOINTS) | {
        ("post", "auth/code"),
        ("post", "auth/token"),
        ("post", "auth/register"),
    }
    assert all(op["tags"] == ["Member app"] for op in ops.values())
    assert ops["get", ""]["security"] == [{"MemberToken": []}]
    assert "security" not in ops["post", "auth/code"] or ops["post", "auth/code"]["security"] in ([], [{}])
    assert schema["components"]["securitySchemes"]["MemberToken"]["scheme"] == "bearer"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_member_api_answers_as_its_schema_says(live_server, mode):
    """Generated requests with a valid token: never a server error, and with valid input
    every answer (status, content type, headers, body) is one the schema declares."""
    member = factories.MemberFactory(phone=PHONE, email="anna@example.com")
    factories.CardFactory(member=member)
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=member),
        amount=Decimal("150"),
        source=ledger.Source(type="offer", label="Welcome bonus"),
    )
    _token, key = token_issue(member=member)
    raw = httpx.get(f"{live_server.url}/api/schema/", params={"format": "json"}).json()
    raw["paths"] = {p: ops for p, ops in raw["paths"].items() if p.startswith(ME) and "logout" not in p}
    checks = [not_a_server_error]
    if mode == GenerationMode.POSITIVE:
        checks += [
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ]
    for result in schemathesis.openapi.from_dict(raw).get_all_operations():

        @given(case=result.ok().as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=10,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            case.call_and_validate(
                base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, checks=checks
            )

        run()
