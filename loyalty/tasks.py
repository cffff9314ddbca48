"""Celery tasks: thin wrappers that call one service each."""

from celery import shared_task

from loyalty.services import ledger


@shared_task(name="loyalty.tasks.activate_bonuses")
def activate_bonuses() -> int:
    return ledger.bonuses_activate()


@shared_task(name="loyalty.tasks.expire_bonuses")
def expire_bonuses() -> int:
    return ledger.bonuses_expire()
