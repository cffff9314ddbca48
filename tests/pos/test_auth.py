"""API keys and tenancy: a key acts only for its partner's points of sale; another
partner's point of sale, card, member or receipt is answered like an unknown one (404)."""

import re
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from loyalty.models import Receipt
from loyalty.services.cards import card_issue
from loyalty.services.members import member_create
from pos.models import ApiKey
from pos.services import api_key_create, api_key_revoke
from tests.pos.conftest import client_for, get, post

LINES = [{"sku": "COFFEE", "quantity": "1", "price": "500"}]


def calculate(client, pos: str, **identity):
    return post(client, "receipts/calculate", {"point_of_sale": pos, "lines": LINES, **identity})


@pytest.fixture
def theirs(world):
    """A member registered at the other partner with a card issued at its store."""
    member = member_create(first_name="Пётр", phone="+79167654321")
    card = card_issue(member=member, point_of_sale=world.other_store)
    return {"member": member, "card": card}


def test_no_key_is_401_with_the_scheme_to_use(world):
    response = APIClient().post(
        "/api/v1/pos/receipts/calculate", {"point_of_sale": "web", "lines": LINES}, format="json"
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "header",
    ["Api-Key nonsense", "Api-Key abc.def", "Api-Key", "Api-Key a b", "Bearer x"],
)
def test_a_wrong_key_is_401(world, key, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert calculate(client, "web").status_code == 401


def test_a_wrong_secret_or_a_revoked_key_is_401(world, key):
    prefix = key.token.split(".")[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.not-the-secret")
    assert calculate(client, "web").json()["code"] == "authentication_failed"
    api = client_for(key)
    assert calculate(api, "web").status_code == 200
    api_key_revoke(api_key=key.api_key)
    assert calculate(api, "web").status_code == 401


def test_only_the_hash_of_the_secret_is_kept_and_use_is_recorded(world, key, api):
    stored = ApiKey.objects.get(pk=key.api_key.pk)
    secret = key.token.split(".", 1)[1]
    assert secret not in stored.secret_hash and len(stored.secret_hash) == 64
    assert stored.last_used_at is None
    calculate(api, "web")
    stored.refresh_from_db()
    assert stored.last_used_at is not None


def test_back_office_credentials_do_not_open_the_pos_api(world):
    user = User.objects.create_superuser(username="admin", password="x")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert calculate(client, "web").status_code == 401


def test_another_partners_point_of_sale_is_not_found(world, api):
    response = calculate(api, "other-1")
    assert response.status_code == 404 and response.json()["code"] == "point_of_sale_not_found"
    assert calculate(api, "no-such-store").json()["code"] == "point_of_sale_not_found"
    confirm = post(api, "receipts/confirm", {"point_of_sale": "other-1", "external_id": "X", "lines": LINES})
    assert confirm.status_code == 404 and not Receipt.objects.exists()


def test_a_key_bound_to_one_point_of_sale_cannot_use_the_others(world):
    api = client_for(api_key_create(name="Till 1", partner=world.partner, point_of_sale=world.hyper))
    assert calculate(api, "hyper-1").status_code == 200
    assert calculate(api, "web").status_code == 404


def test_another_partners_card_is_not_found(world, api, theirs):
    number = theirs["card"].number
    for response in (
        calculate(api, "web", card=number),
        get(api, "balance", card=number),
        get(api, "members/lookup", card=number),
        post(api, f"cards/{number}/activate"),
        post(api, "events", {"event_type": "app_installed", "card": number}),
    ):
        assert response.status_code == 404, response.json()
        assert response.json()["code"] == "card_not_found"


def test_a_member_known_only_by_another_partners_card_is_not_found(world, api, other_api, theirs):
    response = get(api, "members/lookup", phone="+79167654321")
    assert response.status_code == 404 and response.json()["code"] == "member_not_found"
    assert get(other_api, "members/lookup", phone="+79167654321").json()["id"] == theirs["member"].pk


def test_program_cards_and_members_without_cards_serve_every_partner(world, api, other_api):
    member = member_create(first_name="Анна", phone="+79161234567")
    assert get(api, "members/lookup", phone="+79161234567").json()["cards"] == []
    card = card_issue(member=member)  # issued by the program, not at a store
    for client in (api, other_api):
        assert get(client, "members/lookup", card=card.number).json()["cards"] == [card.number]


def test_another_partners_receipt_is_not_found(world, api, other_api):
    made = post(
        other_api, "receipts/confirm", {"point_of_sale": "other-1", "external_id": "R-1", "lines": LINES}
    )
    assert made.status_code == 201
    for point_of_sale, code in (("other-1", "point_of_sale_not_found"), ("web", "receipt_not_found")):
        for action in ("refund", "cancel"):
            response = post(
                api, f"receipts/R-1/{action}", {"point_of_sale": point_of_sale, "refund_id": "RF"}
            )
            assert response.status_code == 404 and response.json()["code"] == code
    assert Receipt.objects.get().state == "confirmed"


def test_requests_are_throttled_per_key(world, key, other_key, settings):
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"pos": "3/min"}}
    api, other = client_for(key), client_for(other_key)
    assert [calculate(api, "web").status_code for _ in range(3)] == [200, 200, 200]
    throttled = calculate(api, "web")
    assert throttled.status_code == 429 and throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) >= 0
    # as the schema says of every 429
    schema = api.get("/api/schema/", {"format": "json"}).json()
    answer = schema["paths"]["/api/v1/pos/receipts/calculate"]["post"]["responses"]["429"]
    assert answer["headers"]["Retry-After"]["required"] is True
    assert throttled.json()["title"] == "Too many requests."
    assert re.fullmatch(r"Try again in \d+ seconds?\.", throttled.json()["detail"])
    in_russian = api.post(
        "/api/v1/pos/receipts/calculate",
        {"point_of_sale": "web", "lines": [{"sku": "X", "quantity": "1", "price": "1"}]},
        format="json",
        HTTP_ACCEPT_LANGUAGE="ru",
    ).json()
    assert re.fullmatch(r"Повторите через \d+ секунд[уы]?\.", in_russian["detail"]), in_russian
    assert in_russian["title"] == "Слишком много запросов."
    assert calculate(other, "other-1").status_code == 200  # the other key has its own budget
    cache.clear()


