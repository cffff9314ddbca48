"""Celery tasks of the point-of-sale API: thin wrappers that call one service each."""

import datetime as dt

from celery import shared_task
from django.conf import settings

from loyalty.services.receipts import receipt_holds_release
from pos.services import idempotency_records_purge


@shared_task(name="pos.tasks.purge_idempotency_records")
def purge_idempotency_records() -> int:
    return idempotency_records_purge()


@shared_task(name="pos.tasks.release_lapsed_reservations")
def release_lapsed_reservations() -> int:
    return receipt_holds_release(older_than=dt.timedelta(minutes=settings.POS_RESERVATION_MINUTES))
