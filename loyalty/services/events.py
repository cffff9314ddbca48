"""Recording member events and calling their subscribers after commit."""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from loyalty.events import event_handlers, event_types
from loyalty.models import Member, MemberEvent, PointOfSale
from loyalty.prepared import insert_one

logger = logging.getLogger(__name__)


def event_record(
    *,
    event_type: str,
    member: Member | None,
    point_of_sale: PointOfSale | None = None,
    channel: str = "",
    payload: dict[str, Any] | None = None,
    occurred_at=None,
) -> MemberEvent:
    """Append an event to the journal. Handlers registered for its type run once the
    surrounding transaction commits (never if it rolls back); a failing handler is logged
    and does not stop the others. Handlers registered ``in_transaction`` run now, in the
    caller's transaction; their failure fails the recording."""
    if event_type not in event_types:
        raise ValueError(f"unknown event type {event_type!r}")
    with transaction.atomic(savepoint=False):
        event = insert_one(
            MemberEvent(
                event_type=event_type,
                member=member,
                point_of_sale=point_of_sale,
                channel=channel or (point_of_sale.kind if point_of_sale else ""),
                payload=payload or {},
                occurred_at=occurred_at or timezone.now(),
            )
        )
        for handler in event_handlers.in_transaction_for(event_type):
            handler(event)
    handlers = event_handlers.handlers_for(event_type)
    if handlers:
        transaction.on_commit(lambda: _dispatch(event, handlers))
    return event


#: Event types that happen once in a member's life: a repeated report returns the first
#: event, and the offers of the type do not run (or accrue) again.
ONCE_PER_MEMBER = frozenset({"app_installed"})


@transaction.atomic
def event_report(
    *,
    event_type: str,
    member: Member,
    point_of_sale: PointOfSale | None = None,
    channel: str = "",
    payload: dict[str, Any] | None = None,
    occurred_at=None,
) -> tuple[MemberEvent, bool]:
    """An event reported from outside (a till, the members' app, the back-office API):
    ``event_record``, except that a type in ``ONCE_PER_MEMBER`` is recorded once per
    member. Returns the event and whether it was recorded now."""
    if event_type in ONCE_PER_MEMBER:
        # Two reports at once queue on the member row, so one event is recorded.
        Member.objects.select_for_update().filter(pk=member.pk).values_list("pk", flat=True).first()
        first = MemberEvent.objects.filter(member=member, event_type=event_type).order_by("pk").first()
        if first is not None:
            return first, False
    event = event_record(
        event_type=event_type,
        member=member,
        point_of_sale=point_of_sale,
        channel=channel,
        payload=payload,
        occurred_at=occurred_at,
    )
    return event, True


def _dispatch(event: MemberEvent, handlers) -> None:
    for handler in handlers:
        try:
            handler(event)
        except Exception:
            logger.exception("event handler %r failed for event %s", handler, event.pk)
