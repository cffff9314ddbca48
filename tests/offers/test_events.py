"""Every event in the catalog can drive an offer: purchase-flow events price the
receipt at calculation, receipt events run on the confirmed (or refunded) receipt, and
every other event runs its offers when it is recorded."""

from decimal import Decimal

import pytest

from loyalty.events import event_types
from loyalty.models import BonusAccount
from loyalty.services.events import event_record
from loyalty.services.receipts import receipt_refund
from offers.catalog.events import PURCHASE_CALCULATION, RECEIPT_EVENTS
from offers.models import OfferApplication
from offers.services import purchase_calculate, purchase_confirm
from tests import factories
from tests.offers.conftest import lines

pytestmark = pytest.mark.django_db

OTHER_EVENTS = [
    t.key for t in event_types if t.key not in PURCHASE_CALCULATION and t.key not in RECEIPT_EVENTS
]


def balance(member) -> Decimal:
    return sum((a.available + a.pending for a in BonusAccount.objects.filter(member=member)), Decimal(0))


@pytest.mark.parametrize("event", PURCHASE_CALCULATION)
def test_purchase_flow_events_price_the_receipt(event, shop, make_offer, now):
    offer = make_offer(
        event=event, rules=[{"actions": [{"key": "discount", "params": {"kind": "percent", "value": "10"}}]}]
    )
    calc = purchase_calculate(point_of_sale=shop["hyper"], lines=lines(("COFFEE", 1, 500)))
    assert calc.result.applied == [offer.pk] and calc.result.discount_total() == Decimal("50.00")


@pytest.mark.parametrize("event", RECEIPT_EVENTS)
def test_receipt_events_run_on_the_receipt(event, shop, make_offer, now, django_capture_on_commit_callbacks):
    # given an offer of 5 % back on the receipt the event is about
    offer = make_offer(
        event=event, rules=[{"actions": [{"key": "bonus", "params": {"kind": "percent", "value": "5"}}]}]
    )
    referrer = factories.MemberFactory()
    member = factories.MemberFactory(referrer=referrer)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        receipt, _calc = purchase_confirm(
            point_of_sale=shop["hyper"], external_id="r1", lines=lines(("COFFEE", 2, 500)), member=member
        )
    if event == "purchase_refunded":
        with django_capture_on_commit_callbacks(execute=True):
            receipt_refund(receipt=receipt, external_id="r1-back")
    # then the offer ran once for the member the event belongs to
    who = referrer if event == "friend_purchase" else member
    (application,) = OfferApplication.objects.filter(offer=offer)
    assert application.member == who and application.bonus > 0
    assert balance(who) == application.bonus


@pytest.mark.parametrize("event", OTHER_EVENTS)
def test_every_other_event_runs_its_offers_when_recorded(
    event, shop, make_offer, now, django_capture_on_commit_callbacks
):
    # given an offer of 10 additional points on the event
    offer = make_offer(event=event, rules=[{"actions": [{"key": "extra_bonus", "params": {"amount": "10"}}]}])
    member = factories.MemberFactory()
    # when it happens
    with django_capture_on_commit_callbacks(execute=True):
        event_record(event_type=event, member=member, payload={"source": "test"})
    # then
    assert OfferApplication.objects.filter(offer=offer, member=member).count() == 1
    assert balance(member) == Decimal("10")
