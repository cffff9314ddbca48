"""The offer list's figures are rolled up from the offers' applications set-wise: each
receipt and member counted once, nothing counted twice, the newest minute left for the
next run; the list reads the roll-up, not the applications."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from loyalty.services.members import member_create
from offers.models import OfferApplication, OfferReach
from offers.reach import reach_rebuild, reach_refresh
from offers.services import purchase_confirm
from tests.offers.conftest import lines

TEN_PERCENT = {
    "filters": [{"key": "products", "params": {"groups": [], "with_descendants": True}}],
    "actions": [{"key": "discount", "params": {"kind": "percent", "value": "10"}}],
}
BONUS_50 = {"filters": [], "actions": [{"key": "bonus", "params": {"kind": "fixed", "value": "50"}}]}
LATER = dt.timedelta(minutes=2)


@pytest.fixture
def offers(shop, make_offer):
    coffee_off = {**TEN_PERCENT, "filters": [{"key": "products", "params": {"groups": [shop["coffee"].pk]}}]}
    return {
        "coffee": make_offer("discount_calculated", [coffee_off], name="10 % off coffee"),
        "bonus": make_offer("bonus_calculated", [BONUS_50], name="50 bonuses a purchase"),
    }


def buy(shop, member, external_id, *items):
    purchase_confirm(point_of_sale=shop["hyper"], external_id=external_id, lines=lines(*items), member=member)


def figures(offer) -> tuple:
    reach = OfferReach.objects.filter(offer=offer).first()
    return (reach.receipts, reach.members, reach.discount, reach.bonus) if reach else None


def test_each_receipt_and_member_is_counted_once_across_runs(shop, offers):
    anna = member_create(first_name="Анна", phone="+79161230001")
    boris = member_create(first_name="Борис", phone="+79161230002")
    buy(shop, anna, "R-1", ("COFFEE", "2", "500"))  # 100 off coffee, 50 bonuses
    buy(shop, anna, "R-2", ("BREAD", "1", "50"))  # no coffee: bonuses only
    assert reach_refresh(now=timezone.now() + LATER) == 3
    assert figures(offers["coffee"]) == (1, 1, Decimal("100.00"), Decimal("0"))
    assert figures(offers["bonus"]) == (2, 1, Decimal("0"), Decimal("100.00"))
    # nothing new: nothing added
    assert reach_refresh(now=timezone.now() + LATER) == 0
    assert figures(offers["bonus"]) == (2, 1, Decimal("0"), Decimal("100.00"))
    # Anna again and Boris for the first time: two receipts more, one member more
    buy(shop, anna, "R-3", ("COFFEE", "1", "500"))
    buy(shop, boris, "R-4", ("COFFEE", "1", "500"))
    assert reach_refresh(now=timezone.now() + LATER) == 4
    assert figures(offers["coffee"]) == (3, 2, Decimal("200.00"), Decimal("0"))
    assert figures(offers["bonus"]) == (4, 2, Decimal("0"), Decimal("200.00"))
    # counting everything again, in small batches, comes to the same figures
    before = {o: figures(o) for o in offers.values()}
    assert reach_rebuild(now=timezone.now() + LATER, batch=2) == 7
    assert {o: figures(o) for o in offers.values()} == before


def test_the_newest_minute_waits_for_the_next_run(shop, offers):
    anna = member_create(first_name="Анна", phone="+79161230001")
    buy(shop, anna, "R-1", ("COFFEE", "1", "500"))
    assert reach_refresh() == 0  # written just now: a transaction below it may not have committed
    assert figures(offers["coffee"]) is None
    assert reach_refresh(now=timezone.now() + LATER) == 2
    assert figures(offers["coffee"]) == (1, 1, Decimal("50.00"), Decimal("0"))


def test_the_offer_list_reads_the_roll_up_and_says_when_it_was_counted(shop, offers, admin_client):
    anna = member_create(first_name="Анна", phone="+79161230001")
    buy(shop, anna, "R-1", ("COFFEE", "2", "500"))
    reach_refresh(now=timezone.now() + LATER)
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/admin/offers/offer/")
    assert page.status_code == 200
    assert not [q for q in queries if OfferApplication._meta.db_table in q["sql"]]
    rows = {
        line["name"]: (line["receipts"], line["members"], line["discount_given"], line["bonus_given"])
        for line in _rows(page)
    }
    assert rows["10 % off coffee"] == ("1", "1", "100.00 ₽", "0.00")
    assert rows["50 bonuses a purchase"] == ("1", "1", "0.00 ₽", "50.00")
    assert "counted every five minutes" in page.content.decode()
    # and the list sorts by reach
    assert admin_client.get("/admin/offers/offer/?o=6").status_code == 200
    # and the offer's own page shows its figures
    page = admin_client.get(f"/admin/offers/offer/{offers['coffee'].pk}/change/").content.decode()
    assert re.search(r'field-receipts.*?<div class="readonly">1</div>', page, re.S)
    assert re.search(r'field-discount_given.*?<div class="readonly">100.00 ₽</div>', page, re.S)


def _rows(page) -> list[dict]:
    html = page.content.decode()
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        cells = dict(re.findall(r'class="field-(\w+)[^"]*">(?:<a [^>]*>)?([^<]*)', row))
        if "name" in cells:
            out.append(cells)
    return out


def test_the_roll_up_runs_every_five_minutes_and_by_command(shop, offers, capsys):
    task = PeriodicTask.objects.get(task="offers.tasks.refresh_offer_reach")
    assert task.enabled and (task.interval.every, task.interval.period) == (5, "minutes")
    anna = member_create(first_name="Анна", phone="+79161230001")
    buy(shop, anna, "R-1", ("COFFEE", "1", "500"))
    OfferApplication.objects.update(at=timezone.now() - LATER)
    call_command("refresh_offer_reach")
    assert "Counted 2 offer applications" in capsys.readouterr().out
    call_command("refresh_offer_reach", "--rebuild")
    assert "Counted 2 offer applications" in capsys.readouterr().out
    assert figures(offers["coffee"]) == (1, 1, Decimal("50.00"), Decimal("0"))
