"""The back office read in Russian: lists, filters and calendars show labels in the
reader's language, not codes or English."""

from django.urls import reverse

from communications.models import FeedbackTopic, UnsubscribeReason
from loyalty.services.events import event_record
from loyalty.services.members import member_create


def ru(client, url: str) -> str:
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="ru")
    assert page.status_code == 200
    return page.content.decode()


def test_the_event_journal_filters_by_labelled_event_and_channel(admin_client, db):
    member = member_create(first_name="Анна", phone="+79161234567")
    event_record(member=member, event_type="app_installed", channel="mobile_app")
    page = ru(admin_client, reverse("admin:loyalty_memberevent_changelist"))
    assert "Установка мобильного приложения" in page and "Мобильное приложение" in page
    assert ">app_installed<" not in page and ">mobile_app<" not in page
    url = reverse("admin:loyalty_memberevent_changelist")
    assert admin_client.get(url + "?event_type=app_installed").context["cl"].result_count == 1
    assert admin_client.get(url + "?event_type=friend_invited").context["cl"].result_count == 0
    assert admin_client.get(url + "?channel=mobile_app").context["cl"].result_count == 1


def test_the_offer_list_filters_by_labelled_event(admin_client, db):
    page = ru(admin_client, reverse("admin:offers_offer_changelist"))
    assert ">purchase_completed<" not in page and "Совершение покупки" in page


def test_the_mailing_calendar_names_weekdays_in_russian(admin_client, db):
    page = ru(admin_client, reverse("admin:communications_mailing_calendar"))
    assert "Пн" in page and "Mon" not in page


def test_seeded_reasons_and_topics_are_listed_in_russian(admin_client, db):
    UnsubscribeReason.objects.get_or_create(text="I receive too many messages")
    FeedbackTopic.objects.get_or_create(name="Bonuses and balance")
    reasons = ru(admin_client, reverse("admin:communications_unsubscribereason_changelist"))
    topics = ru(admin_client, reverse("admin:communications_feedbacktopic_changelist"))
    assert "Я получаю слишком много сообщений" in reasons and "I receive too many" not in reasons
    assert "Бонусы и баланс" in topics and "Bonuses and balance" not in topics


def test_the_language_switch_names_each_language_in_itself(admin_client, db):
    page = ru(admin_client, reverse("admin:index"))
    assert ">English<" in page and ">Русский<" in page


def test_bonus_operations_name_program_sources_in_russian(admin_client, db):
    """Set-wise expiry and a receipt's accrual were written with codes and English; the
    list reads them in the reader's language."""
    import datetime as dt
    from decimal import Decimal

    from django.utils import timezone

    from loyalty.services import ledger
    from loyalty.services.receipts import (
        AccrualInput,
        ConfirmInput,
        LineInput,
        receipt_confirm,
        receipt_record,
    )
    from tests import factories

    member = member_create(first_name="Анна", phone="+79161234567")
    past = timezone.now() - dt.timedelta(days=3)
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=member),
        amount=Decimal(5),
        source=ledger.Source(type="offer", label="Welcome"),
        at=past,
        expires_at=past + dt.timedelta(days=1),
    )
    ledger.bonuses_expire()
    receipt = receipt_record(
        point_of_sale=factories.PointOfSaleFactory(),
        external_id="D-77",
        lines=[LineInput(sku="MILK", quantity=Decimal(1), price=Decimal(80), name="Milk")],
        member=member,
    )
    receipt_confirm(receipt=receipt, confirm=ConfirmInput(accruals=[AccrualInput(amount=Decimal(8))]))
    page = ru(admin_client, reverse("admin:loyalty_bonusoperation_changelist"))
    assert "Сгорание" in page and ">expiry<" not in page
    assert "Чек D-77" in page and "Receipt D-77" not in page
    assert "Welcome" in page  # a name an offer gave stays as given
    member_page = ru(admin_client, reverse("admin:loyalty_member_change", args=[member.pk]))
    assert "Чек D-77" in member_page and "Receipt D-77" not in member_page


def test_roles_are_named_in_russian_on_the_group_and_user_pages(admin_client, db):
    from django.contrib.auth.models import Group, User

    from loyalty import roles

    marketer = User.objects.create_user(username="maria", password="x", is_staff=True)
    marketer.groups.add(Group.objects.get(name=roles.MARKETER))
    groups = ru(admin_client, reverse("admin:auth_group_changelist"))
    assert "Маркетолог" in groups and ">Marketer<" not in groups
    users = ru(admin_client, reverse("admin:auth_user_changelist"))
    assert "Маркетолог" in users
    form = ru(admin_client, reverse("admin:auth_user_change", args=[marketer.pk]))
    assert ">Маркетолог</option>" in form and ">Contact-center operator</option>" not in form
    ru(admin_client, reverse("admin:auth_user_add"))  # answers 200


def test_the_member_page_names_the_phones_region_in_russian(admin_client, db):
    member = member_create(first_name="Анна", phone="+79161234567")
    assert member.phone_region == "Russia"  # stored as the library names it in English
    page = ru(admin_client, reverse("admin:loyalty_member_change", args=[member.pk]))
    assert "Россия" in page


def test_mailing_states_agree_with_the_word_mailing(admin_client, db):
    page = ru(admin_client, reverse("admin:communications_mailing_changelist"))
    assert "приостановлена" in page and "отменена" in page


def test_the_template_pages_variable_catalog_shows_russian_examples(admin_client, db):
    page = ru(admin_client, reverse("admin:communications_messagetemplate_add"))
    assert "Уважаемая Ольга Ивановна" in page and "Москва" in page
    assert "gift: 300" in page and "{&#x27;gift&#x27;" not in page and "{'gift'" not in page
