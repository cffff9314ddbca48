"""A marketer starts a chain from a recipe, edits its steps through each kind's own
fields, switches it on and off, and reads its report and members."""

import pytest
from django.contrib.auth.models import Group, User

from communications.models import Chain, ChainEntry, ChainStatus, EntryState
from communications.recipes import chain_from_recipe, recipes
from communications.services.chains import chain_activate, chains_advance
from loyalty.roles import ANALYST, MARKETER
from tests.communications import test_chains as chain_tests

# The chain tests' fixtures, shared.
dispatches, happen, sms = chain_tests.dispatches, chain_tests.happen, chain_tests.sms

pytestmark = pytest.mark.django_db


def _client_for(client, role: str):
    user = User.objects.create_user(role.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


@pytest.fixture
def marketer(client):
    return _client_for(client, MARKETER)


def form_data(chain: Chain, **changes) -> dict:
    """The change page's POST for the chain as stored, with ``changes`` on top (keys as
    the page names its fields, e.g. ``steps-0-wait__days``)."""
    steps = list(chain.steps.order_by("order"))
    data = {
        "name": chain.name,
        "description": chain.description,
        "turn_on": chain.turn_on,
        "turn_off": list(chain.turn_off),
        "reentry": chain.reentry,
        "reentry_days": chain.reentry_days or "",
        "steps-TOTAL_FORMS": len(steps),
        "steps-INITIAL_FORMS": len(steps),
        "steps-MIN_NUM_FORMS": 0,
        "steps-MAX_NUM_FORMS": 1000,
    }
    for i, step in enumerate(steps):
        data.update(
            {
                f"steps-{i}-id": step.pk,
                f"steps-{i}-chain": chain.pk,
                f"steps-{i}-order": step.order,
                f"steps-{i}-kind": step.kind,
                f"steps-{i}-name": step.name,
            }
        )
        for name, value in step.params.items():
            data[f"steps-{i}-{step.kind}__{name}"] = "on" if value is True else value
    data.update(changes)
    return data


def test_a_marketer_starts_a_chain_from_a_recipe(marketer):
    # given: the list links to the recipes, which name every recipe
    page = marketer.get("/admin/communications/chain/")
    assert page.status_code == 200 and b"/admin/communications/chain/recipes/" in page.content
    page = marketer.get("/admin/communications/chain/recipes/")
    assert page.status_code == 200
    for recipe in recipes.values():
        assert str(recipe.label).encode() in page.content
    # when
    response = marketer.post(
        "/admin/communications/chain/recipes/", {"recipe": "no_referrals", "name": "Bring a friend"}
    )
    # then: a draft, opened in the editor
    chain = Chain.objects.get(name="Bring a friend")
    assert response.status_code == 302 and response["Location"].endswith(f"/chain/{chain.pk}/change/")
    assert chain.status == ChainStatus.DRAFT and chain.steps.count() == 4
    page = marketer.get(response["Location"])
    assert page.status_code == 200
    assert b'name="steps-0-wait__days"' in page.content and b'name="steps-1-send__template"' in page.content


def test_a_marketer_makes_a_chain_from_scratch(marketer):
    # given: the empty editor offers a step with every kind's fields
    page = marketer.get("/admin/communications/chain/add/")
    assert page.status_code == 200
    for key in ("wait__days", "wait_until__time", "send__template", "condition__test", "bonus__amount"):
        assert f'name="steps-0-{key}"'.encode() in page.content
    # when
    response = marketer.post(
        "/admin/communications/chain/add/",
        {
            "name": "Visitors",
            "turn_on": "website_visit",
            "turn_off": ["purchase_completed"],
            "reentry": "after_exit",
            "reentry_days": 30,
            "steps-TOTAL_FORMS": 2,
            "steps-INITIAL_FORMS": 0,
            "steps-MIN_NUM_FORMS": 0,
            "steps-MAX_NUM_FORMS": 1000,
            "steps-0-order": 1,
            "steps-0-kind": "wait_until",
            "steps-0-wait_until__time": "10:00",
            "steps-0-wait_until__days": 1,
            "steps-1-order": 2,
            "steps-1-kind": "condition",
            "steps-1-condition__test": "no_purchase",
            "steps-1-condition__on_false": "exit",
        },
    )
    # then
    assert response.status_code == 302, response.content.decode()[:3000]
    chain = Chain.objects.get(name="Visitors")
    assert (chain.turn_off, chain.reentry_days, chain.status) == (
        ["purchase_completed"],
        30,
        ChainStatus.DRAFT,
    )
    assert [(s.kind, s.params) for s in chain.steps.order_by("order")] == [
        ("wait_until", {"time": "10:00:00", "days": 1}),
        ("condition", {"test": "no_purchase", "negate": False, "on_false": "exit"}),
    ]


def test_step_parameters_are_edited_through_the_kinds_fields(marketer):
    # given
    chain = chain_from_recipe("phone_no_questionnaire")
    url = f"/admin/communications/chain/{chain.pk}/change/"
    # when: the wait becomes five days, and a stray value in another kind's field is ignored
    response = marketer.post(url, form_data(chain, **{"steps-0-wait__days": 5, "steps-0-goto__step": "x"}))
    # then
    assert response.status_code == 302, response.content.decode()[:3000]
    wait = chain.steps.get(order=1)
    assert wait.kind == "wait" and wait.params == {"days": 5, "hours": 0, "minutes": 0}


def test_a_wrong_parameter_is_shown_on_its_field_and_nothing_is_saved(marketer):
    chain = chain_from_recipe("phone_no_questionnaire")
    url = f"/admin/communications/chain/{chain.pk}/change/"
    # when: no wait at all, and a goto to a step that does not exist
    data = form_data(chain, **{"steps-0-wait__days": 0})
    data.update(
        {
            "steps-TOTAL_FORMS": 3,
            "steps-2-order": 3,
            "steps-2-kind": "goto",
            "steps-2-goto__step": 9,
        }
    )
    page = marketer.post(url, data)
    # then
    assert page.status_code == 200
    errors = page.context["inline_admin_formsets"][0].formset.errors
    assert "wait__days" in errors[0]
    assert chain.steps.get(order=1).params["days"] == 3 and chain.steps.count() == 2
    # when: the wait is fixed; the goto still names a missing step
    data["steps-0-wait__days"] = 2
    page = marketer.post(url, data)
    errors = page.context["inline_admin_formsets"][0].formset.errors
    assert page.status_code == 200 and "goto__step" in errors[2]


def test_a_marketer_activates_pauses_and_stops_a_chain(marketer):
    chain = chain_from_recipe("social_inactive")
    base = f"/admin/communications/chain/{chain.pk}/status"
    assert marketer.post(f"{base}/active/").status_code == 302
    assert Chain.objects.get(pk=chain.pk).status == ChainStatus.ACTIVE
    page = marketer.get(f"/admin/communications/chain/{chain.pk}/change/")
    assert f"{base}/paused/".encode() in page.content and f"{base}/stopped/".encode() in page.content
    marketer.post(f"{base}/paused/")
    assert Chain.objects.get(pk=chain.pk).status == ChainStatus.PAUSED
    marketer.post(f"{base}/stopped/")
    assert Chain.objects.get(pk=chain.pk).status == ChainStatus.STOPPED
    # a stopped chain stays stopped
    response = marketer.post(f"{base}/active/", follow=True)
    assert Chain.objects.get(pk=chain.pk).status == ChainStatus.STOPPED
    assert b"cannot become" in response.content


def test_list_actions_switch_the_selected_chains(marketer):
    first, second = chain_from_recipe("social_inactive"), chain_from_recipe("app_no_registration")
    response = marketer.post(
        "/admin/communications/chain/",
        {"action": "activate", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    assert set(Chain.objects.values_list("status", flat=True)) == {ChainStatus.ACTIVE}


def test_the_report_and_members_pages(marketer, noon, sms, make_member, happen):
    # given: one member waits, one left on the turn-off event
    chain = chain_from_recipe("no_referrals")
    chain_activate(chain=chain)
    waiting, invited = make_member(), make_member()
    happen("registration_completed", waiting)
    happen("registration_completed", invited)
    happen("friend_invited", invited)
    chains_advance()
    # when
    page = marketer.get(f"/admin/communications/chain/{chain.pk}/report/")
    # then
    assert page.status_code == 200
    report = page.context["report"]
    assert (report.entered, report.active) == (2, 1)
    assert [(f.step.order, f.active) for f in report.steps][:2] == [(1, 1), (2, 0)]
    assert "Friend invited" in page.content.decode()
    # the list shows the members inside; the passes are listed read-only, by chain
    listing = marketer.get("/admin/communications/chain/")
    assert listing.context["cl"].result_list.get(pk=chain.pk).active_count == 1
    entries = marketer.get(
        f"/admin/communications/chainentry/?chain__id__exact={chain.pk}&state__exact=exited"
    )
    assert entries.status_code == 200
    assert [e.member for e in entries.context["cl"].result_list] == [invited]
    assert marketer.get("/admin/communications/chainentry/add/").status_code == 403
    entry = ChainEntry.objects.get(member=invited)
    assert entry.state == EntryState.EXITED
    assert marketer.get(f"/admin/communications/chainentry/{entry.pk}/change/").status_code == 200


def test_an_analyst_reads_the_report_but_cannot_switch_a_chain(client):
    chain = chain_from_recipe("social_inactive")
    analyst = _client_for(client, ANALYST)
    assert analyst.get(f"/admin/communications/chain/{chain.pk}/report/").status_code == 200
    assert analyst.post(f"/admin/communications/chain/{chain.pk}/status/active/").status_code == 403
    assert analyst.get("/admin/communications/chain/recipes/").status_code == 403
    assert Chain.objects.get(pk=chain.pk).status == ChainStatus.DRAFT
