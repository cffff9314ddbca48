from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def portal_brand() -> dict:
    """The program's name and branding settings for the page frame."""
    return {
        "name": settings.LOYALTY["PROGRAM_NAME"],
        "color": settings.PORTAL["BRAND_COLOR"],
        "logo": settings.PORTAL["LOGO_URL"],
        "support": settings.PORTAL["SUPPORT_CONTACT"],
    }


@register.filter
def card_groups(number: str) -> str:
    """A card number in groups of four for reading aloud at the till."""
    number = number or ""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
