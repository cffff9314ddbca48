"""How a message's status may move. Statuses only move forward:

    created → queued → sending → sent → delivered → opened → clicked

with a retry loop inside the sending stage (``sending`` ⇄ ``failed_temporary``, and back
to ``queued`` when a quiet-hours deferral or an expired lease returns it to the queue;
the attempt counter is what moves forward there). A final negative status (failed,
undeliverable, rejected, suppressed, expired, cancelled) ends a message that has not been
delivered; nothing moves a message out of one. A late or repeated callback that would
move a message back (``delivered`` after ``opened``) changes nothing, so callbacks may
arrive out of order and twice.
"""

from communications.models import Status

RANK = {
    Status.CREATED: 0,
    Status.QUEUED: 10,
    Status.SENDING: 20,
    Status.FAILED_TEMPORARY: 20,
    Status.SENT: 30,
    Status.DELIVERED: 40,
    Status.OPENED: 50,
    Status.CLICKED: 60,
}
FINAL_NEGATIVE = frozenset(
    {
        Status.FAILED,
        Status.UNDELIVERABLE,
        Status.REJECTED,
        Status.SUPPRESSED,
        Status.EXPIRED,
        Status.CANCELLED,
    }
)
RETRY_STAGE = frozenset({Status.QUEUED, Status.SENDING, Status.FAILED_TEMPORARY})
PENDING = frozenset({Status.CREATED, Status.QUEUED, Status.SENDING, Status.FAILED_TEMPORARY})
REACHED = frozenset({Status.SENT, Status.DELIVERED, Status.OPENED, Status.CLICKED})
DELIVERED_OR_LATER = frozenset({Status.DELIVERED, Status.OPENED, Status.CLICKED})


def can_move(old: str, new: str) -> bool:
    if old == new or old in FINAL_NEGATIVE:
        return False
    if new in FINAL_NEGATIVE:
        return RANK[old] < RANK[Status.DELIVERED]
    if old in RETRY_STAGE and new in RETRY_STAGE:
        return True
    return RANK[new] > RANK[old]


def sources_for(new: str) -> list[str]:
    """The statuses a message may be in for ``new`` to apply: the WHERE clause of a
    set-wise status update."""
    return [s for s in Status.values if can_move(s, new)]
