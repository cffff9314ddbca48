from decimal import Decimal

from django import template
from django.conf import settings
from django.utils.formats import number_format

register = template.Library()

SYMBOLS = {"RUB": "₽", "EUR": "€", "USD": "$", "KZT": "₸", "BYN": "Br"}


@register.filter
def money(value) -> str:
    """An amount in the program's currency, formatted for the active language."""
    if value in (None, ""):
        return ""
    code = settings.LOYALTY["CURRENCY"]
    return f"{number_format(Decimal(value), 2, force_grouping=True)} {SYMBOLS.get(code, code)}"


@register.filter
def points(value) -> str:
    if value in (None, ""):
        return ""
    return number_format(Decimal(value), 2, force_grouping=True)
