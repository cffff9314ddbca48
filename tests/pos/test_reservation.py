"""Two-phase purchases: a till reserves a receipt (its bonuses held), then confirms it
(the hold becomes the payment) or cancels it (the hold goes back); a hold nobody ends
lapses."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone, translation
from django_celery_beat.models import PeriodicTask

from loyalty.models import BonusAccount, EntryKind, LedgerEntry, Member, OperationKind, Receipt
from loyalty.services.receipts import receipt_holds_release
from portal.services.account import movement_reason
from segments.rules import rule_q
from tests.loyalty.test_admin import login_as
from tests.portal.test_pages import signed_in
from tests.pos.conftest import activated_card, client_for, get, post
from tests.pos.test_idempotency import run_in_threads

LINES = [
    {"sku": "COFFEE", "quantity": "2", "price": "500.00"},
    {"sku": "BREAD", "quantity": "1", "price": "50.00"},
]


@pytest.fixture
def card(world):
    return activated_card(world.online, phone="+79161230000", bonuses=300)


def available(card) -> Decimal:
    return BonusAccount.objects.get(member=card.member).available


def body(card, external_id="H-1", bonus_payment="200.00", lines=LINES):
    return {
        "point_of_sale": "hyper-1",
        "external_id": external_id,
        "card": card.number,
        "lines": lines,
        "payments": [{"method": "card", "amount": "745.00"}],
        "bonus_payment": bonus_payment,
    }


def reserve(api, card, **kw):
    answer = post(api, "receipts/reserve", body(card, **kw))
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_a_reservation_holds_the_bonuses_until_the_confirmation_pays_with_them(
    world, seed_offers, api, card, admin_client, client
):
    # when a hypermarket till reserves a receipt of 1,050 (945 after 10 %) paying 200
    reserved = reserve(api, card)
    # then the receipt is recorded as calculated, the 200 held and gone from the balance
    assert (reserved["state"], reserved["total"], reserved["bonus_paid"]) == (
        "calculated",
        "945.00",
        "200.00",
    )
    assert reserved["balance"] == "100.00" and available(card) == Decimal("100")
    lapses = dt.datetime.fromisoformat(reserved["reserved_until"])
    assert dt.timedelta(minutes=29) < lapses - timezone.now() <= dt.timedelta(minutes=30)
    # and a till that lost the answer reads the same reservation back
    read = get(api, "receipts", point_of_sale="hyper-1", external_id="H-1").json()
    assert (read["state"], read["bonus_paid"], read["reserved_until"]) == (
        "calculated",
        "200.00",
        reserved["reserved_until"],
    )
    # and the balance tells the held bonuses apart, to the till, the member app and the back office
    (balance,) = get(api, "balance", card=card.number).json()["balances"]
    assert (balance["available"], balance["reserved"]) == ("100.00", "200.00")
    assert admin_client.get(f"/api/v1/members/{card.member_id}/balance/").json()[0]["reserved"] == "200.00"
    page = admin_client.get(f"/admin/loyalty/member/{card.member_id}/change/").content.decode()
    assert 'data-testid="reserved">reserved for purchases in progress: 200.00<' in page
    home = signed_in(client, card.member).get("/account/").content.decode()
    assert '"reserved-bonus">200.00 more held for a purchase not yet completed<' in home
    # and another purchase cannot spend them meanwhile
    other = post(api, "receipts/confirm", body(card, external_id="H-2", bonus_payment="150.00"))
    assert (other.status_code, other.json()["code"]) == (402, "insufficient_bonuses")
    # when the till confirms the same receipt paying the same 200
    confirmed = post(api, "receipts/confirm", body(card))
    assert confirmed.status_code == 201, confirmed.content
    # then the hold became the payment: nothing more drawn, nothing given back
    assert (confirmed.json()["state"], confirmed.json()["bonus_paid"]) == ("confirmed", "200.00")
    assert available(card) == Decimal("100")
    receipt = Receipt.objects.get(external_id="H-1")
    assert receipt.id == reserved["id"]
    assert list(receipt.bonus_operations.values_list("kind", flat=True)) == [OperationKind.SPEND]
    assert get(api, "receipts", point_of_sale="hyper-1", external_id="H-1").json()["reserved_until"] is None
    assert get(api, "balance", card=card.number).json()["balances"][0]["reserved"] == "0.00"


@pytest.mark.parametrize(
    ("paid", "left", "kinds"),
    [
        ("120.00", Decimal("180"), [OperationKind.SPEND, OperationKind.RELEASE]),
        ("250.00", Decimal("50"), [OperationKind.SPEND, OperationKind.SPEND]),
        ("0", Decimal("300"), [OperationKind.SPEND, OperationKind.RELEASE]),
    ],
)
def test_a_confirmation_paying_another_amount_gives_back_or_draws_the_difference(
    world, seed_offers, api, card, paid, left, kinds
):
    reserve(api, card)
    confirmed = post(api, "receipts/confirm", body(card, bonus_payment=paid))
    assert confirmed.status_code == 201, confirmed.content
    assert Decimal(confirmed.json()["bonus_paid"]) == Decimal(paid)
    assert available(card) == left
    receipt = Receipt.objects.get(external_id="H-1")
    assert list(receipt.bonus_operations.order_by("pk").values_list("kind", flat=True)) == kinds


def test_a_partial_refund_after_a_smaller_payment_restores_its_share_of_what_was_paid(
    world, seed_offers, api, card
):
    # given 200 held, 100 paid at confirmation (100 released)
    reserve(api, card)
    assert post(api, "receipts/confirm", body(card, bonus_payment="100.00")).status_code == 201
    assert available(card) == Decimal("200")
    # when the coffee (900 of the 945 after discount) is returned
    refund = post(
        api,
        "receipts/H-1/refund",
        {"point_of_sale": "hyper-1", "refund_id": "R-1", "lines": [{"sku": "COFFEE", "quantity": "2"}]},
    )
    assert refund.status_code == 201, refund.content
    # then 900/945 of the 100 paid comes back, not of the 200 once held
    assert refund.json()["bonus_restored"] == "95.24"
    assert available(card) == Decimal("295.24")


def test_cancelling_a_reservation_gives_the_bonuses_back_once(world, seed_offers, api, card):
    reserve(api, card)
    cancelled = post(api, "receipts/H-1/cancel", {"point_of_sale": "hyper-1"})
    assert cancelled.status_code == 200, cancelled.content
    assert (cancelled.json()["state"], cancelled.json()["bonus_paid"]) == ("cancelled", "0.00")
    assert available(card) == Decimal("300")
    # cancelling again (a new key) answers the cancelled receipt and moves nothing
    again = post(api, "receipts/H-1/cancel", {"point_of_sale": "hyper-1"})
    assert (again.status_code, again.json()["state"]) == (200, "cancelled")
    assert available(card) == Decimal("300")
    entries = LedgerEntry.objects.filter(operation__receipt__external_id="H-1")
    assert sorted(entries.values_list("kind", flat=True)) == [EntryKind.RELEASE, EntryKind.SPEND]
    # and the cancelled receipt cannot be confirmed any more
    late = post(api, "receipts/confirm", body(card))
    assert (late.status_code, late.json()["code"]) == (409, "receipt_exists")
    assert available(card) == Decimal("300")


def test_a_released_hold_is_not_counted_as_spent_and_reads_as_a_cancellation(world, seed_offers, api, card):
    reserve(api, card)  # 200 held
    assert post(api, "receipts/confirm", body(card, bonus_payment="120.00")).status_code == 201
    reserve(api, card, external_id="H-2", bonus_payment="50.00")
    assert post(api, "receipts/H-2/cancel", {"point_of_sale": "hyper-1"}).status_code == 200
    # the segment metric counts what was paid: 120, not the 250 once held
    spent = {"metric": "bonus_spent", "operator": "eq", "value": 120, "params": {}}
    assert list(Member.objects.filter(rule_q(spent)).values_list("pk", flat=True)) == [card.member_id]
    # the member's history says why the bonuses came back, in the member's language
    release = LedgerEntry.objects.filter(kind=EntryKind.RELEASE, operation__receipt__external_id="H-2").get()
    with translation.override("ru"):
        assert movement_reason(release) == "Покупка H-2 отменена, бонусы возвращены"


def test_a_receipt_id_reserved_or_confirmed_before_is_not_reserved_again(world, seed_offers, api, card):
    reserve(api, card)
    again = post(api, "receipts/reserve", body(card, bonus_payment="50.00"))
    assert (again.status_code, again.json()["code"]) == (409, "receipt_exists")
    assert available(card) == Decimal("100")


def test_a_confirmation_with_other_lines_than_reserved_is_refused_and_changes_nothing(
    world, seed_offers, api, card
):
    reserve(api, card)
    answer = post(api, "receipts/confirm", body(card, lines=LINES[:1]))
    assert answer.status_code == 400, answer.content
    assert "lines" in answer.json()["errors"]
    assert Receipt.objects.get(external_id="H-1").state == "calculated"
    assert available(card) == Decimal("100")


def test_a_reservation_beyond_the_balance_is_refused_and_stores_nothing(world, seed_offers, api, card):
    answer = post(api, "receipts/reserve", body(card, bonus_payment="400.00"))
    assert (answer.status_code, answer.json()["code"]) == (402, "insufficient_bonuses")
    assert not Receipt.objects.filter(external_id="H-1").exists()
    assert available(card) == Decimal("300")


def test_lapsed_reservations_are_cancelled_and_their_bonuses_given_back(world, seed_offers, api, card):
    reserve(api, card, external_id="OLD")
    reserve(api, card, external_id="OLD-NO-BONUSES", bonus_payment="0")
    reserve(api, card, external_id="NEW", bonus_payment="50.00")
    Receipt.objects.filter(external_id__startswith="OLD").update(
        created_at=timezone.now() - dt.timedelta(minutes=31)
    )
    assert available(card) == Decimal("50")
    # when the periodic release runs with the default 30 minutes
    assert receipt_holds_release(older_than=dt.timedelta(minutes=30)) == 2
    # then the lapsed ones are cancelled (a purchase is incomplete until it ends), the 200 back
    states = dict(Receipt.objects.values_list("external_id", "state"))
    assert states == {"OLD": "cancelled", "OLD-NO-BONUSES": "cancelled", "NEW": "calculated"}
    assert available(card) == Decimal("250")
    assert receipt_holds_release(older_than=dt.timedelta(minutes=30)) == 0
    # and the release runs every five minutes, as a periodic task seeded by a migration
    task = PeriodicTask.objects.get(task="pos.tasks.release_lapsed_reservations")
    assert task.enabled and (task.interval.every, task.interval.period) == (5, "minutes")


def test_the_operators_command_releases_reservations_older_than_it_is_told(
    world, seed_offers, api, card, capsys
):
    reserve(api, card, bonus_payment="80.00")
    call_command("release_reservations", "--older-than-minutes", "0")
    assert "1" in capsys.readouterr().out
    assert Receipt.objects.get(external_id="H-1").state == "cancelled"
    assert available(card) == Decimal("300")


# --- PostgreSQL: real parallel connections ---------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_reservations_cannot_hold_more_than_the_balance(world, seed_offers, card, key):
    # 300 available; eight tills each reserve 100 at once
    def send(i):
        answer = post(
            client_for(key), "receipts/reserve", body(card, external_id=f"P-{i}", bonus_payment="100")
        )
        return answer.status_code

    outcomes = run_in_threads(8, send)
    assert sorted(outcomes) == [201, 201, 201, 402, 402, 402, 402, 402], outcomes
    assert available(card) == Decimal("0")
    assert Receipt.objects.filter(state="calculated").count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_confirmation_racing_a_cancellation_ends_the_purchase_one_way(world, seed_offers, card, key):
    reserve(client_for(key), card)

    def send(i):
        if i % 2:
            answer = post(client_for(key), "receipts/H-1/cancel", {"point_of_sale": "hyper-1"})
        else:
            answer = post(client_for(key), "receipts/confirm", body(card))
        return i % 2, answer.status_code

    outcomes = run_in_threads(6, send)
    state = Receipt.objects.get(external_id="H-1").state
    if state == "confirmed":
        # every confirmation answered 201 (the first) or 409; every cancellation 409
        assert {s for kind, s in outcomes if kind == 1} == {409}, outcomes
        assert available(card) == Decimal("100")
    else:
        assert state == "cancelled"
        assert {s for kind, s in outcomes if kind == 0} == {409}, outcomes
        assert available(card) == Decimal("300")


def test_an_administrator_cancels_a_stuck_reservation_from_the_receipt_list(
    world, seed_offers, api, card, admin_client, client
):
    reserve(api, card)
    assert post(api, "receipts/confirm", body(card, external_id="DONE", bonus_payment="0")).status_code == 201
    ids = list(Receipt.objects.order_by("pk").values_list("pk", flat=True))
    answer = admin_client.post(
        "/admin/loyalty/receipt/",
        {"action": "cancel_reservations", "_selected_action": ids},
        follow=True,
    )
    shown = [str(m) for m in answer.context["messages"]]
    # the reserved one is cancelled with its 200 back; the confirmed one is refused by name
    assert dict(Receipt.objects.values_list("external_id", "state")) == {
        "H-1": "cancelled",
        "DONE": "confirmed",
    }
    assert available(card) == Decimal("300")
    assert any("1 receipt(s) cancelled" in m for m in shown), shown
    assert any("DONE" in m and "refund a confirmed one" in m for m in shown), shown
    # a contact-center operator reads receipts but is not offered the action
    login_as(client, "Contact-center operator")
    page = client.get("/admin/loyalty/receipt/")
    assert page.status_code == 200 and "cancel_reservations" not in page.content.decode()
