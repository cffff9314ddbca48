"""What each back-office role sees and may change."""

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from loyalty import roles
from loyalty.models import LedgerEntry, Member
from loyalty.services import ledger
from loyalty.services.members import member_create


def login_as(client, role: str) -> User:
    user = User.objects.create_user(username=role.lower().replace(" ", "-"), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def anna(db):
    return member_create(
        first_name="Анна", last_name="Иванова", phone="+79161234567", email="anna@example.ru"
    )


@pytest.mark.parametrize(
    ("role", "list_status", "add_status"),
    [
        (roles.ADMINISTRATOR, 200, 200),
        (roles.MARKETER, 200, 403),
        (roles.ANALYST, 200, 403),
        (roles.OPERATOR, 200, 403),
        (roles.DESIGNER, 403, 403),
    ],
)
def test_who_sees_and_adds_members(client, anna, role, list_status, add_status):
    login_as(client, role)
    assert client.get(reverse("admin:loyalty_member_changelist")).status_code == list_status
    assert client.get(reverse("admin:loyalty_member_add")).status_code == add_status


def test_analyst_reads_a_member_but_cannot_change_it(client, anna):
    login_as(client, roles.ANALYST)
    url = reverse("admin:loyalty_member_change", args=[anna.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="last_name"' not in page.content  # read-only view
    assert client.post(url, {"last_name": "X"}).status_code == 403
    anna.refresh_from_db()
    assert anna.last_name == "Иванова"


def test_index_shows_each_role_its_sections(client, anna):
    login_as(client, roles.ANALYST)
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:loyalty_member_changelist") in index
    assert reverse("admin:auth_user_changelist") not in index
    client.logout()
    login_as(client, roles.DESIGNER)
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:loyalty_member_changelist") not in index


def test_operator_adjusts_bonuses_with_a_reason_marketer_cannot(client, anna):
    url = reverse("admin:loyalty_member_adjust", args=[anna.pk])
    currency = ledger.currency_default()
    login_as(client, roles.MARKETER)
    assert client.post(url, {"currency": currency.pk, "amount": "50", "reason": "x"}).status_code == 403
    client.logout()
    operator = login_as(client, roles.OPERATOR)
    # a missing reason is refused on its field
    page = client.post(url, {"currency": currency.pk, "amount": "50", "reason": ""})
    assert page.status_code == 200 and "reason" in page.context["form"].errors
    response = client.post(url, {"currency": currency.pk, "amount": "50", "reason": "Complaint 17"})
    assert response.status_code == 302
    entry = LedgerEntry.objects.get(account__member=anna)
    assert entry.operation.operator == operator and entry.operation.reason == "Complaint 17"


def test_member_page_shows_balance_cards_history(admin_client, anna):
    account = ledger.account_get_or_create(member=anna)
    ledger.bonus_accrue(
        account=account, amount=120, source=ledger.Source(type="offer", label="Welcome bonus")
    )
    page = admin_client.get(reverse("admin:loyalty_member_change", args=[anna.pk])).content.decode()
    assert "Welcome bonus" in page and "120" in page
    assert "Contact quality" in page


@pytest.mark.parametrize("written", ["8 (916) 123-45-67", "+7 916 123 45 67", "9161234567"])
def test_search_finds_a_member_by_phone_in_any_format(admin_client, anna, written):
    page = admin_client.get(reverse("admin:loyalty_member_changelist"), {"q": written})
    assert list(page.context["cl"].result_list) == [anna]


def test_admin_form_refuses_bad_phone_on_its_field(admin_client, db):
    page = admin_client.post(
        reverse("admin:loyalty_member_add"),
        {
            "first_name": "Анна",
            "phone": "12345",
            "email": "anna@",
            "state": "registered",
            "registration_channel": "pos",
            "registered_at_0": "2026-01-01",
            "registered_at_1": "10:00",
            "children": "[]",
            "pets": "[]",
            "custom_fields": "{}",
        },
    )
    assert page.status_code == 200
    errors = page.context["adminform"].form.errors
    assert "phone" in errors and "email" in errors
    assert not Member.objects.exists()


def test_admin_creates_member_through_the_service(admin_client, db):
    response = admin_client.post(
        reverse("admin:loyalty_member_add"),
        {
            "first_name": "Анна",
            "phone": "8 916 765 43 21",
            "city": "Омск",
            "state": "registered",
            "registration_channel": "pos",
            "registered_at_0": "2026-01-01",
            "registered_at_1": "10:00",
            "children": "[]",
            "pets": "[]",
            "custom_fields": "{}",
            "consent_sms": "on",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    member = Member.objects.get()
    assert member.phone == "+79167654321" and member.time_zone == "Asia/Omsk"
    assert member.consents.get(channel="sms").granted
    assert member.events.filter(event_type="registration_completed").exists()


def test_csv_export_streams_the_selection(admin_client, anna):
    response = admin_client.post(
        reverse("admin:loyalty_member_changelist"),
        {"action": "export_csv", "_selected_action": [anna.pk]},
    )
    body = b"".join(response.streaming_content).decode()
    assert "+79161234567" in body and "Иванова" in body


def test_contact_quality_page(admin_client, anna):
    page = admin_client.get(reverse("admin:loyalty_member_quality"))
    assert page.status_code == 200
    assert page.context["rows"][0]["valid_phone"] == 1


def test_blocking_from_the_list_records_the_reason_and_event(admin_client, anna):
    admin_client.post(
        reverse("admin:loyalty_member_changelist"),
        {"action": "block_members", "_selected_action": [anna.pk]},
    )
    anna.refresh_from_db()
    assert anna.state == "blocked" and "admin" in anna.blocked_reason
    assert anna.events.filter(event_type="member_blocked").exists()


def test_the_operators_point_of_sale_and_receipt_pages_link_only_to_pages_it_may_read(client, anna):
    """The operator reads points of sale and receipts; their pages link the partner and
    the payment method, which the operator must be able to open (not a 403)."""
    import re
    from decimal import Decimal

    from loyalty.models import PaymentMethod
    from loyalty.services.receipts import LineInput, PaymentInput, receipt_record
    from tests import factories

    shop = factories.PointOfSaleFactory(name="Shop")
    PaymentMethod.objects.create(code="card", name="Card", kind="card")
    receipt = receipt_record(
        point_of_sale=shop,
        external_id="R-1",
        lines=[LineInput(sku="MILK", quantity=Decimal(1), price=Decimal(80), name="Milk")],
        payments=[PaymentInput("card", Decimal(80))],
        member=anna,
    )
    login_as(client, roles.OPERATOR)
    links = set()
    for page in (
        reverse("admin:loyalty_pointofsale_change", args=[shop.pk]),
        reverse("admin:loyalty_receipt_change", args=[receipt.pk]),
    ):
        html = client.get(page).content.decode()
        links |= set(re.findall(r'href="(/admin/loyalty/(?:partner|paymentmethod)/\d+/change/)"', html))
    assert any("/partner/" in link for link in links) and any("/paymentmethod/" in link for link in links)
    assert {link: client.get(link).status_code for link in links} == {link: 200 for link in links}
