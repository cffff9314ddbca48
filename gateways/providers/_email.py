"""Building the MIME message shared by the SMTP and file gateways.

multipart/alternative (text + HTML) wrapped in multipart/related when the HTML carries
inline images (``cid:`` references). Marketing mail gets ``List-Unsubscribe`` with the
one-click HTTPS link and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
(RFC 2369, RFC 8058).

The message is assembled directly as bytes: 7-bit clean (RFC 2047 encoded words in
headers, base64 bodies), CRLF line ends, so any relay takes it without 8BITMIME or
SMTPUTF8. The standard library's ``email.message`` builder costs several milliseconds
a message, which alone would cap a worker at a few hundred emails a second.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from gateways.providers.base import OutgoingMessage

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII except ':'


@dataclass(frozen=True)
class BuiltEmail:
    message_id: str  # with angle brackets
    data: bytes


def encode_word(value: str) -> str:
    """A header value as RFC 2047 encoded words where needed, folded under 78 columns."""
    value = value.replace("\r", " ").replace("\n", " ")
    if value.isascii() and len(value) < 900:
        return value
    words, chunk = [], b""
    for ch in value:
        encoded = ch.encode("utf-8")
        if len(chunk) + len(encoded) > 45:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


@lru_cache(maxsize=256)
def address_header(value: str) -> str:
    name, addr = parseaddr(value)
    if not addr:
        return encode_word(value)
    if not name:
        return addr
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{addr}>'
    return f"{encode_word(name)} <{addr}>"


def _b64(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False) if len(data) <= 57 else _b64_lines(data)


def _b64_lines(data: bytes) -> bytes:
    return b"\r\n".join(binascii.b2a_base64(data[i : i + 57], newline=False) for i in range(0, len(data), 57))


def _part(content_type: str, body: bytes, extra: str = "") -> bytes:
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n{extra}\r\n"
    return head.encode() + _b64(body) + b"\r\n"


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    sep = f"--{boundary}\r\n".encode()
    body = b"".join(sep + p for p in parts) + f"--{boundary}--\r\n".encode()
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode() + body


def mime_bytes(message: OutgoingMessage, *, sender: str, domain: str = "") -> BuiltEmail:
    """The whole message, ready for DATA. Raises ``ValueError`` on a bad header name."""
    content = message.content
    ref = message.ref.replace("-", "")
    message_id = f"<{ref}@{domain or 'localhost'}>"
    headers = [
        f"From: {address_header(sender)}",
        f"To: {message.to if message.to.isascii() and '<' not in message.to else address_header(message.to)}",
        f"Subject: {encode_word(str(content.get('subject') or ''))}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {message_id}",
        f"X-Message-Ref: {message.ref}",
        "MIME-Version: 1.0",
    ]
    for name, value in (content.get("headers") or {}).items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"bad header name {name!r}")
        headers.append(f"{name}: {encode_word(str(value))}")
    if message.marketing and message.unsubscribe_url:
        headers.append(f"List-Unsubscribe: <{message.unsubscribe_url}>")
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    text = str(content.get("text") or "")
    html = str(content.get("html") or "")
    text_part = _part('text/plain; charset="utf-8"', (text or " ").encode("utf-8"))
    if not html:
        body = text_part
    else:
        html_part = _part('text/html; charset="utf-8"', html.encode("utf-8"))
        images = content.get("images") or []
        if images:
            related = [html_part]
            for image in images:
                ctype = image.get("content_type") or "image/png"
                filename = image.get("filename")
                extra = f"Content-ID: <{image['cid']}>\r\nContent-Disposition: inline"
                extra += f'; filename="{filename}"\r\n' if filename else "\r\n"
                related.append(_part(ctype, base64.b64decode(image["data"]), extra))
            html_part = _multipart("related", f"rel_{ref}", related)
        body = _multipart("alternative", f"alt_{ref}", [text_part, html_part])
    return BuiltEmail(message_id, "\r\n".join(headers).encode("ascii") + b"\r\n" + body)
