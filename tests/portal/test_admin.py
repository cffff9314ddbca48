"""A marketer prepares targeted content in the back office and sees how the card looks;
an administrator reads the one-time codes without their secrets and revokes app tokens."""

import datetime as dt
import io

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from loyalty import roles
from offers.models import Offer
from offers.services import offer_save
from portal.models import LoginCode, MemberToken, TargetedContent
from portal.services.auth import token_issue, token_member
from segments.models import TargetAudience
from tests import factories

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # noon in Moscow


@pytest.fixture(autouse=True)
def now():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def login_as(client, role: str) -> User:
    user = User.objects.create_user(username=role.lower().replace(" ", "-"), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def png() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 2), "red").save(buffer, "PNG")
    return SimpleUploadedFile("banner.png", buffer.getvalue(), "image/png")


def content_data(**extra) -> dict:
    return {
        "title": "Coffee week",
        "text": "Double bonuses on coffee.",
        "link": "https://shop.example.com/coffee",
        "link_label": "To the shop",
        "in_account": "on",
        "in_app": "on",
        "audience": "",
        "offer": "",
        "shown_from_0": "",
        "shown_from_1": "",
        "lead_days": "3",
        "shown_until_0": "",
        "shown_until_1": "",
        "order": "10",
        **extra,
    }


ADD = "/admin/portal/targetedcontent/add/"
RULES = [{"actions": [{"key": "discount", "params": {"kind": "percent", "value": "5"}}]}]


def test_a_marketer_adds_personal_content_and_sees_the_card(client):
    login_as(client, roles.MARKETER)
    vip = TargetAudience.objects.create(name="VIP")
    # when
    response = client.post(
        ADD,
        content_data(
            audience=vip.pk,
            published="on",
            image=png(),
            shown_from_0="2026-11-25",
            shown_from_1="00:00",
            shown_until_0="2026-12-01",
            shown_until_1="00:00",
        ),
    )
    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    content = TargetedContent.objects.get()
    assert content.audience == vip and content.published and content.in_app and content.image
    page = client.get(reverse("admin:portal_targetedcontent_change", args=[content.pk])).content.decode()
    # the preview card at phone width: its image, title, text and link button
    image_url = reverse("admin:portal_targetedcontent_image", args=[content.pk])
    assert f'id="preview-image" alt="" src="{image_url}"' in page
    assert 'id="preview-title">Coffee week<' in page and "Double bonuses on coffee." in page
    assert 'href="https://shop.example.com/coffee"' in page and ">To the shop<" in page
    assert "from 2026-11-25 00:00 until 2026-12-01 00:00" in page
    # the stored image reaches the preview although media files are not public
    image = client.get(image_url)
    assert image.status_code == 200 and b"".join(image.streaming_content).startswith(b"\x89PNG")
    # and the list says where, to whom and when
    listing = client.get("/admin/portal/targetedcontent/").content.decode()
    assert "account, app" in listing and "VIP" in listing and "2026-11-25 00:00 – 2026-12-01 00:00" in listing


def test_the_display_window_follows_the_advertised_offer(client):
    login_as(client, roles.MARKETER)
    offer = offer_save(
        offer=Offer(),
        rules=RULES,
        name="Winter sale",
        event_type="discount_calculated",
        starts_at=dt.datetime(2026, 12, 10, 21, 0, tzinfo=dt.UTC),
        ends_at=dt.datetime(2026, 12, 31, 21, 0, tzinfo=dt.UTC),
    )
    content = TargetedContent.objects.create(title="Winter", offer=offer, lead_days=5)
    # when
    page = client.get(reverse("admin:portal_targetedcontent_change", args=[content.pk])).content.decode()
    # then: five days before the offer starts until it ends, in Moscow time
    assert "from 2026-12-06 00:00 until 2027-01-01 00:00" in page
    assert "Derived from the advertised offer" in page
    # and the link button is hidden when there is no link
    assert 'href="#" target="_blank" rel="noopener noreferrer" hidden' in page


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"in_account": "", "in_app": ""}, "in_account", "Choose where it is shown"),
        (
            {
                "shown_from_0": "2026-12-01",
                "shown_from_1": "00:00",
                "shown_until_0": "2026-11-30",
                "shown_until_1": "00:00",
            },
            "shown_until",
            "must come after its start",
        ),
        ({"link": "", "link_label": "Go"}, "link", "Give the address"),
        ({"link": "javascript:alert(1)"}, "link", "valid URL"),
    ],
)
def test_bad_content_is_refused_on_its_field(client, fields, field, says):
    login_as(client, roles.MARKETER)
    page = client.post(ADD, content_data(**fields))
    assert page.status_code == 200
    errors = page.context["adminform"].form.errors
    assert list(errors) == [field] and says in " ".join(errors[field])
    assert not TargetedContent.objects.exists()


