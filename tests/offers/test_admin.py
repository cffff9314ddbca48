"""A marketer builds an offer in the back office, sees errors where they belong,
simulates it on a sample receipt and activates it."""

import json

import pytest
from django.contrib.auth.models import Group, User

from loyalty.roles import MARKETER
from offers.models import Offer

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client):
    user = User.objects.create_user("marketer", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=MARKETER))
    client.force_login(user)
    return client


def _post(client, url, data):
    return client.post(url, data)


def test_building_simulating_and_activating_an_offer(marketer, shop, now):
    url = "/admin/offers/offer/builder/"
    page = marketer.get(url)
    assert page.status_code == 200
    base = {
        "name": "10% in hypermarkets",
        "event_type": "discount_calculated",
        "priority": 10,
        "structure": json.dumps([{"filters": [], "actions": []}]),
    }
    # when: a filter and an action are added
    page = marketer.post(url, {**base, "op": "add_filter:0", "new_filters_0": "points_of_sale"})
    structure = page.context["structure"]
    assert json.loads(structure)[0]["filters"] == [{"key": "points_of_sale"}]
    page = marketer.post(
        url, {**base, "structure": structure, "op": "add_action:0", "new_actions_0": "discount"}
    )
    structure = page.context["structure"]
    entries = {
        "r0-filters0-attribute": "CustomTradeFormat",
        "r0-filters0-values": "Hypermarket",
        "r0-actions0-kind": "percent",
        "r0-actions0-value": "150",
        "r0-actions0-target": "lines",
        "r0-actions0-rounding": "kopeck",
    }
    # then: a bad value is refused on its field, nothing saved
    page = marketer.post(url, {**base, **entries, "structure": structure, "op": "save"})
    assert page.status_code == 200 and not Offer.objects.exists()
    action = page.context["rules"][0].actions[0]
    assert any("100" in e for e in action.errors)
    # when: fixed and simulated on a sample receipt
    entries["r0-actions0-value"] = "10"
    page = marketer.post(
        url,
        {
            **base,
            **entries,
            "structure": structure,
            "op": "simulate",
            "sim-point_of_sale": shop["hyper"].pk,
            "sim-lines": "COFFEE 2 500\nBREAD 1 50",
        },
    )
    simulation = page.context["simulation"]
    assert simulation["result"].discount_total() == 105
    html = page.content.decode()
    assert "Rule 1: Discount 105.00 ₽" in html  # money in the program's currency
    assert "<td>1,000.00 ₽</td>" in html  # the line's amount
    # and saved, then activated
    response = marketer.post(url, {**base, **entries, "structure": structure, "op": "save"})
    offer = Offer.objects.get()
    assert response.status_code == 302 and offer.status == "draft"
    assert offer.rules[0]["filters"][0]["params"]["values"] == "Hypermarket"
    marketer.post(f"/admin/offers/offer/{offer.pk}/status/active/")
    offer.refresh_from_db()
    assert offer.status == "active"
    listing = marketer.get("/admin/offers/offer/")
    assert listing.status_code == 200 and b"10% in hypermarkets" in listing.content


def test_changing_an_active_offer_keeps_a_version(marketer, shop, make_offer, now):
    offer = make_offer(
        rules=[{"actions": [{"key": "discount", "params": {"kind": "percent", "value": "5"}}]}]
    )
    url = f"/admin/offers/offer/{offer.pk}/builder/"
    page = marketer.get(url)
    structure = page.context["structure"]
    marketer.post(
        url,
        {
            "name": offer.name,
            "event_type": offer.event_type,
            "priority": 100,
            "structure": structure,
            "op": "save",
            "r0-actions0-kind": "percent",
            "r0-actions0-value": "7",
            "r0-actions0-target": "lines",
            "r0-actions0-rounding": "kopeck",
        },
    )
    offer.refresh_from_db()
    assert offer.version == 2 and offer.rules[0]["actions"][0]["params"]["value"] == "7"
    assert offer.versions.get().rules[0]["actions"][0]["params"]["value"] == "5"


def test_the_member_page_shows_counters(marketer, now):
    from offers.models import Counter
    from offers.services import counters_apply
    from tests import factories

    member = factories.MemberFactory()
    Counter.objects.create(key="visits", name="Visits this month", period="month")
    counters_apply(member=member, changes={"visits": 3}, sets={}, now=now)
    page = marketer.get(f"/admin/loyalty/member/{member.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Visits this month" in html and "3.00" in html


def test_only_a_draft_offer_is_deleted(marketer, make_offer):
    """An offer that was ever active stays with the receipts it priced (their
    applications keep no index by offer to cascade through); a draft goes, in the back
    office one at a time or with the list's action."""
    from django.core.exceptions import ValidationError
    from django.utils import translation

    from offers.services import offer_delete, offer_delete_refusal, offer_set_status

    rules = [{"actions": [{"key": "discount", "params": {"kind": "percent", "value": "5"}}]}]
    draft = make_offer(name="Spring draft", rules=rules, status="draft")
    active = make_offer(name="Autumn 10 %", rules=rules)
    finished = make_offer(name="Summer 5 %", rules=rules)
    offer_set_status(offer=finished, status="finished")

    with pytest.raises(ValidationError) as refused:
        offer_delete(offer=active)
    assert "only a draft can be deleted" in refused.value.message_dict["status"][0]
    with translation.override("ru"):
        assert "удалить можно только черновик" in offer_delete_refusal(active)

    # The delete page of an offer that was active is forbidden, and its page offers no link.
    assert marketer.get(f"/admin/offers/offer/{active.pk}/delete/").status_code == 403
    page = marketer.get(f"/admin/offers/offer/{active.pk}/change/")
    assert page.status_code == 200 and f"/admin/offers/offer/{active.pk}/delete/" not in page.content.decode()

    # The list's action deletes the drafts among the chosen and names each offer it keeps.
    chosen = {"action": "delete_selected", "_selected_action": [draft.pk, active.pk, finished.pk]}
    confirm = marketer.post("/admin/offers/offer/", chosen)
    assert confirm.status_code == 200
    text = confirm.content.decode()
    assert "Spring draft" in text and "Autumn 10 %" in text  # the draft to delete; the warning
    assert [o.pk for o in confirm.context["queryset"]] == [draft.pk]
    done = marketer.post("/admin/offers/offer/", {**chosen, "post": "yes"}, follow=True)
    assert done.status_code == 200
    assert set(Offer.objects.values_list("name", flat=True)) == {"Autumn 10 %", "Summer 5 %"}
    warnings = [str(m) for m in done.context["messages"]]
    assert any("Summer 5 %" in m and "archive it instead" in m for m in warnings)

    # A draft alone is deleted from its own page.
    other = make_offer(name="Winter draft", rules=rules, status="draft")
    assert marketer.post(f"/admin/offers/offer/{other.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Offer.objects.filter(pk=other.pk).exists()
