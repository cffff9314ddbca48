"""Opens, clicks and unsubscribes.

Email links are rewritten to a redirect on our host that records the click and sends
the member on (the target is signed together with the message reference, so the
redirect cannot be used to send people elsewhere); a 1×1 pixel records the open. Both
use the message's ``ref`` (a random UUID) as the opaque token. Unsubscribing (the link
in the message, the one-click ``List-Unsubscribe-Post`` request, or a provider's report)
withdraws consent on the channel and puts the address on the suppression list for
marketing; a complaint does the same.
"""

from __future__ import annotations

import hashlib
import hmac
import html as html_lib
import re
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from communications.models import Message, Status, Suppression
from communications.models.delivery import SuppressionReason

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


def _base() -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/")


def link_signature(ref: str, url: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"click|{ref}|{url}".encode(), hashlib.sha256).hexdigest()[:20]


def click_url(ref: str, url: str) -> str:
    path = reverse("communications:click", args=[ref])
    return f"{_base()}{path}?{urlencode({'u': url, 's': link_signature(ref, url)})}"


def open_pixel_url(ref: str) -> str:
    return _base() + reverse("communications:open", args=[ref])


_SAMPLE_REF = "00000000-0000-0000-0000-000000000000"


def unsubscribe_url(ref) -> str:
    # reverse() once per process; per message only the ref changes.
    global _unsubscribe_pattern
    if _unsubscribe_pattern is None:
        _unsubscribe_pattern = reverse("communications:unsubscribe", args=[_SAMPLE_REF])
    return _base() + _unsubscribe_pattern.replace(_SAMPLE_REF, str(ref))


_unsubscribe_pattern: str | None = None


def email_prepare(content: dict, *, ref, unsubscribe: str) -> dict:
    """Rewrite the HTML part's links for click tracking, add the open pixel, and fill the
    unsubscribe placeholder. Leaves the stored content untouched."""
    ref = str(ref)
    html = content.get("html") or ""
    text = content.get("text") or ""
    if unsubscribe:
        html = html.replace("{{unsubscribe_url}}", unsubscribe)
        text = text.replace("{{unsubscribe_url}}", unsubscribe)
    if not html:
        return {**content, "text": text} if text != content.get("text") else content

    def rewrite(match: re.Match) -> str:
        url = html_lib.unescape(match.group(3))  # the attribute is HTML-escaped (&amp;)
        if unsubscribe and url == unsubscribe:
            return match.group(0)
        tracked = html_lib.escape(click_url(ref, url), quote=True)
        return f"{match.group(1)}{match.group(2)}{tracked}{match.group(2)}"

    html = _HREF.sub(rewrite, html)
    pixel = f'<img src="{open_pixel_url(ref)}" width="1" height="1" alt="" style="display:none">'
    html = html.replace("</body>", pixel + "</body>") if "</body>" in html else html + pixel
    return {**content, "html": html, "text": text}


def message_opened(*, message: Message) -> None:
    from communications.services.delivery import _transition

    now = timezone.now()
    for step in (Status.DELIVERED, Status.OPENED):
        _transition([message.pk], step, "", now)


def message_clicked(*, message: Message, url: str) -> None:
    from communications.services.delivery import _transition

    now = timezone.now()
    for step in (Status.DELIVERED, Status.OPENED):
        _transition([message.pk], step, "", now)
    _transition([message.pk], Status.CLICKED, url[:255], now)


@transaction.atomic
def message_unsubscribe(
    *,
    message: Message,
    complaint: bool = False,
    source: str = "link",
    scope: str = "",
    reason=None,
    comment: str = "",
) -> None:
    """Stop what the member asked to stop. ``scope="category"`` (the default for a
    message of a mailing category, including RFC 8058 one-click) opts the member out of
    that category only; otherwise consent on the channel is withdrawn and the address
    goes on the suppression list for marketing. A complaint always withdraws the channel.
    Repeating it changes nothing."""
    from communications.models import MailingCategory
    from communications.services.subscriptions import category_set, channel_set

    now = timezone.now()
    stamp = "complained_at" if complaint else "unsubscribed_at"
    Message.objects.filter(pk=message.pk, **{f"{stamp}__isnull": True}).update(**{stamp: now})
    category = (
        MailingCategory.objects.filter(code=message.category).first()
        if message.category and not complaint
        else None
    )
    if (scope or ("category" if category else "channel")) == "category" and category and message.member_id:
        category_set(
            member=message.member,
            category=category,
            subscribed=False,
            source=f"unsubscribe ({source})",
            reason=reason,
            comment=comment,
            message=message,
        )
        return
    if message.address:
        Suppression.objects.get_or_create(
            channel=message.channel,
            address=message.address,
            defaults={
                "reason": SuppressionReason.COMPLAINT if complaint else SuppressionReason.UNSUBSCRIBED,
                "note": f"message {message.ref}",
            },
        )
    if message.member_id:
        channel_set(
            member=message.member,
            channel=message.channel,
            subscribed=False,
            source="complaint" if complaint else f"unsubscribe ({source})",
            reason=reason,
            comment=comment,
            message=message,
        )
