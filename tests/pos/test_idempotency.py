"""Idempotency-Key: a repeat gets the first response byte for byte, a different body
under the same key is refused, a failure lets go of the key, and the stored response
commits with the ledger. On PostgreSQL: parallel repeats have exactly one effect."""

import datetime as dt
import hashlib
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from loyalty.models import BonusOperation, Receipt
from loyalty.services import ledger
from loyalty.services.cards import card_issue
from loyalty.services.members import member_create
from pos.idempotency import canonical_body
from pos.models import IdempotencyRecord, IdempotencyState
from tests.pos.conftest import client_for, post

LINES = [{"sku": "COFFEE", "quantity": "2", "price": "500.00"}]


@pytest.fixture
def card(world):
    """An activated card of a member with 300 bonuses."""
    member = member_create(first_name="Анна", phone="+79161234567")
    card = card_issue(member=member, point_of_sale=world.online)
    card.state, card.activated_at = "activated", timezone.now()
    card.save()
    ledger.bonus_accrue(
        account=ledger.account_get_or_create(member=member),
        amount=Decimal("300"),
        source=ledger.Source(type="offer", label="Welcome"),
    )
    return card


def confirm_body(card, external_id="R-1", bonus_payment="100.00"):
    return {
        "point_of_sale": "web",
        "card": card.number,
        "external_id": external_id,
        "lines": LINES,
        "payments": [{"method": "online", "amount": "900.00"}],
        "bonus_payment": bonus_payment,
    }


