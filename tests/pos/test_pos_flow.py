"""A till's day over real HTTP: issue a card, register the member, buy online (earning
100 bonuses), buy in a hypermarket with 10 % off paying partly with bonuses, return
goods from both purchases, read the balance. The ledger matches to the kopeck."""

import uuid
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from loyalty.models import BonusAccount, LedgerEntry, LotRemainder, MemberEvent, Receipt

PHONE = "+79161234567"


@pytest.fixture
def till(live_server, key, seed_offers):
    with httpx.Client(
        base_url=f"{live_server.url}/api/v1/pos/",
        headers={"Authorization": f"Api-Key {key.token}"},
        timeout=30,
    ) as client:
        yield client


def send(till: httpx.Client, path: str, body: dict) -> httpx.Response:
    return till.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def test_a_day_at_the_tills_keeps_the_ledger_exact(till):
    # a card issued in the online store, given to a member who registers with it
    card = ok(send(till, "cards", {"point_of_sale": "web"}), 201)["number"]
    member = ok(
        send(
            till,
            "members",
            {
                "first_name": "Анна",
                "last_name": "Иванова",
                "phone": "8 (916) 123-45-67",
                "consents": {"sms": True, "email": False},
                "card": card,
                "point_of_sale": "web",
            },
        ),
        201,
    )
    assert member["phone"] == PHONE and member["state"] == "activated"
    assert member["cards"] == [card] and member["consents"] == {"sms": True, "email": False}
    assert MemberEvent.objects.filter(member_id=member["id"], event_type="registration_completed").exists()

    # online, paid online: the online offer promises 100 bonuses
    online_lines = [{"sku": "COFFEE", "quantity": "2", "price": "500.00", "name": "Coffee beans"}]
    calc = ok(
        send(
            till,
            "receipts/calculate",
            {"point_of_sale": "web", "card": card, "lines": online_lines, "payments": ["online"]},
        )
    )
    assert calc["total"] == "1000.00" and calc["discount"] == "0.00"
    assert calc["bonuses"] == [{"currency": "bonus", "amount": "100.00"}]
    assert [o["name"] for o in calc["offers"]] == ["100 bonuses for paying online"]
    first = ok(
        send(
            till,
            "receipts/confirm",
            {
                "point_of_sale": "web",
                "card": card,
                "external_id": "WEB-1",
                "lines": online_lines,
                "payments": [{"method": "online", "amount": "1000.00"}],
            },
        ),
        201,
    )
    assert (first["state"], first["bonus_accrued"], first["balance"]) == ("confirmed", "100.00", "100.00")

    # a hypermarket: 10 % off every line, part paid with bonuses (by phone this time)
    hyper_lines = [
        {"sku": "COFFEE", "quantity": "2", "price": "500.00"},
        {"sku": "BREAD", "quantity": "1", "price": "50.00"},
    ]
    calc = ok(
        send(
            till,
            "receipts/calculate",
            {"point_of_sale": "hyper-1", "phone": PHONE, "lines": hyper_lines, "payments": ["card"]},
        )
    )
    assert [ln["discount"] for ln in calc["lines"]] == ["100.00", "5.00"]
    assert (calc["total"], calc["max_bonus_payment"], calc["balance"]) == ("945.00", "100.00", "100.00")
    assert calc["bonuses"] == []
    (offer,) = calc["offers"]
    assert offer["name"] == "10% in hypermarkets"
    assert offer["effects"] == [
        {"action": "discount", "amount": "105.00", "currency": "RUB", "lines": [1, 2], "text": ""}
    ]
    second = ok(
        send(
            till,
            "receipts/confirm",
            {
                "point_of_sale": "hyper-1",
                "phone": PHONE,
                "external_id": "H-1",
                "lines": hyper_lines,
                "payments": [{"method": "card", "amount": "865.00"}],
                "bonus_payment": "80.00",
            },
        ),
        201,
    )
    assert (second["total"], second["bonus_paid"], second["balance"]) == ("945.00", "80.00", "20.00")

    # one coffee back from the hypermarket: 450 of 945 paid, so 80 × 450/945 = 38.10 back
    refund = ok(
        send(
            till,
            "receipts/H-1/refund",
            {
                "point_of_sale": "hyper-1",
                "refund_id": "H-1-R1",
                "lines": [{"sku": "COFFEE", "quantity": "1"}],
            },
        ),
        201,
    )
    assert (refund["amount"], refund["bonus_restored"], refund["bonus_clawed_back"]) == (
        "450.00",
        "38.10",
        "0.00",
    )
    assert refund["receipt_state"] == "partly_refunded"
    assert refund["lines"][0]["discount"] == "50.00"

    # one coffee back from the online order: half its 100 bonuses are taken back
    refund = ok(
        send(
            till,
            "receipts/WEB-1/refund",
            {"point_of_sale": "web", "refund_id": "WEB-1-R1", "lines": [{"sku": "COFFEE", "quantity": "1"}]},
        ),
        201,
    )
    assert (refund["amount"], refund["bonus_restored"], refund["bonus_clawed_back"]) == (
        "500.00",
        "0.00",
        "50.00",
    )

    # the rest of the hypermarket receipt: exactly the remaining 41.90 come back
    refund = ok(send(till, "receipts/H-1/refund", {"point_of_sale": "hyper-1", "refund_id": "H-1-R2"}), 201)
    assert (refund["amount"], refund["bonus_restored"], refund["receipt_state"]) == (
        "495.00",
        "41.90",
        "refunded",
    )

    balance = ok(till.get("balance", params={"phone": "8 916 123 45 67"}))
    assert balance["member"] == member["id"]
    assert [(b["currency"], b["available"], b["pending"]) for b in balance["balances"]] == [
        ("bonus", "50.00", "0.00")
    ]

    # the ledger agrees to the kopeck: account total, entries and open lots
    account = BonusAccount.objects.get(member_id=member["id"])
    entries = LedgerEntry.objects.filter(account=account)
    by_kind = dict(entries.values_list("kind").annotate(s=Sum("available_delta")))
    assert account.available == Decimal("50.00") and account.pending == 0
    assert entries.aggregate(s=Sum("available_delta"))["s"] == Decimal("50.00")
    assert LotRemainder.objects.filter(account=account).aggregate(s=Sum("available"))["s"] == Decimal("50.00")
    assert by_kind == {
        "accrual": Decimal("100.00"),
        "spend": Decimal("-80.00"),
        "restore": Decimal("80.00"),
        "clawback": Decimal("-50.00"),
    }
    hyper = Receipt.objects.get(external_id="H-1")
    assert sum(r.total for r in hyper.refunds.all()) == hyper.total == Decimal("945.00")
