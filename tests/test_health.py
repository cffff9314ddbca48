"""``/healthz`` and ``/readyz``: what a load balancer probing by the container's address
over plain HTTP gets back."""

import pytest
from django.db import OperationalError

from config import health


def test_healthz_answers_whatever_the_host_and_without_an_https_redirect(client, settings):
    settings.ALLOWED_HOSTS = ["loyalty.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    answer = client.get("/healthz", HTTP_HOST="10.0.3.7:8000")

    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_other_paths_still_check_the_host(client, settings):
    settings.ALLOWED_HOSTS = ["loyalty.example.com"]
    assert client.get("/api/schema/", HTTP_HOST="10.0.3.7:8000").status_code == 400


@pytest.mark.django_db
def test_readyz_is_ok_when_the_database_and_the_cache_answer(client):
    answer = client.get("/readyz", HTTP_HOST="10.0.3.7")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "cache": "ok"}


@pytest.mark.django_db
def test_readyz_names_the_database_when_it_fails(client, monkeypatch):
    def unreachable():
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", unreachable)

    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.json() == {"status": "failed", "database": "failed", "cache": "ok"}


@pytest.mark.django_db
def test_readyz_names_a_cache_that_does_not_keep_what_it_is_given(client, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

    answer = client.get("/readyz")

    assert answer.status_code == 503 and answer.json()["cache"] == "failed"