def test_amounts_are_decimal_strings(world, api):
    body = calculate(api, "web").json()
    assert body["total"] == "500.00" and body["lines"][0]["quantity"] == "1.000"
    assert Decimal(body["max_bonus_payment"]) == 0


def test_the_key_budget_slides_with_time_and_says_when_to_come_back(world, key, settings, time_machine):
    # given 10 requests a minute for a key, at the start of a minute
    import datetime as dt
    from types import SimpleNamespace

    from pos.auth import ApiKeyRateThrottle

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"pos": "10/min"}}
    start = dt.datetime(2026, 5, 1, 10, 0, 0, tzinfo=dt.UTC)
    time_machine.move_to(start, tick=False)
    request = SimpleNamespace(auth=key.api_key)

    def attempt():
        throttle = ApiKeyRateThrottle()
        return throttle.allow_request(request, None), throttle

    # when the key sends 11 requests, the 11th is refused until the minute is over
    assert [attempt()[0] for _ in range(10)] == [True] * 10
    allowed, refused = attempt()
    assert not allowed and refused.wait() == pytest.approx(60)
    # 33 s into the next minute 45 % of the last one still counts (4.5): 6 more fit
    time_machine.move_to(start + dt.timedelta(seconds=93))
    assert [attempt()[0] for _ in range(6)] == [True] * 6
    # and a refusal names the moment the estimate leaves room again: 3 s later
    # (10 x (1 - 0.6) + 6 = 10), not sooner
    allowed, refused = attempt()
    assert not allowed and refused.wait() == pytest.approx(3)
    time_machine.move_to(start + dt.timedelta(seconds=95.9))
    assert not attempt()[0]
    time_machine.move_to(start + dt.timedelta(seconds=96.1))
    assert attempt()[0]
    # two quiet minutes later the whole budget is back
    time_machine.move_to(start + dt.timedelta(seconds=240))
    assert [attempt()[0] for _ in range(11)] == [True] * 10 + [False]
    cache.clear()


