"""The personal account's pages: signing in with a code, what each page shows, that a
member reaches only their own data, and how many queries each page section costs."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from communications.models import (
    CategoryOptOut,
    Feedback,
    FeedbackStatus,
    MailingCategory,
    Message,
    SubscriptionChange,
)
from communications.services.feedback import feedback_answer, feedback_open
from loyalty.models import Card, CardState, Consent, MemberEvent, Status
from loyalty.services import ledger
from loyalty.services.receipts import AccrualInput, ConfirmInput, LineInput, receipt_confirm, receipt_record
from offers.models import PersonalProduct, PersonalProductProgram
from portal.models import LoginCode, TargetedContent
from portal.session import SESSION_KEY
from segments.models import AudienceMember, TargetAudience
from tests import factories


def code_sent_to(address: str) -> str:
    message = Message.objects.filter(address=address).order_by("-pk").first()
    assert message is not None, f"no message to {address}"
    return re.search(r"\b(\d{6})\b", message.content["text"]).group(1)


def signed_in(client, member):
    session = client.session
    session[SESSION_KEY] = member.pk
    session.save()
    return client


@pytest.fixture
def shop(db):
    return factories.PointOfSaleFactory(name="Shop on Tverskaya")


def purchase(member, shop, external_id: str, total: str, bonus: str = "0", card=None):
    receipt = receipt_record(
        point_of_sale=shop,
        external_id=external_id,
        lines=[LineInput(sku="MILK", quantity=Decimal(2), price=Decimal(total) / 2, name="Milk")],
        member=member if card is None else None,
        card=card,
    )
    accruals = [AccrualInput(amount=Decimal(bonus))] if Decimal(bonus) else []
    return receipt_confirm(receipt=receipt, confirm=ConfirmInput(accruals=accruals))


# --- signing in ---------------------------------------------------------------------------
def test_a_member_signs_in_with_the_code_sent_to_their_phone(client, member):
    # given
    response = client.post(reverse("portal:sign_in"), {"login": "8 (916) " + member.phone[5:]})
    assert response.status_code == 302 and response.url == reverse("portal:code")
    # when
    code = code_sent_to(member.phone)
    response = client.post(reverse("portal:code"), {"code": code})
    # then
    assert response.status_code == 302 and response.url == reverse("portal:home")
    assert client.session[SESSION_KEY] == member.pk
    assert client.get(reverse("portal:home")).status_code == 200
    message = Message.objects.get(address=member.phone)
    assert message.purpose == "transactional"
    stored = LoginCode.objects.get(address=member.phone)
    assert code not in stored.code_hash and stored.used_at is not None


def test_the_code_works_once_and_dies_after_too_many_wrong_tries(client, member, settings):
    settings.PORTAL = {**settings.PORTAL, "CODE_ATTEMPTS": 3}
    client.post(reverse("portal:sign_in"), {"login": member.phone})
    code = code_sent_to(member.phone)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        response = client.post(reverse("portal:code"), {"code": wrong})
        assert response.status_code == 200 and SESSION_KEY not in client.session
    # the right code no longer helps
    response = client.post(reverse("portal:code"), {"code": code})
    assert SESSION_KEY not in client.session
    assert "Ask for a new one" in response.content.decode()


def test_an_unknown_phone_looks_the_same_and_gets_no_message(client, db):
    response = client.post(reverse("portal:sign_in"), {"login": "+79990001122"})
    assert response.status_code == 302 and response.url == reverse("portal:code")
    assert not Message.objects.exists()


def test_code_requests_are_throttled_per_phone_and_per_ip(client, member, settings):
    # given: a second request right after the first
    client.post(reverse("portal:sign_in"), {"login": member.phone})
    response = client.post(reverse("portal:sign_in"), {"login": member.phone})
    # then
    assert response.status_code == 200 and "moment ago" in response.content.decode()
    assert Message.objects.filter(address=member.phone).count() == 1
    # given: one network asking for codes to many numbers
    settings.PORTAL = {**settings.PORTAL, "CODES_PER_IP_HOUR": 3}
    others = [factories.MemberFactory() for _ in range(3)]
    for other in others:
        client.post(reverse("portal:sign_in"), {"login": other.phone})
    # then: only the allowed number of messages went out from this address
    assert Message.objects.count() == 3
    assert not Message.objects.filter(address=others[-1].phone).exists()


def test_a_bad_phone_is_refused_naming_the_field(client, db):
    response = client.post(reverse("portal:sign_in"), {"login": "12"})
    assert response.status_code == 200
    assert response.context["form"].errors["login"]


def test_registration_with_consents_and_a_card_the_person_holds(client, db):
    # given: a card sold at the till, not yet bound to anyone
    card = Card.objects.create(number="7800000000017", state=CardState.ISSUED)
    # when
    response = client.post(
        reverse("portal:register"),
        {
            "login": "+7 903 555-01-02",
            "first_name": "Olga",
            "last_name": "Petrova",
            "card_number": card.number,
            "consent_sms": "on",
            "rules": "on",
        },
    )
    assert response.status_code == 302
    client.post(reverse("portal:code"), {"code": code_sent_to("+79035550102")})
    # then
    member_id = client.session[SESSION_KEY]
    card.refresh_from_db()
    assert card.member_id == member_id
    consents = dict(Consent.objects.filter(member_id=member_id).values_list("channel", "granted"))
    assert consents["sms"] is True and consents["email"] is False
    assert MemberEvent.objects.filter(member_id=member_id, event_type="registration_completed").exists()


def test_pages_need_a_signed_in_member_and_sessions_expire(client, member, settings):
    for name in (
        "home",
        "history",
        "offers",
        "personal_offers",
        "products",
        "profile",
        "subscriptions",
        "feedback",
    ):
        response = client.get(reverse(f"portal:{name}"))
        assert response.status_code == 302 and response.url.startswith(reverse("portal:sign_in"))
    signed_in(client, member)
    client.get(reverse("portal:home"))
    assert client.session.get_expiry_age() == settings.PORTAL["SESSION_MINUTES"] * 60


def test_signing_out_ends_the_session(client, member):
    signed_in(client, member)
    client.post(reverse("portal:sign_out"))
    assert client.get(reverse("portal:home")).status_code == 302


def test_forms_need_the_csrf_token(member):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post(reverse("portal:sign_in"), {"login": member.phone}).status_code == 403


# --- what the pages show ----------------------------------------------------------------
def test_home_shows_balance_pending_expiring_status_and_card(client, member):
    # given
    now = timezone.now()
    account = ledger.account_get_or_create(member=member)
    ledger.bonus_accrue(
        account=account,
        amount=Decimal(300),
        source=ledger.Source(type="offer"),
        expires_at=now + dt.timedelta(days=10),
    )
    ledger.bonus_accrue(
        account=account,
        amount=Decimal(50),
        source=ledger.Source(type="offer"),
        activates_at=now + dt.timedelta(days=3),
    )
    Status.objects.create(code="gold", name="Gold", rank=10, qualifying_total=Decimal("10000"))
    card = factories.CardFactory(member=member, number="7800123456782")
    # when
    page = signed_in(client, member).get(reverse("portal:home")).content.decode()
    # then
    assert 'data-testid="balance-' in page and "300" in page
    assert "Will become available" in page and "50" in page
    assert "Expiring within 30 days" in page
    assert "Gold" in page and "10,000.00" in page.replace("\xa0", ",")
    assert "7800 1234 5678 2" in page
    qr = client.get(reverse("portal:card_qr"))
    assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content
    assert card.number not in reverse("portal:card_qr")


def test_the_programs_own_currency_name_is_read_in_the_members_language(client, member):
    """The default currency the program made itself is named in the member's language; a
    currency a marketer named is shown as named."""
    from loyalty.models import Currency

    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=member),
        amount=Decimal(10),
        source=ledger.Source(type="offer"),
    )
    gift = Currency.objects.create(code="gift", name="Gift points")
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=member, currency=gift),
        amount=Decimal(5),
        source=ledger.Source(type="offer"),
    )
    member.language = "ru"
    member.save(update_fields=["language"])
    page = signed_in(client, member).get(reverse("portal:home")).content.decode()
    assert "Бонусные баллы" in page and "Bonus points" not in page
    assert "Gift points" in page


def test_history_matches_the_ledger_and_explains_each_movement(client, member, shop, admin_user):
    # given
    purchase(member, shop, "R-1001", "1000", bonus="100")
    account = ledger.account_get_or_create(member=member)
    ledger.bonus_adjust(
        account=account, amount=Decimal(-20), reason="Goodwill correction", operator=admin_user
    )
    # when
    signed_in(client, member)
    receipts = client.get(reverse("portal:history")).content.decode()
    movements = client.get(reverse("portal:history") + "?tab=movements").content.decode()
    # then
    assert receipts.count('data-testid="receipt"') == 1 and "Shop on Tverskaya" in receipts
    assert "+100.00" in receipts
    from loyalty.models import LedgerEntry

    assert (
        movements.count('data-testid="movement"')
        == LedgerEntry.objects.filter(account__member=member).count()
    )
    assert "For purchase R-1001" in movements and "Goodwill correction" in movements


def test_targeted_content_respects_audience_window_and_the_offer(client, member, db):
    # given
    now = timezone.now()
    vip = TargetAudience.objects.create(name="VIP")
    AudienceMember.objects.create(audience=vip, member=member)
    others = TargetAudience.objects.create(name="Others")
    TargetedContent.objects.create(title="For everyone", published=True)
    TargetedContent.objects.create(title="For VIP", audience=vip, published=True)
    TargetedContent.objects.create(title="For others", audience=others, published=True)
    TargetedContent.objects.create(title="Not yet", published=True, shown_from=now + dt.timedelta(days=1))
    TargetedContent.objects.create(title="Over", published=True, shown_until=now - dt.timedelta(days=1))
    TargetedContent.objects.create(title="Draft", published=False)
    TargetedContent.objects.create(title="App only", published=True, in_account=False)
    # when
    signed_in(client, member)
    offers = client.get(reverse("portal:offers")).content.decode()
    personal = client.get(reverse("portal:personal_offers")).content.decode()
    # then
    assert "For everyone" in offers and "For VIP" not in offers
    assert "For VIP" in personal and "For everyone" not in personal
    for hidden in ("For others", "Not yet", "Over", "Draft", "App only"):
        assert hidden not in offers and hidden not in personal


def test_picking_personal_products_feeds_the_engine(client, member, db):
    # given
    now = timezone.now()
    products = [factories.ProductFactory() for _ in range(4)]
    program = PersonalProductProgram.objects.create(
        name="Favourites",
        max_picks=2,
        starts_at=now - dt.timedelta(days=1),
        ends_at=now + dt.timedelta(days=30),
    )
    program.products.set(products[:3])
    signed_in(client, member)
    # when: too many, then a product not on the list, then a good choice
    too_many = client.post(
        reverse("portal:products"), {"program": program.pk, "products": [p.pk for p in products[:3]]}
    )
    stray = client.post(reverse("portal:products"), {"program": program.pk, "products": [products[3].pk]})
    good = client.post(
        reverse("portal:products"), {"program": program.pk, "products": [products[0].pk, products[2].pk]}
    )
    # then
    assert too_many.status_code == 200 and "at most 2" in too_many.content.decode()
    assert stray.status_code == 200 and "not on this list" in stray.content.decode()
    assert good.status_code == 302
    assert set(PersonalProduct.objects.filter(member=member).values_list("product_id", flat=True)) == {
        products[0].pk,
        products[2].pk,
    }
    from offers.context import member_info  # the engine reads the picks

    info = member_info(member, frozenset({"personal_products"}), timezone.now())
    assert info.personal_products == {products[0].sku, products[2].sku}


def test_subscriptions_change_channels_and_categories_with_a_reason(client, member):
    # given
    news = MailingCategory.objects.create(code="news", name="News")
    from communications.models import UnsubscribeReason

    reason = UnsubscribeReason.objects.first()
    Consent.objects.create(member=member, channel="sms", granted=True)
    # when: keep email only, leave the news category
    signed_in(client, member)
    response = client.post(
        reverse("portal:subscriptions"), {"channel_email": "on", "reason": reason.pk, "comment": "too often"}
    )
    # then
    assert response.status_code == 302
    consents = dict(Consent.objects.filter(member=member).values_list("channel", "granted"))
    assert consents["sms"] is False and consents["email"] is True
    assert CategoryOptOut.objects.filter(member=member, category=news).exists()
    change = SubscriptionChange.objects.get(member=member, channel="sms")
    assert change.reason == reason and change.source == "personal_account"


def test_feedback_thread_with_an_attachment_and_the_operators_answer(client, member, django_user_model):
    signed_in(client, member)
    # when: the member writes
    response = client.post(
        reverse("portal:feedback"),
        {
            "subject": "Bonuses missing",
            "text": "My purchase earned nothing",
            "attachment": SimpleUploadedFile("receipt.png", b"\x89PNG...", content_type="image/png"),
        },
    )
    thread = Feedback.objects.get(member=member)
    assert response.status_code == 302 and thread.status == FeedbackStatus.NEW
    # and an operator answers
    operator = django_user_model.objects.create_user("op", password="x", is_staff=True)
    feedback_answer(feedback=thread, operator=operator, text="We added 100 bonuses.")
    page = client.get(reverse("portal:feedback_thread", args=[thread.pk])).content.decode()
    # then
    assert "We added 100 bonuses." in page and 'data-testid="message-operator"' in page
    first = thread.messages.first()
    download = client.get(reverse("portal:feedback_attachment", args=[thread.pk, first.pk]))
    assert download.status_code == 200 and "receipt.png" in download["Content-Disposition"]


# --- a member reaches only their own data ------------------------------------------------
def test_another_members_receipt_feedback_and_attachment_are_not_found(client, member, shop):
    # given
    other = factories.MemberFactory()
    theirs = purchase(other, shop, "R-2002", "500")
    thread = feedback_open(
        member=other,
        topic=None,
        subject="Private",
        text="secret",
        attachment=SimpleUploadedFile("x.txt", b"secret", content_type="text/plain"),
    )
    message = thread.messages.first()
    signed_in(client, member)
    # then
    assert client.get(reverse("portal:receipt", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("portal:feedback_thread", args=[thread.pk])).status_code == 404
    assert client.post(reverse("portal:feedback_thread", args=[thread.pk]), {"text": "hi"}).status_code == 404
    assert client.get(reverse("portal:feedback_attachment", args=[thread.pk, message.pk])).status_code == 404
    assert thread.messages.count() == 1


def test_another_members_card_cannot_be_bound(client, member):
    theirs = factories.CardFactory()
    signed_in(client, member)
    response = client.post(reverse("portal:card_bind"), {"card-card_number": theirs.number})
    theirs.refresh_from_db()
    assert response.status_code == 200 and theirs.member_id != member.pk
    assert "no free card" in response.content.decode()


def test_confirming_a_new_email_binds_it_and_fires_the_event(client, member):
    signed_in(client, member)
    client.post(reverse("portal:contact_change"), {"contact-login": "Anna@Example.com"})
    code = code_sent_to("anna@example.com")
    response = client.post(reverse("portal:contact_confirm"), {"code": code})
    member.refresh_from_db()
    assert response.status_code == 302 and member.email == "anna@example.com"
    assert MemberEvent.objects.filter(member=member, event_type="email_bound").exists()


def test_an_email_of_another_member_cannot_be_bound_and_that_is_told_only_after_the_code(client, member):
    factories.MemberFactory(email="taken@example.com")
    signed_in(client, member)
    # when: asking looks the same as for a free address
    response = client.post(reverse("portal:contact_change"), {"contact-login": "taken@example.com"})
    assert response.status_code == 302
    # then: the code proves the address is held, and only then the refusal comes
    response = client.post(reverse("portal:contact_confirm"), {"code": code_sent_to("taken@example.com")})
    member.refresh_from_db()
    assert response.status_code == 200 and "belongs to another member" in response.content.decode()
    assert member.email != "taken@example.com"


def test_a_confirmation_code_is_only_good_for_the_member_who_asked(client, member):
    # given: another member asks to bind an address and gets its code
    other = factories.MemberFactory()
    signed_in(client, other)
    client.post(reverse("portal:contact_change"), {"contact-login": "shared@example.com"})
    code = code_sent_to("shared@example.com")
    # when: this member tries that code for the same address
    client.logout()
    signed_in(client, member)
    session = client.session
    session["portal_bind"] = {"channel": "email", "value": "shared@example.com"}
    session.save()
    response = client.post(reverse("portal:contact_confirm"), {"code": code})
    # then
    member.refresh_from_db()
    assert response.status_code == 200 and member.email != "shared@example.com"


def test_registering_with_a_members_own_phone_signs_them_in(client, member):
    response = client.post(
        reverse("portal:register"), {"login": member.phone, "first_name": "Someone", "rules": "on"}
    )
    assert response.status_code == 302
    client.post(reverse("portal:code"), {"code": code_sent_to(member.phone)})
    assert client.session[SESSION_KEY] == member.pk
    member.refresh_from_db()
    assert member.first_name != "Someone"


def test_receipt_pages_follow_purchase_time_so_late_receipts_are_not_skipped(member, shop):
    from portal.services.account import receipts_page

    now = timezone.now()
    ids = []
    for i, days in enumerate([1, 2, 3, 0]):
        receipt = purchase(member, shop, f"R-{i}", "100")
        receipt.__class__.objects.filter(pk=receipt.pk).update(purchased_at=now - dt.timedelta(days=days))
        ids.append(receipt.pk)
    late = purchase(member, shop, "R-late", "100")  # highest id, bought 10 days ago
    late.__class__.objects.filter(pk=late.pk).update(purchased_at=now - dt.timedelta(days=10))
    seen = []
    before = None
    while True:
        page = receipts_page(member, before_id=before, limit=2)
        if not page:
            break
        seen += [r.external_id for r in page]
        before = page[-1].pk
    assert seen == ["R-3", "R-0", "R-1", "R-2", "R-late"]


# --- queries per page section -------------------------------------------------------------
@pytest.mark.parametrize(
    "name,sections",
    [
        ("home", 3),
        ("history", 1),
        ("offers", 1),
        ("personal_offers", 1),
        ("subscriptions", 2),
        ("feedback", 1),
    ],
)
def test_pages_cost_at_most_three_queries_per_section(
    client, member, shop, name, sections, django_assert_max_num_queries
):
    # given: a member with a long history
    for i in range(15):
        purchase(member, shop, f"R-{i}", "100", bonus="5")
    for i in range(5):
        feedback_open(member=member, topic=None, subject=f"Q{i}", text="text")
    TargetedContent.objects.create(title="For everyone", published=True)
    signed_in(client, member)
    client.get(reverse(f"portal:{name}"))  # warm per-process caches (translations, statuses)
    # then: session + member, then at most three per section
    with django_assert_max_num_queries(2 + 3 * sections):
        assert client.get(reverse(f"portal:{name}")).status_code == 200


def test_a_published_materials_image_is_served_and_a_draft_is_not(client, db):
    from django.core.files.base import ContentFile

    published = TargetedContent(title="Sale", published=True)
    published.image.save("sale.png", ContentFile(b"\x89PNG\r\n\x1a\n..."), save=True)
    draft = TargetedContent(title="Draft")
    draft.image.save("draft.png", ContentFile(b"\x89PNG\r\n\x1a\n..."), save=True)
    response = client.get(reverse("portal:content_image", args=[published.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert client.get(reverse("portal:content_image", args=[draft.pk])).status_code == 404


def test_trying_card_numbers_is_limited(client, member):
    from django.core.cache import cache

    cache.delete(f"portal:card-tries:{member.pk}")
    free = Card.objects.create(number="7800000000025", state=CardState.ISSUED)
    signed_in(client, member)
    for i in range(10):
        client.post(reverse("portal:card_bind"), {"card-card_number": f"78000000{i:05d}"})
    response = client.post(reverse("portal:card_bind"), {"card-card_number": free.number})
    free.refresh_from_db()
    assert "Too many wrong card numbers" in response.content.decode() and free.member_id is None
    cache.delete(f"portal:card-tries:{member.pk}")


@pytest.mark.parametrize(
    "page,sections",
    [
        ("movements", 1),  # the ledger movements with their reasons
        ("receipt", 1),  # one receipt with its lines and what it earned
        ("thread", 1),  # one support thread with its messages
        ("products", 2),  # each open list: its products and the member's picks
        ("profile", 3),  # details and contacts, the questionnaire, cards and password
    ],
)
def test_detail_pages_cost_at_most_three_queries_per_section(
    client, member, shop, page, sections, django_assert_max_num_queries
):
    # given
    now = timezone.now()
    receipts = [purchase(member, shop, f"R-{i}", "100", bonus="5") for i in range(10)]
    thread = feedback_open(member=member, topic=None, subject="Q", text="text")
    for i in range(5):
        feedback_answer(feedback=thread, operator=None, text=f"answer {i}")
    for n in range(2):
        program = PersonalProductProgram.objects.create(
            name=f"List {n}", max_picks=2, starts_at=now, ends_at=now + dt.timedelta(days=9)
        )
        program.products.set([factories.ProductFactory() for _ in range(6)])
    url = {
        "movements": reverse("portal:history") + "?tab=movements",
        "receipt": reverse("portal:receipt", args=[receipts[3].pk]),
        "thread": reverse("portal:feedback_thread", args=[thread.pk]),
        "products": reverse("portal:products"),
        "profile": reverse("portal:profile"),
    }[page]
    signed_in(client, member)
    client.get(url)  # warm per-process caches
    # then: session + member, then at most three per section
    with django_assert_max_num_queries(2 + 3 * sections):
        assert client.get(url).status_code == 200
