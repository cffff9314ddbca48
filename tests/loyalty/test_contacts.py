import pytest
from django.core.exceptions import ValidationError

from loyalty.models import ContactStatus
from loyalty.services.contacts import city_time_zone, contacts_normalise, email_parse, phone_parse
from loyalty.services.members import member_create, member_update


@pytest.mark.parametrize(
    "written",
    [
        "+7 916 123-45-67",
        "8 (916) 123-45-67",
        "89161234567",
        "79161234567",
        "9161234567",
        "+7(916)1234567",
        "8-916-123-45-67",
        " +7 (916) 123 45 67 ",
    ],
)
def test_russian_formats_of_one_number_give_one_e164(written):
    # when
    info = phone_parse(written)
    # then
    assert info.e164 == "+79161234567"


def test_operator_and_time_zone_come_from_the_number():
    # given a Novosibirsk landline and a Tele2 mobile
    landline = phone_parse("8 (383) 212-34-56")
    mobile = phone_parse("+7 902 123 45 67")
    # then
    assert landline.time_zone == "Asia/Novosibirsk"
    assert landline.region == "Novosibirsk"
    assert mobile.operator == "T2"


def test_kaliningrad_number_gets_kaliningrad_zone_not_the_librarys_guess():
    assert phone_parse("+7 4012 12-34-56").time_zone == "Europe/Kaliningrad"


def test_mobile_time_zone_falls_back_to_the_city():
    # given a mobile number, which does not decide a region, and a city in Yekaterinburg's zone
    data = contacts_normalise(phone="+79161234567", city="Екатеринбург")
    # then
    assert data.time_zone == "Asia/Yekaterinburg"
    assert data.time_zone_source == "city"


def test_city_found_inside_a_postal_address():
    assert city_time_zone("", "630099, г. Новосибирск, ул. Ленина, 1") == "Asia/Novosibirsk"


@pytest.mark.parametrize("bad", ["12345", "+7 999", "not a phone", "+7 (000) 000-00-00"])
def test_bad_phones_are_refused(bad):
    with pytest.raises(ValidationError):
        phone_parse(bad)


def test_email_is_normalised_without_dns():
    assert email_parse("  Anna.Ivanova@Example.COM ") == "anna.ivanova@example.com"


@pytest.mark.parametrize("bad", ["anna@", "anna.example.com", "anna@@example.com", "a b@example.com"])
def test_bad_emails_are_refused(bad):
    with pytest.raises(ValidationError):
        email_parse(bad)


def test_member_create_refuses_bad_phone_and_email_naming_the_fields(db):
    # when
    with pytest.raises(ValidationError) as caught:
        member_create(first_name="Анна", phone="12345", email="anna@")
    # then
    assert set(caught.value.message_dict) == {"phone", "email"}


def test_member_create_stores_normalised_contacts(db):
    # when
    member = member_create(
        first_name="Анна", phone="8 (383) 212-34-56", email="ANNA@example.com", city="Новосибирск"
    )
    # then
    member.refresh_from_db()
    assert member.phone == "+73832123456"
    assert member.phone_raw == "8 (383) 212-34-56"
    assert member.phone_status == ContactStatus.VALID
    assert member.email == "anna@example.com"
    assert member.time_zone == "Asia/Novosibirsk"


def test_a_phone_belongs_to_one_member(db):
    member_create(first_name="Анна", phone="+79161234567")
    with pytest.raises(ValidationError) as caught:
        member_create(first_name="Ольга", phone="8 916 123 45 67")
    assert "phone" in caught.value.message_dict


def test_binding_a_new_phone_records_the_event(db):
    # given
    member = member_create(first_name="Анна")
    # when
    member_update(member=member, phone="+7 916 765 43 21")
    # then
    assert member.events.filter(event_type="phone_bound").count() == 1
    assert member.phone == "+79167654321"


def test_children_and_pets_are_validated(db):
    with pytest.raises(ValidationError) as caught:
        member_create(
            first_name="Анна", phone="12", children=[{"name": "Маша", "birth_date": "2019-13-01"}], pets="cat"
        )
    assert set(caught.value.message_dict) == {"phone", "children", "pets"}
    member = member_create(
        first_name="Анна", children=[{"name": "Маша", "birth_date": "2019-03-01"}], pets=["cat"]
    )
    assert member.children[0]["name"] == "Маша"


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("москва", "Москва"),
        ("г. санкт-петербург", "Санкт-Петербург"),
        ("  ростов-на-дону ", "Ростов-на-Дону"),
        ("нижний   новгород", "Нижний Новгород"),
    ],
)
def test_city_is_stored_in_one_spelling(written, stored):
    from loyalty.services.contacts import city_normalise

    assert city_normalise(written) == stored
