"""Thin Celery tasks: take ids, call one service."""

import logging
import time

from celery import shared_task
from django.db import close_old_connections

from communications.services import delivery
from gateways.models import Gateway

log = logging.getLogger(__name__)

# A dispatch task works for about this long, then hands over to a fresh task so one
# gateway's backlog cannot hold a worker for hours and beat's kicks stay cheap.
TASK_BUDGET_SECONDS = 30.0


@shared_task(acks_late=True)
def dispatch(gateway_id: int) -> dict:
    gateway = Gateway.objects.filter(pk=gateway_id, enabled=True).first()
    if gateway is None:
        return {}
    total = delivery.DispatchReport()
    started = time.monotonic()
    while time.monotonic() - started < TASK_BUDGET_SECONDS:
        report = delivery.dispatch_batch(gateway=gateway)
        total.add(report)
        if report.claimed == 0:
            break
    else:
        dispatch.delay(gateway_id)
    close_old_connections()
    return {"claimed": total.claimed, "sent": total.sent, "retried": total.retried, "failed": total.failed}


@shared_task
def dispatch_due() -> dict:
    """Every minute: start dispatch for gateways with due messages (retries, deferrals
    that have come due, leases of dead workers that ran out)."""
    due = delivery.due_gateways()
    for gateway_id, count in due.items():
        for _i in range(min(4, 1 + count // 5000)):
            dispatch.delay(gateway_id)
    return due


@shared_task
def cascade_fallbacks() -> int:
    return delivery.fallbacks_due()


@shared_task
def poll_statuses() -> int:
    moved = 0
    for gateway in Gateway.objects.filter(enabled=True):
        try:
            moved += delivery.statuses_poll(gateway=gateway)
        except Exception:  # one provider's outage must not stop polling the others
            log.exception("polling gateway %s failed", gateway.pk)
    return moved


@shared_task
def mailings_start_due() -> int:
    from communications.services.mailings import mailings_start_due as start

    return start()


@shared_task(acks_late=True)
def mailing_prepare(mailing_id: int) -> dict:
    from communications.models import Mailing
    from communications.services.mailings import mailing_prepare as prepare

    mailing = Mailing.objects.filter(pk=mailing_id).first()
    return prepare(mailing=mailing) if mailing else {}


@shared_task
def chains_advance() -> dict:
    from communications.services.chains import chains_advance as advance

    return advance()


@shared_task
def regular_run() -> dict:
    from communications.services.regular import regular_run as run

    return run()
