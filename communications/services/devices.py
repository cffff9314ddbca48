"""Members' push devices: the app registers its token after sign-in and drops it on
sign-out; the push gateways send to the newest active token (``delivery.address_for``)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from communications.models import DeviceToken
from loyalty.models import Member


@transaction.atomic
def device_register(*, member: Member, platform: str, token: str, app: str = "") -> tuple[DeviceToken, bool]:
    """Register ``token`` for ``member``. A token known before (this member's or another
    one's, say after the phone changed hands) moves to this member and is active again.
    Returns the device and whether it is new."""
    defaults = {
        "member": member,
        "active": True,
        "registered_at": timezone.now(),
        "retired_at": None,
        "retired_reason": "",
    }
    if app:
        defaults["app"] = app
    return DeviceToken.objects.update_or_create(platform=platform, token=token, defaults=defaults)


def device_unregister(*, member: Member, token: str, reason: str = "unregistered by the app") -> bool:
    """Stop pushes to the member's device; ``False`` if the member has no such token."""
    devices = DeviceToken.objects.filter(member=member, token=token)
    if not devices.exists():
        return False
    devices.filter(active=True).update(active=False, retired_at=timezone.now(), retired_reason=reason)
    return True
