"""Celery tasks of the offers app: thin wrappers that call one service each."""

from celery import shared_task

from offers.reach import reach_refresh


@shared_task(name="offers.tasks.refresh_offer_reach")
def refresh_offer_reach() -> int:
    return reach_refresh()
