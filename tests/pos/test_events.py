"""Events a till reports: an installation of the members' app counts once per member,
so its offer's bonuses cannot be collected again by reporting it again."""

from decimal import Decimal

from django.utils import timezone

from loyalty.models import MemberEvent
from loyalty.services import ledger
from loyalty.services.cards import card_issue
from loyalty.services.members import member_create
from tests.pos.conftest import offer_make, post

APP_BONUS = {"actions": [{"key": "extra_bonus", "params": {"amount": "100"}}]}


def test_an_app_installation_reported_again_is_the_first_one_and_earns_nothing_more(
    world, api, django_capture_on_commit_callbacks
):
    offer_make("app_installed", APP_BONUS, "100 bonuses for installing the app")
    member = member_create(first_name="Анна", phone="+79161234567")
    card = card_issue(member=member, point_of_sale=world.hyper)
    card.state, card.activated_at = "activated", timezone.now()
    card.save()
    body = {"event_type": "app_installed", "card": card.number}
    with django_capture_on_commit_callbacks(execute=True):  # offers run once the event commits
        first = post(api, "events", body)
        again = post(api, "events", body)  # another Idempotency-Key: a new report
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert MemberEvent.objects.filter(member=member, event_type="app_installed").count() == 1
    account = ledger.account_get_or_create(member=member)
    assert account.available + account.pending == Decimal(100)
    # other events are journaled each time they are reported
    assert post(api, "events", {"event_type": "social_activity", "card": card.number}).status_code == 201
    assert post(api, "events", {"event_type": "social_activity", "card": card.number}).status_code == 201
    assert MemberEvent.objects.filter(member=member, event_type="social_activity").count() == 2