def test_content_starting_after_its_offer_ended_is_refused(client):
    login_as(client, roles.MARKETER)
    offer = offer_save(
        offer=Offer(),
        rules=RULES,
        name="Short",
        event_type="discount_calculated",
        starts_at=dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
        ends_at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
    )
    page = client.post(ADD, content_data(offer=offer.pk, shown_from_0="2026-11-28", shown_from_1="00:00"))
    assert page.status_code == 200
    assert "nobody would see it" in " ".join(page.context["adminform"].form.errors["shown_from"])


def test_order_and_publication_are_edited_in_the_list(client):
    login_as(client, roles.MARKETER)
    content = TargetedContent.objects.create(title="A", order=100)
    response = client.post(
        "/admin/portal/targetedcontent/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": content.pk,
            "form-0-order": "5",
            "form-0-published": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    content.refresh_from_db()
    assert content.order == 5 and content.published


def test_the_content_image_is_not_served_to_staff_without_the_right(client):
    content = TargetedContent.objects.create(title="A", image=png())
    login_as(client, roles.OPERATOR)
    assert client.get(reverse("admin:portal_targetedcontent_image", args=[content.pk])).status_code == 403


def test_login_codes_are_listed_without_hashes_and_with_masked_addresses(client):
    member = factories.MemberFactory(phone="+79161234567")
    phone = LoginCode.objects.create(
        channel="sms",
        address="+79161234567",
        purpose="sign_in",
        member=member,
        code_hash="c0dehash" * 8,
        expires_at=NOW + dt.timedelta(minutes=5),
    )
    LoginCode.objects.create(
        channel="email",
        address="anna.petrova@example.com",
        purpose="bind",
        code_hash="otherhash" * 7,
        expires_at=NOW - dt.timedelta(minutes=1),
    )
    login_as(client, roles.ADMINISTRATOR)
    # when
    listing = client.get("/admin/portal/logincode/").content.decode()
    detail = client.get(reverse("admin:portal_logincode_change", args=[phone.pk])).content.decode()
    # then
    for page in (listing, detail):
        assert "c0dehash" not in page and "+79161234567" not in page
        assert "+7916*****67" in page
    assert "otherhash" not in listing and "anna.petrova@" not in listing and "an***@example.com" in listing
    assert "expired" in listing and "valid" in listing
    # a full address, typed any way, finds its codes; a prefix finds nothing
    found = client.get("/admin/portal/logincode/", {"q": "8 916 123-45-67"})
    assert list(found.context["cl"].result_list) == [phone]
    assert list(client.get("/admin/portal/logincode/", {"q": "+7916"}).context["cl"].result_list) == []
    # and nobody adds or edits a code by hand
    assert client.get("/admin/portal/logincode/add/").status_code == 403
    assert (
        b'name="code_hash"'
        not in client.get(reverse("admin:portal_logincode_change", args=[phone.pk])).content
    )


def test_an_administrator_revokes_app_tokens(client):
    member = factories.MemberFactory()
    token, key = token_issue(member=member, name="iPhone")
    kept, kept_key = token_issue(member=member, name="iPad")
    login_as(client, roles.ADMINISTRATOR)
    listing = client.get("/admin/portal/membertoken/").content.decode()
    assert "iPhone" in listing and token.key_hash not in listing
    # when
    response = client.post("/admin/portal/membertoken/", {"action": "revoke", "_selected_action": [token.pk]})
    # then: the app signed in with it is out, the other device stays
    assert response.status_code == 302
    assert token_member(key) is None and token_member(kept_key) is not None
    token.refresh_from_db()
    assert token.revoked_at == NOW


def test_marketers_see_neither_codes_nor_tokens(client):
    login_as(client, roles.MARKETER)
    assert client.get("/admin/portal/logincode/").status_code == 403
    assert client.get("/admin/portal/membertoken/").status_code == 403


def test_a_viewer_of_tokens_cannot_revoke_them(client):
    member = factories.MemberFactory()
    token, key = token_issue(member=member, name="iPhone")
    login_as(client, roles.ANALYST)
    page = client.get("/admin/portal/membertoken/")
    assert page.status_code == 200 and b'value="revoke"' not in page.content
    client.post("/admin/portal/membertoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert token_member(key) is not None
    assert MemberToken.objects.get().revoked_at is None
