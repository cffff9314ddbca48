"""SMS length rules shared by every SMS adapter and by template previews.

A text is GSM-7 when every character is in the GSM 03.38 default table or its extension
table (extension characters cost two septets); otherwise the whole text is UCS-2, where a
character outside the Basic Multilingual Plane (most emoji) costs two units. Single
messages hold 160 septets / 70 units; concatenated parts 153 / 67 (8-bit reference UDH).
"""

from dataclasses import dataclass

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "^{}\\[~]|€\f"
_BASIC = frozenset(GSM7_BASIC)
_EXT = frozenset(GSM7_EXTENSION)


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "gsm7" or "ucs2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC or ch in _EXT for ch in text)


def sms_length(text: str) -> SmsLength:
    if is_gsm7(text):
        units = sum(2 if ch in _EXT else 1 for ch in text)
        single, part = 160, 153
        encoding = "gsm7"
    else:
        units = len(text.encode("utf-16-be")) // 2
        single, part = 70, 67
        encoding = "ucs2"
    if units <= single:
        return SmsLength(encoding, units, 1 if units else 0, single)
    return SmsLength(encoding, units, -(-units // part), part)


def sms_parts(text: str) -> list[str]:
    """Split ``text`` into concatenation parts without breaking an escape pair (GSM-7)
    or a surrogate pair (UCS-2)."""
    length = sms_length(text)
    if length.segments <= 1:
        return [text]
    parts, current, used = [], [], 0
    for ch in text:
        wide = ch in _EXT if length.encoding == "gsm7" else ord(ch) > 0xFFFF
        cost = 2 if wide else 1
        if used + cost > length.per_segment:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += cost
    if current:
        parts.append("".join(current))
    return parts
