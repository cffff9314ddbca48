"""Members sign in with a one-time code sent to their phone or email.

The code goes out through the delivery pipeline as a transactional message (no consent
needed, exempt from quiet hours). Only its salted HMAC is stored; it expires in minutes,
allows a few wrong tries and is used once. Requests are throttled per address and per IP
address by counting the stored codes, so the limit holds across processes and restarts
and the SMS endpoint cannot be used to pump messages to arbitrary numbers.

The same codes confirm a new phone or email on the profile page and register a member.
The mobile app exchanges a verified code for a bearer token (``token_issue``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from loyalty.models import Member, MemberState
from loyalty.services.contacts import email_parse, phone_parse
from loyalty.services.errors import DomainError
from portal.models import CodeChannel, CodePurpose, LoginCode, MemberToken


def config(key: str):
    return settings.PORTAL[key]


class CodeThrottled(DomainError):
    code = "code_throttled"
    title = gettext_lazy("Too many codes requested.")
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class CodeInvalid(DomainError):
    code = "code_invalid"
    title = gettext_lazy("The code is wrong or has expired.")
    http_status = 400


@dataclass(frozen=True)
class Address:
    channel: str  # "sms" or "email"
    value: str  # E.164 phone or normalised email


def address_parse(text: str) -> Address:
    """A phone number in any common format, or an email. Raises ``ValidationError``."""
    text = (text or "").strip()
    if not text:
        raise ValidationError(_("Enter your phone number or email."), code="required")
    if "@" in text:
        return Address(CodeChannel.EMAIL, email_parse(text))
    return Address(CodeChannel.SMS, phone_parse(text).e164)


def member_by_address(address: Address) -> Member | None:
    field = "phone" if address.channel == CodeChannel.SMS else "email"
    return (
        Member.objects.filter(**{field: address.value})
        .exclude(state__in=[MemberState.BLOCKED])
        .order_by("pk")
        .first()
    )


def _hash(address: str, code: str) -> str:
    return salted_hmac("portal.login-code", f"{address}:{code}", algorithm="sha256").hexdigest()


def _throttle(address: Address, ip: str | None, now: dt.datetime) -> None:
    """Refuse when the address got a code moments ago, or the address or the IP address
    asked for too many codes in the last hour."""
    hour_ago = now - dt.timedelta(hours=1)
    recent = list(
        LoginCode.objects.filter(address=address.value, created_at__gt=hour_ago)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[: config("CODES_PER_ADDRESS_HOUR")]
    )
    gap = dt.timedelta(seconds=config("CODE_RESEND_SECONDS"))
    if recent and now - recent[0] < gap:
        wait = int((recent[0] + gap - now).total_seconds()) + 1
        raise CodeThrottled(
            _("A code was sent a moment ago. You can ask for a new one in %(seconds)s s.")
            % {"seconds": wait},
            retry_after=wait,
        )
    if len(recent) >= config("CODES_PER_ADDRESS_HOUR"):
        wait = int((recent[-1] + dt.timedelta(hours=1) - now).total_seconds()) + 1
        raise CodeThrottled(
            _("Too many codes were sent to this address. Try again in %(minutes)s min.")
            % {"minutes": wait // 60 + 1},
            retry_after=wait,
        )
    if ip:
        per_ip = config("CODES_PER_IP_HOUR")
        from_ip = list(
            LoginCode.objects.filter(ip=ip, created_at__gt=hour_ago)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[:per_ip]
        )
        if len(from_ip) >= per_ip:
            wait = int((from_ip[-1] + dt.timedelta(hours=1) - now).total_seconds()) + 1
            raise CodeThrottled(
                _("Too many codes were requested from your network. Try again in %(minutes)s min.")
                % {"minutes": wait // 60 + 1},
                retry_after=wait,
            )


def _code_text(code: str, purpose: str) -> str:
    program = settings.LOYALTY["PROGRAM_NAME"]
    minutes = config("CODE_TTL_MINUTES")
    if purpose == CodePurpose.BIND:
        return _(
            "%(code)s is your code to confirm this contact in %(program)s. It is valid for %(minutes)s min."
        ) % {
            "code": code,
            "program": program,
            "minutes": minutes,
        }
    return _(
        "%(code)s is your %(program)s sign-in code. It is valid for %(minutes)s min. "
        "Do not tell it to anyone."
    ) % {
        "code": code,
        "program": program,
        "minutes": minutes,
    }


@transaction.atomic
def code_request(
    *,
    address: Address,
    purpose: str = CodePurpose.SIGN_IN,
    ip: str | None = None,
    member: Member | None = None,
    now: dt.datetime | None = None,
) -> LoginCode:
    """Send a new code to ``address``. For sign-in the address must belong to a member;
    an unknown address is answered the same way (a code row is kept for throttling, no
    message goes out) so the form does not reveal who is a member."""
    from communications.models import Origin, Purpose
    from communications.services.delivery import message_send

    now = now or timezone.now()
    _throttle(address, ip, now)
    if purpose == CodePurpose.SIGN_IN and member is None:
        member = member_by_address(address)
    code = "".join(secrets.choice("0123456789") for _ in range(config("CODE_LENGTH")))
    login = LoginCode.objects.create(
        channel=address.channel,
        address=address.value,
        purpose=purpose,
        member=member,
        code_hash=_hash(address.value, code),
        ip=ip or None,
        created_at=now,
        expires_at=now + dt.timedelta(minutes=config("CODE_TTL_MINUTES")),
    )
    if purpose == CodePurpose.SIGN_IN and member is None:
        return login
    text = _code_text(code, purpose)
    content = {"text": text}
    if address.channel == CodeChannel.EMAIL:
        content = {"subject": _("Your code: %(code)s") % {"code": code}, "text": text}
    message_send(
        channel=address.channel,
        content=content,
        origin=Origin.TRANSACTIONAL,
        member=member,
        address=address.value,
        purpose=Purpose.TRANSACTIONAL,
        occurrence=f"code:{login.pk}",
        expires_at=login.expires_at,
    )
    return login


def code_verify(
    *,
    address: Address,
    code: str,
    purpose: str = CodePurpose.SIGN_IN,
    member: Member | None = None,
    now: dt.datetime | None = None,
) -> LoginCode:
    """The newest live code for ``address`` and ``purpose`` if ``code`` matches it; each
    wrong try counts, and after the allowed tries the code is dead. With ``member``, only
    a code that member asked for (confirming a contact). Raises ``CodeInvalid``."""
    now = now or timezone.now()
    code = "".join(ch for ch in (code or "") if ch.isdigit())
    with transaction.atomic():
        login = (
            LoginCode.objects.select_for_update()
            .filter(address=address.value, purpose=purpose, used_at__isnull=True, expires_at__gt=now)
            .filter(**({"member": member} if member is not None else {}))
            .order_by("-created_at")
            .first()
        )
        if login is None or login.attempts >= config("CODE_ATTEMPTS"):
            raise CodeInvalid(
                _("The code has expired or too many wrong codes were entered. Ask for a new one.")
            )
        matches = bool(code) and constant_time_compare(login.code_hash, _hash(address.value, code))
        if matches:
            login.used_at = now
            login.save(update_fields=["used_at"])
        else:
            login.attempts += 1
            login.save(update_fields=["attempts"])
    # The refusal is raised after the count is committed, so it survives. (Callers must
    # not wrap this in a transaction that a refusal rolls back.)
    if not matches:
        left = config("CODE_ATTEMPTS") - login.attempts
        if left <= 0:
            raise CodeInvalid(_("Wrong code. Too many wrong codes were entered; ask for a new one."))
        raise CodeInvalid(
            ngettext("Wrong code. %(left)s try left.", "Wrong code. %(left)s tries left.", left)
            % {"left": left}
        )
    return login


def sign_in(*, address: Address, code: str, now: dt.datetime | None = None) -> Member:
    """Verify a sign-in code and return its member (``CodeInvalid`` otherwise)."""
    login = code_verify(address=address, code=code, now=now)
    member = member_by_address(address) if login.member_id is None else login.member
    if member is None or member.state == MemberState.BLOCKED:
        raise CodeInvalid(_("Wrong code. Ask for a new one."))
    return member


# --- the mobile app's tokens ------------------------------------------------------------
TOKEN_PREFIX = "mt_"


def _token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_issue(*, member: Member, name: str = "", now: dt.datetime | None = None) -> tuple[MemberToken, str]:
    """A new bearer token; the key is returned once and only its hash is stored."""
    now = now or timezone.now()
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = MemberToken.objects.create(
        member=member,
        key_hash=_token_hash(key),
        name=name[:100],
        created_at=now,
        expires_at=now + dt.timedelta(days=config("TOKEN_DAYS")),
    )
    return token, key


def token_member(key: str, *, now: dt.datetime | None = None) -> MemberToken | None:
    """The live token for ``key`` with its member, or ``None``. ``last_used_at`` is
    written at most once a minute."""
    if not key.startswith(TOKEN_PREFIX):
        return None
    now = now or timezone.now()
    token = (
        MemberToken.objects.select_related("member")
        .filter(key_hash=_token_hash(key), revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if token is None or token.member.state == MemberState.BLOCKED:
        return None
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        MemberToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def token_revoke(*, token: MemberToken, now: dt.datetime | None = None) -> None:
    MemberToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now or timezone.now())
