from loyalty.models import Card, Consent, ContactStatus, Member
from loyalty.services.cards import card_number_new
from loyalty.services.imports import csv_rows, members_import

HEADER = "external_id;last_name;first_name;gender;birth_date;phone;email;city;consent_sms;card_number\n"


def run(text: str):
    return members_import(csv_rows(text))


def test_import_keeps_good_rows_flags_bad_contacts_and_rejects_the_rest(db):
    card = card_number_new()
    text = HEADER + (
        f"A1;Петрова;Ольга;ж;12.03.1985;8 (916) 555-12-34;olga@example.ru;Москва;да;{card}\n"
        "A2;Сидоров;Пётр;м;1979-01-02;+7 913 111 22 33;bad@;Новосибирск;нет;\n"
        "A3;Кузнецова;Анна;female;31.02.1990;+79161112233;;Казань;;\n"
        "A4;Орлов;Иван;male;;12345;ivan@example.ru;Омск;yes;\n"
        ";Без;Идентификатора;;;;;;;\n"
        "A5;Дубль;Телефона;;;+7 916 555 12 34;;;;\n"
    )
    # when
    report = run(text)
    # then: good rows and rows with bad contacts are stored
    assert report.created == 3
    assert {p.line for p in report.flagged} == {3, 5}
    assert {p.line: p.reason.split(":")[0] for p in report.rejected} == {
        4: "birth_date",
        6: "no external_id and no valid phone or email to identify the member",
        7: "phone",
    }
    olga = Member.objects.get(external_id="A1")
    assert olga.phone == "+79165551234" and olga.time_zone == "Europe/Moscow"
    assert Card.objects.get(number=card).member == olga
    assert Consent.objects.get(member=olga, channel="sms").granted is True
    ivan = Member.objects.get(external_id="A4")
    assert ivan.phone == "" and ivan.phone_raw == "12345" and ivan.phone_status == ContactStatus.INVALID
    assert Member.objects.get(external_id="A2").email_status == ContactStatus.INVALID


def test_importing_the_same_file_again_changes_nothing(db):
    text = HEADER + "A1;Петрова;Ольга;ж;12.03.1985;8 (916) 555-12-34;olga@example.ru;Москва;да;\n"
    run(text)
    before = list(Member.objects.values())
    # when
    report = run(text)
    # then
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert list(Member.objects.values()) == before
    assert Consent.objects.count() == 1


def test_a_changed_row_updates_the_member(db):
    run(HEADER + "A1;Петрова;Ольга;ж;;+79165551234;;Москва;;\n")
    report = run(HEADER + "A1;Петрова;Ольга;ж;;+79165551234;;Екатеринбург;;\n")
    assert report.updated == 1
    member = Member.objects.get(external_id="A1")
    assert member.city == "Екатеринбург" and member.time_zone == "Asia/Yekaterinburg"


def test_import_command_reports_lines(db, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    path = tmp_path / "members.csv"
    path.write_text(HEADER + "A1;Петрова;Ольга;x;;+79165551234;;;;\n", encoding="utf-8")
    out = StringIO()
    call_command("import_members", str(path), stdout=out)
    assert "line 2: rejected: gender" in out.getvalue()