def test_a_repeat_returns_the_first_response_byte_for_byte(world, seed_offers, card, api):
    first = post(api, "receipts/confirm", confirm_body(card), idempotency_key="k-1")
    again = post(api, "receipts/confirm", confirm_body(card), idempotency_key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Receipt.objects.count() == 1
    assert BonusOperation.objects.filter(kind="spend").count() == 1
    assert IdempotencyRecord.objects.get().state == IdempotencyState.DONE


@pytest.mark.postgres
def test_stored_answers_are_compressed_with_lz4_and_replayed_whole(world, seed_offers, card, api):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
        if cur.fetchone() is None:
            pytest.skip("this PostgreSQL server is built without lz4")
    lines = [{"sku": f"SKU{i}", "quantity": "1", "price": "10.00", "name": "x" * 200} for i in range(60)]
    body = {**confirm_body(card, bonus_payment="0"), "lines": lines}
    first = post(api, "receipts/confirm", body, idempotency_key="k-big")
    again = post(api, "receipts/confirm", body, idempotency_key="k-big")
    assert first.status_code == again.status_code == 201 and len(first.content) > 10_000
    assert again.content == first.content
    with connection.cursor() as cur:
        cur.execute(f"SELECT pg_column_compression(response_body) FROM {IdempotencyRecord._meta.db_table}")
        assert cur.fetchone() == ("lz4",)


def test_key_order_and_spacing_of_the_body_do_not_matter(world, card, api):
    body = confirm_body(card)
    first = post(api, "receipts/confirm", body, idempotency_key="k-1")
    reordered = dict(reversed(list(body.items())))
    assert post(api, "receipts/confirm", reordered, idempotency_key="k-1").content == first.content


def test_the_same_key_with_another_body_is_422(world, card, api):
    assert post(api, "receipts/confirm", confirm_body(card), idempotency_key="k-1").status_code == 201
    other = post(api, "receipts/confirm", confirm_body(card, external_id="R-2"), idempotency_key="k-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert "another body" in other.json()["detail"]
    elsewhere = post(
        api, "events", {"event_type": "app_installed", "card": card.number}, idempotency_key="k-1"
    )
    assert elsewhere.status_code == 422
    assert "use a new key for another request" in elsewhere.json()["detail"]
    assert Receipt.objects.count() == 1


def test_keys_belong_to_their_api_key(world, card, api, other_key):
    assert post(api, "cards", {"point_of_sale": "web"}, idempotency_key="k-1").status_code == 201
    other = client_for(other_key)
    assert post(other, "cards", {"point_of_sale": "other-1"}, idempotency_key="k-1").status_code == 201


@pytest.mark.parametrize("header", [None, "", "x" * 129, "with space"])
def test_a_change_needs_a_valid_key(world, api, header):
    extra = {} if header is None else {"HTTP_IDEMPOTENCY_KEY": header}
    response = api.post("/api/v1/pos/cards", {"point_of_sale": "web"}, format="json", **extra)
    assert response.status_code == 400
    assert response.json()["code"] in {"idempotency_key_required", "invalid"}
    assert not IdempotencyRecord.objects.exists()


def test_a_failed_request_lets_go_of_the_key(world, card, api):
    refused = post(api, "receipts/confirm", confirm_body(card, bonus_payment="999.00"), idempotency_key="k-1")
    assert refused.status_code == 402
    assert not IdempotencyRecord.objects.exists()
    retried = post(api, "receipts/confirm", confirm_body(card), idempotency_key="k-1")
    assert retried.status_code == 201


def claim(key, body, created_at):
    """An in_progress claim as the first request of ``body`` under "k-1" leaves it."""
    return IdempotencyRecord.objects.create(
        api_key=key.api_key,
        key="k-1",
        method="POST",
        path="/api/v1/pos/receipts/confirm",
        body_hash=hashlib.sha256(canonical_body(body)).hexdigest(),
        created_at=created_at,
    )


def test_a_repeat_while_the_first_runs_is_409(world, card, api, key):
    body = confirm_body(card)
    claim(key, body, timezone.now())
    response = post(api, "receipts/confirm", body, idempotency_key="k-1")
    assert response.status_code == 409 and response.json()["code"] == "idempotency_in_progress"
    assert not Receipt.objects.exists()


def test_a_claim_left_by_a_dead_process_is_taken_over(world, card, api, key):
    body = confirm_body(card)
    claim(key, body, timezone.now() - dt.timedelta(hours=1))
    assert post(api, "receipts/confirm", body, idempotency_key="k-1").status_code == 201
    assert IdempotencyRecord.objects.get().state == IdempotencyState.DONE


def test_the_response_is_stored_in_the_ledgers_transaction(world, card, api, monkeypatch):
    # when storing the response fails after the ledger moved, the ledger rolls back too
    from pos import views

    def broken(*args, **kwargs):
        raise RuntimeError("the response could not be built")

    monkeypatch.setattr(views, "confirmation_json", broken)
    with pytest.raises(RuntimeError):
        post(api, "receipts/confirm", confirm_body(card), idempotency_key="k-1")
    assert not Receipt.objects.exists()
    assert not BonusOperation.objects.filter(kind="spend").exists()
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.undo()
    assert post(api, "receipts/confirm", confirm_body(card), idempotency_key="k-1").status_code == 201


# --- PostgreSQL: real parallel connections ---------------------------------------------------


def run_in_threads(n, fn):
    barrier = threading.Barrier(n)
    outcomes, lock = [], threading.Lock()

    def worker(i):
        try:
            barrier.wait()
            result = fn(i)
        except Exception as exc:  # noqa: BLE001 - the outcome is what we assert on
            result = exc
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_repeats_of_one_confirm_have_one_effect(world, seed_offers, card, key):
    body = confirm_body(card)

    def send(i):
        response = post(client_for(key), "receipts/confirm", body, idempotency_key="same-key")
        return response.status_code, response.content, response.json().get("code")

    outcomes = run_in_threads(10, send)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    # each repeat is told the first is still running, or (once it has committed) gets its
    # answer: the same bytes
    created = [o for o in outcomes if o[0] == 201]
    assert created and len({content for _status, content, _code in created}) == 1
    assert all(o[0] == 201 or (o[0], o[2]) == (409, "idempotency_in_progress") for o in outcomes), outcomes
    # exactly one receipt, one spend, one accrual; the balance moved once
    assert Receipt.objects.count() == 1
    assert BonusOperation.objects.filter(kind="spend").count() == 1
    assert BonusOperation.objects.filter(kind="accrual", receipt__isnull=False).count() == 1
    account = ledger.account_get_or_create(member=card.member)
    assert account.available == Decimal("300") - Decimal("100") + Decimal("100")
    # a later repeat replays the same bytes
    replay = post(client_for(key), "receipts/confirm", body, idempotency_key="same-key")
    assert replay.content == created[0][1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_repeat_while_the_first_runs_is_answered_409_at_once(world, seed_offers, card, key, monkeypatch):
    from pos import views

    inside, release = threading.Event(), threading.Event()
    confirm = views.purchase_confirm

    def slow_confirm(**kwargs):
        inside.set()  # the first request holds its key's claim from here
        assert release.wait(30)
        return confirm(**kwargs)

    monkeypatch.setattr(views, "purchase_confirm", slow_confirm)
    body = confirm_body(card)
    first: list = []

    def send_first():
        try:
            first.append(post(client_for(key), "receipts/confirm", body, idempotency_key="k-slow"))
        finally:
            connection.close()

    thread = threading.Thread(target=send_first)
    thread.start()
    try:
        assert inside.wait(30)
        # while the first request is inside its transaction, the repeat does not wait for it
        repeat = post(client_for(key), "receipts/confirm", body, idempotency_key="k-slow")
        assert (repeat.status_code, repeat.json()["code"]) == (409, "idempotency_in_progress")
        assert not first  # the first is still running
    finally:
        release.set()
        thread.join(60)
    assert first[0].status_code == 201
    monkeypatch.undo()
    # once it has committed, a repeat gets its answer
    again = post(client_for(key), "receipts/confirm", body, idempotency_key="k-slow")
    assert (again.status_code, again.content) == (201, first[0].content)
    assert Receipt.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_confirms_of_one_receipt_id_under_different_keys_have_one_effect(world, card, key):
    body = confirm_body(card)

    def send(i):
        response = post(client_for(key), "receipts/confirm", body, idempotency_key=f"key-{i}")
        return response.status_code, response.json().get("code")

    outcomes = run_in_threads(10, send)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert [o for o in outcomes if o[0] == 201] == [(201, None)]
    assert all(o == (409, "receipt_exists") or o[0] == 201 for o in outcomes), outcomes
    assert Receipt.objects.count() == 1
    assert BonusOperation.objects.filter(kind="spend").count() == 1
    assert ledger.account_get_or_create(member=card.member).available == Decimal("200")
    assert IdempotencyRecord.objects.filter(state=IdempotencyState.DONE).count() == 1
    assert IdempotencyRecord.objects.count() == 1  # the refused ones let go of their keys


def test_old_records_are_purged_nightly(world, card, api):
    from django_celery_beat.models import PeriodicTask

    from pos.tasks import purge_idempotency_records

    assert post(api, "receipts/confirm", confirm_body(card), idempotency_key="k-1").status_code == 201
    assert post(api, "cards", {"point_of_sale": "web"}, idempotency_key="k-2").status_code == 201
    IdempotencyRecord.objects.filter(key="k-1").update(created_at=timezone.now() - dt.timedelta(days=8))
    assert purge_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k-2"]
    task = PeriodicTask.objects.get(task="pos.tasks.purge_idempotency_records")
    assert task.enabled
