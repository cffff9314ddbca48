"""Django's own errors under /api/ are problem details too: an unknown path, a body over
the size limit; elsewhere Django's pages stay."""

import json

from django.test import Client


def test_an_unknown_api_path_is_a_problem_not_a_page(db):
    answer = Client().get("/api/v1/pos/no-such-thing", HTTP_ACCEPT_LANGUAGE="ru")
    assert answer.status_code == 404 and answer["Content-Type"] == "application/problem+json"
    body = answer.json()
    assert body["code"] == "not_found" and body["status"] == 404
    assert "/api/v1/pos/no-such-thing" in body["detail"]
    assert body["title"] == "Не найдено."
    page = Client().get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_a_body_over_the_size_limit_is_a_problem(db, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    answer = Client().post(
        "/api/v1/me/auth/code", json.dumps({"login": "a" * 5000}), content_type="application/json"
    )
    assert answer.status_code == 400 and answer["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "too_large"


def test_a_crash_under_the_api_is_a_problem(db, client, monkeypatch):
    from pos import views

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.scoping, "point_of_sale_get", crash)
    from pos.services import api_key_create
    from tests import factories

    token = api_key_create(name="t", partner=factories.PartnerFactory()).token
    c = Client(raise_request_exception=False)
    answer = c.post(
        "/api/v1/pos/receipts/calculate",
        {"point_of_sale": "x", "lines": [{"sku": "A", "quantity": "1", "price": "1"}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {token}",
    )
    assert answer.status_code == 500 and answer["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "server_error" and "boom" not in answer.content.decode()


def test_framework_messages_its_russian_catalog_lacks_are_translated():
    from django.utils import translation
    from rest_framework import serializers

    with translation.override("ru"):
        for field, value, expected in (
            (serializers.BooleanField(), "yes?", "Требуется логическое значение (true или false)."),
            (serializers.UUIDField(), "x", "Требуется корректный UUID."),
            (serializers.DictField(allow_empty=False), {}, "Этот словарь не может быть пустым."),
        ):
            try:
                field.run_validation(value)
            except serializers.ValidationError as exc:
                assert exc.detail == [expected]
            else:
                raise AssertionError(f"{field!r} accepted {value!r}")


def test_a_bad_email_is_explained_wholly_in_the_readers_language():
    import pytest
    from django.core.exceptions import ValidationError
    from django.utils import translation

    from loyalty.services.contacts import email_parse

    with translation.override("ru"), pytest.raises(ValidationError) as ru:
        email_parse("a@")
    assert ru.value.messages == ["a@ — некорректный адрес эл. почты."]
    with translation.override("en"), pytest.raises(ValidationError) as en:
        email_parse("a@")
    assert en.value.messages[0].startswith("a@ is not a valid email address: ")
