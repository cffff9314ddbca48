"""Celery tasks of the point-of-sale API: thin wrappers that call one service each."""

from celery import shared_task

from pos.services import idempotency_records_purge


@shared_task(name="pos.tasks.purge_idempotency_records")
def purge_idempotency_records() -> int:
    return idempotency_records_purge()