REDIS_ONLY = pytest.mark.skipif(
    not django_settings.REDIS_URL, reason="needs Redis: set REDIS_URL=redis://... (CI does)"
)


@REDIS_ONLY
def test_on_redis_a_request_is_counted_in_one_round_trip_and_atomically(world, key, settings, monkeypatch):
    # given a key allowed 10 requests a minute, and the production cache (Redis)
    import threading
    from types import SimpleNamespace

    import redis

    from pos.auth import ApiKeyRateThrottle

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"pos": "10/min"}}
    request = SimpleNamespace(auth=key.api_key)
    commands: list[str] = []
    real = redis.Redis.execute_command

    def counted(client, *args, **options):
        commands.append(str(args[0]))
        return real(client, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)

    # when one request is counted, then 30 more race from 6 threads
    assert ApiKeyRateThrottle().allow_request(request, None)
    first = list(commands)
    answers: list[bool] = []
    start = threading.Barrier(6)

    def till():
        start.wait()
        for _ in range(5):
            answers.append(ApiKeyRateThrottle().allow_request(request, None))

    threads = [threading.Thread(target=till) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then the first was one command to the server (the counting script), and exactly
    # nine of the racing requests got through: read, check and increment are one step
    assert len(first) == 1 and first[0].upper().startswith("EVAL"), first
    assert answers.count(True) == 9 and len(answers) == 30
    cache.clear()


@REDIS_ONLY
def test_on_redis_a_busy_key_is_counted_in_batches_and_exactly_near_its_limit(
    world, key, settings, monkeypatch
):
    # given a key allowed 6,000 requests a minute (a batch: 12), and the production cache
    from types import SimpleNamespace

    import redis

    from pos import auth
    from pos.auth import ApiKeyRateThrottle

    cache.clear()
    auth._LOCAL.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"pos": "6000/min"}}
    request = SimpleNamespace(auth=key.api_key)
    scripts = []
    real = redis.Redis.execute_command

    def counted(client, *args, **options):
        if str(args[0]).upper().startswith("EVAL"):
            scripts.append(args)
        return real(client, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    throttle = ApiKeyRateThrottle()
    base = throttle.get_cache_key(request, None)

    def count_on_server() -> int:
        window = int(throttle.timer() // 60)
        return cache.get(f"{base}:{window}", 0)

    # when 25 requests come, far from the limit
    assert all(ApiKeyRateThrottle().allow_request(request, None) for _ in range(25))

    # then three round trips counted them (the 1st, the 13th with the eleven before it,
    # the 25th likewise), and the server's count is exact after the last
    assert len(scripts) == 3
    assert count_on_server() == 25

    # when the key is 10 requests from its limit (as other processes would have left it),
    # and this process's last read is older than LOCAL_SECONDS (or it has none)
    window = int(throttle.timer() // 60)
    cache.set(f"{base}:{window}", 5990, timeout=120)
    cache.delete(f"{base}:{window - 1}")
    auth._LOCAL.clear()
    scripts.clear()
    answers = [ApiKeyRateThrottle().allow_request(request, None) for _ in range(15)]

    # then each request was decided on the server, and exactly ten more got through
    assert len(scripts) == 15
    assert answers == [True] * 10 + [False] * 5
    assert count_on_server() == 6000
    cache.clear()
    auth._LOCAL.clear()
