"""The offer list's figures: how many receipts and members each offer has touched and the
discount and bonuses it gave, rolled up from ``OfferApplication``.

Counting the applications on every page load reads every row an offer ever wrote, and a
receipt writes one per offer that applied. Instead a periodic task adds the applications
written since the last roll-up, set-wise: receipts, discount and bonuses per offer by one
``GROUP BY`` upserted into ``OfferReach``; members through the (offer, member) pairs seen
for the first time (``OfferMember``, one ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING``), each pair counted once.

Applications younger than ``LAG`` wait for the next run: an id is drawn before its
transaction commits, so a row may still appear below an id already counted; a till's
transaction lasts milliseconds, the lag is a minute. ``reach_rebuild`` counts everything
again from the start.
"""

import datetime as dt

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from offers.models import Offer, OfferApplication, OfferMember, OfferReach, ReachClock

LAG = dt.timedelta(minutes=1)
BATCH = 100_000

_A = OfferApplication._meta.db_table
_R = OfferReach._meta.db_table
_M = OfferMember._meta.db_table
_O = Offer._meta.db_table


def _clock() -> ReachClock:
    ReachClock.objects.get_or_create(pk=1)
    return ReachClock.objects.select_for_update().get(pk=1)


def _batch_end(start: int, cutoff: dt.datetime, batch: int) -> int | None:
    """The id up to which the next batch counts: ``batch`` applications old enough, or as
    many as there are."""
    old_enough = OfferApplication.objects.filter(pk__gt=start, at__lte=cutoff)
    nth = list(old_enough.order_by("pk").values_list("pk", flat=True)[batch - 1 : batch])
    return nth[0] if nth else old_enough.aggregate(end=Max("pk"))["end"]


def _add(start: int, end: int, run: int) -> None:
    """Add the applications with ids in (start, end] to the figures."""
    rows = (
        f"FROM {_A} a WHERE a.id > %s AND a.id <= %s "
        f"AND EXISTS (SELECT 1 FROM {_O} o WHERE o.id = a.offer_id)"
    )
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {_R} (offer_id, receipts, members, discount, bonus) "
            f"SELECT a.offer_id, COUNT(a.receipt_id), 0, SUM(a.discount), SUM(a.bonus) {rows} "
            f"GROUP BY a.offer_id ON CONFLICT (offer_id) DO UPDATE SET "
            f"receipts = {_R}.receipts + excluded.receipts, discount = {_R}.discount + excluded.discount, "
            f"bonus = {_R}.bonus + excluded.bonus",
            [start, end],
        )
        cur.execute(
            f"INSERT INTO {_M} (offer_id, member_id, run) SELECT DISTINCT a.offer_id, a.member_id, %s "
            f"{rows} AND a.member_id IS NOT NULL ON CONFLICT (offer_id, member_id) DO NOTHING",
            [run, start, end],
        )
        cur.execute(
            f"UPDATE {_R} SET members = members + (SELECT COUNT(*) FROM {_M} m "
            f"WHERE m.run = %s AND m.offer_id = {_R}.offer_id) "
            f"WHERE offer_id IN (SELECT offer_id FROM {_M} WHERE run = %s)",
            [run, run],
        )


def reach_refresh(*, now: dt.datetime | None = None, batch: int = BATCH) -> int:
    """Add the applications written since the last roll-up (older than ``LAG``), a batch
    per transaction. Returns how many were counted."""
    now = now or timezone.now()
    cutoff, counted = now - LAG, 0
    while True:
        with transaction.atomic():
            clock = _clock()
            start = clock.counted_up_to
            end = _batch_end(start, cutoff, batch)
            if end is not None:
                clock.runs += 1
                _add(start, end, clock.runs)
                counted += OfferApplication.objects.filter(pk__gt=start, pk__lte=end).count()
                clock.counted_up_to = end
            clock.refreshed_at = now
            clock.save()
        if end is None:
            return counted


def reach_rebuild(*, now: dt.datetime | None = None, batch: int = BATCH) -> int:
    """Forget the figures and count every application again (the list shows the figures
    growing back meanwhile). Returns how many were counted."""
    with transaction.atomic():
        clock = _clock()
        OfferMember.objects.all().delete()
        OfferReach.objects.all().delete()
        clock.counted_up_to, clock.runs = 0, 0
        clock.save()
    return reach_refresh(now=now, batch=batch)


def reach_refreshed_at() -> dt.datetime | None:
    return ReachClock.objects.filter(pk=1).values_list("refreshed_at", flat=True).first()
