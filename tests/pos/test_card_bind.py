"""A card sold at the till without a member, or a member who registered elsewhere and
takes a card: the till binds the card to the member, then activates it."""

import pytest

from loyalty.models import Card
from loyalty.services.cards import card_block, card_issue
from loyalty.services.members import member_block, member_create
from tests.pos.conftest import post

PHONE = "+79161112233"


@pytest.fixture
def member(world):
    return member_create(first_name="Ирина", phone=PHONE)


@pytest.fixture
def loose_card(world):
    return card_issue(point_of_sale=world.hyper)  # sold without a member


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    return body


def test_a_loose_card_is_bound_by_phone_then_activated_and_prices_for_the_member(
    world, seed_offers, api, member, loose_card
):
    bound = post(api, f"cards/{loose_card.number}/bind", {"phone": "8 (916) 111-22-33"})
    assert bound.status_code == 200, bound.content
    assert (bound.json()["member"], bound.json()["state"]) == (member.pk, "issued")
    activated = post(api, f"cards/{loose_card.number}/activate", {"point_of_sale": "hyper-1"})
    assert activated.json()["state"] == "activated"
    priced = post(
        api,
        "receipts/calculate",
        {
            "point_of_sale": "hyper-1",
            "card": loose_card.number,
            "lines": [{"sku": "COFFEE", "quantity": "1", "price": "500.00"}],
        },
    )
    assert priced.status_code == 200 and priced.json()["member"] == member.pk


def test_binding_by_id_twice_is_the_same_card(world, api, member, loose_card):
    first = post(api, f"cards/{loose_card.number}/bind", {"member": member.pk})
    again = post(api, f"cards/{loose_card.number}/bind", {"member": member.pk})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert Card.objects.get(pk=loose_card.pk).member_id == member.pk


def test_another_members_card_and_blocked_cards_or_members_are_refused(world, api, member, loose_card):
    other = member_create(first_name="Олег", phone="+79160000001")
    theirs = card_issue(member=other, point_of_sale=world.hyper)
    problem(post(api, f"cards/{theirs.number}/bind", {"member": member.pk}), 409, "card_state")
    assert Card.objects.get(pk=theirs.pk).member_id == other.pk  # nothing changed
    blocked = card_block(card=card_issue(point_of_sale=world.hyper), reason="lost")
    problem(post(api, f"cards/{blocked.number}/bind", {"member": member.pk}), 409, "card_state")
    member_block(member=member, reason="fraud")
    problem(post(api, f"cards/{loose_card.number}/bind", {"member": member.pk}), 409, "member_blocked")
    assert Card.objects.get(pk=loose_card.pk).member_id is None


def test_bad_and_unknown_names_are_named(world, api, other_api, member, loose_card):
    path = f"cards/{loose_card.number}/bind"
    assert "member" in problem(post(api, path, {}), 400, "invalid")["errors"]
    both = problem(post(api, path, {"member": member.pk, "phone": PHONE}), 400, "invalid")
    assert "phone" in both["errors"]
    problem(post(api, path, {"member": 999999}), 404, "member_not_found")
    problem(post(api, "cards/7800000000000/bind", {"member": member.pk}), 404, "card_not_found")
    problem(post(other_api, path, {"member": member.pk}), 404, "card_not_found")
    assert Card.objects.get(pk=loose_card.pk).member_id is None
