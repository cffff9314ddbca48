"""The member's web session: who is signed in, and for how long.

A member session is separate from back-office users (Django's ``auth``): it holds the
member's id under ``SESSION_KEY`` and ends after ``PORTAL["SESSION_MINUTES"]`` without a
request. Signing in rotates the session key (no fixation).
"""

from __future__ import annotations

from django.conf import settings

from loyalty.models import Member, MemberState

SESSION_KEY = "portal_member_id"


def member_login(request, member: Member) -> None:
    request.session.cycle_key()
    request.session[SESSION_KEY] = member.pk
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
        .exclude(state__in=[MemberState.BLOCKED, MemberState.DELETED])
        .select_related("status")
        .first()
    )
    if member is None:
        request.session.flush()
        return None
    request.session.set_expiry(settings.PORTAL["SESSION_MINUTES"] * 60)  # idle timeout restarts
    return member
