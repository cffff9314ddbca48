"""The recipes: the seed's six turn-on / turn-off pairs and the registration example, run
day by day; and the demo command that sets them up."""

import datetime as dt

import pytest
from django.core.management import call_command

from communications.models import Chain, ChainEntry, ChainStatus, EntryState, MessageTemplate
from communications.recipes import chain_from_recipe, recipes
from communications.services.chains import chain_activate
from loyalty.events import event_types
from tests.communications import test_chains as chain_tests
from tests.communications.test_chains import live_day_by_day, sent

# The chain tests' fixtures, shared.
buy, dispatches, happen, sms = chain_tests.buy, chain_tests.dispatches, chain_tests.happen, chain_tests.sms

pytestmark = pytest.mark.django_db

# recipe: (turn-on, turn-off, the days its messages go out when nothing turns it off)
PAIRS = {
    "first_purchase_no_visit": ("purchase_completed", "purchase_completed", [14]),
    "phone_no_questionnaire": ("phone_bound", "questionnaire_filled", [3]),
    "bonuses_unspent": ("purchase_completed", "bonus_paid", [30]),
    "social_inactive": ("social_profile_linked", "social_activity", [7]),
    "no_referrals": ("registration_completed", "friend_invited", [7, 21]),
    "app_no_registration": ("app_installed", "registration_completed", [1]),
}


def test_the_recipes_are_the_six_pairs_and_the_registration_example():
    assert set(recipes) == {*PAIRS, "welcome_no_purchase"}
    for key, (turn_on, turn_off, _days) in PAIRS.items():
        recipe = recipes[key]
        assert (recipe.turn_on, recipe.turn_off) == (turn_on, (turn_off,))
        assert turn_on in event_types and turn_off in event_types


@pytest.mark.parametrize("key", list(PAIRS))
def test_a_recipe_starts_on_its_event_ends_on_the_other_and_sends_after_the_wait(
    key, noon, sms, make_member, happen
):
    # given: the recipe's chain, activated; two members start it
    turn_on, turn_off, days = PAIRS[key]
    chain = chain_from_recipe(key)
    chain_activate(chain=chain)
    staying, leaving = make_member(first_name="Olga"), make_member(first_name="Ivan")
    happen(turn_on, staying)
    happen(turn_on, leaving)
    # when: the turn-off event happens to one of them in the first hour
    noon.shift(dt.timedelta(minutes=30))
    happen(turn_off, leaving)
    timeline = live_day_by_day(noon, max(days) + 2, sms)
    # then: the other one gets the messages after the waits, and nothing else goes out
    assert sorted(timeline) == days
    assert [m.member for m in sent()] == [staying] * len(days)
    assert all("{{" not in text for texts in timeline.values() for text in texts)
    assert ChainEntry.objects.get(chain=chain, member=staying).state == EntryState.FINISHED
    left = ChainEntry.objects.get(chain=chain, member=leaving)
    assert (left.state, left.exit_reason) == (EntryState.EXITED, f"event:{turn_off}")


def test_first_purchase_recipe_ignores_a_member_who_bought_before(noon, sms, make_member, happen, buy):
    # given
    chain = chain_from_recipe("first_purchase_no_visit")
    member = make_member()
    buy(member)  # before the chain is active: not counted by it
    chain_activate(chain=chain)
    noon.shift(dt.timedelta(days=2))
    # when: the member buys again
    buy(member)
    timeline = live_day_by_day(noon, 16, sms)
    # then
    assert timeline == {}
    entry = ChainEntry.objects.get(chain=chain, member=member)
    assert (entry.state, entry.exit_reason) == (EntryState.EXITED, "condition:1")


def test_bonuses_recipe_starts_again_a_month_after_the_previous_pass(noon, sms, make_member, buy):
    # given
    chain_activate(chain=chain_from_recipe("bonuses_unspent"))
    member = make_member()
    buy(member)
    # when: purchases on days 10 (inside the pass) and 31 (after it, a month after the start)
    timeline = live_day_by_day(noon, 62, sms, on_day=lambda day: day in (10, 31) and buy(member))
    # then: a reminder 30 days after each pass started
    assert sorted(timeline) == [30, 61]
    assert len(sent(member)) == 2


def test_a_recipe_makes_a_draft_with_editable_sms_templates(db):
    # when
    chain = chain_from_recipe("no_referrals", name="Bring a friend")
    # then
    assert (chain.name, chain.status, chain.recipe) == ("Bring a friend", ChainStatus.DRAFT, "no_referrals")
    assert [s.kind for s in chain.steps.order_by("order")] == ["wait", "send", "wait", "send"]
    templates = MessageTemplate.objects.filter(
        pk__in=[s.params["template"] for s in chain.steps.filter(kind="send")]
    )
    assert {t.channel for t in templates} == {"sms"}
    assert all("{{ referral_code }}" in t.text for t in templates)


def test_the_demo_command_sets_up_the_recipes_once_and_activates_the_example(db):
    # when: run twice
    call_command("seed_demo_chains")
    templates = MessageTemplate.objects.count()
    call_command("seed_demo_chains")
    # then
    chains = {c.recipe: c for c in Chain.objects.all()}
    assert Chain.objects.count() == len(recipes) == len(chains)
    assert MessageTemplate.objects.count() == templates
    assert chains["welcome_no_purchase"].status == ChainStatus.ACTIVE
    assert {c.status for key, c in chains.items() if key != "welcome_no_purchase"} == {ChainStatus.DRAFT}
