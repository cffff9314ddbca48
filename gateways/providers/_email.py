"""Building the MIME message shared by the SMTP and file gateways.

multipart/alternative (text + HTML) wrapped in multipart/related when the HTML carries
inline images (``cid:`` references). Marketing mail gets ``List-Unsubscribe`` with the
one-click HTTPS link and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
(RFC 2369, RFC 8058).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from gateways.providers.base import OutgoingMessage


def sender_address(sender: str) -> str:
    name, addr = parseaddr(sender)
    if not addr:
        return sender
    return str(Address(display_name=name, addr_spec=addr)) if name else addr


def mime_build(message: OutgoingMessage, *, sender: str, domain: str = "") -> EmailMessage:
    content = message.content
    mime = EmailMessage()
    mime["From"] = sender_address(sender)
    mime["To"] = message.to
    mime["Subject"] = content.get("subject", "")
    mime["Date"] = format_datetime(datetime.now(UTC))
    mime["Message-ID"] = make_msgid(idstring=message.ref, domain=domain or None)
    mime["X-Message-Ref"] = message.ref
    for name, value in (content.get("headers") or {}).items():
        mime[name] = value
    if message.marketing and message.unsubscribe_url:
        mime["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = content.get("text") or ""
    html = content.get("html") or ""
    mime.set_content(text or " ")
    if html:
        mime.add_alternative(html, subtype="html")
        images = content.get("images") or []
        if images:
            html_part = mime.get_payload()[-1]
            for image in images:
                maintype, _, subtype = (image.get("content_type") or "image/png").partition("/")
                html_part.add_related(
                    base64.b64decode(image["data"]),
                    maintype=maintype,
                    subtype=subtype,
                    cid=f"<{image['cid']}>",
                    filename=image.get("filename"),
                )
    return mime
