"""The member's web session: who is signed in, and for how long.

A member session is separate from back-office users (Django's ``auth``): it holds the
member's id under ``SESSION_KEY`` and ends after ``PORTAL["SESSION_MINUTES"]`` without a
request. Signing in rotates the session key (no fixation).
"""

from __future__ import annotations

import time

from django.conf import settings

from loyalty.models import Member, MemberState

SESSION_KEY = "portal_member_id"
TOUCHED = "portal_touched"
# The idle timer is restarted (the session row rewritten) at most this often.
TOUCH_EVERY = 60


def member_login(request, member: Member) -> None:
    request.session.cycle_key()
    request.session[SESSION_KEY] = member.pk
    request.session[TOUCHED] = int(time.time())
    request.session.set_expiry(settings.PORTAL["SESSION_MINUTES"] * 60)


def member_logout(request) -> None:
    request.session.flush()


def session_member(request) -> Member | None:
    """The signed-in member (one query), with the idle timer restarted."""
    member_id = request.session.get(SESSION_KEY)
    if not member_id:
        return None
    member = (
        Member.objects.filter(pk=member_id)
        .exclude(state__in=[MemberState.BLOCKED])
        .select_related("status")
        .first()
    )
    if member is None:
        request.session.flush()
        return None
    now = int(time.time())
    if now - request.session.get(TOUCHED, 0) >= TOUCH_EVERY:  # the idle timer restarts
        request.session[TOUCHED] = now
        request.session.set_expiry(settings.PORTAL["SESSION_MINUTES"] * 60)
    return member
