"""Contact-data quality: phone and email normalisation, operator and time zone.

Every write of a member's contacts (admin, API, import, portal) goes through
``contacts_normalise``. Phones become E.164 with the operator from phonenumbers' carrier
data; the time zone comes from the region phonenumbers' geocoder names for the number
(mapped to an IANA zone, since its own zone lookup returns sixteen zones for a Russian
mobile), else from the city or the postal address.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from email_validator import EmailNotValidError, validate_email
from phonenumbers import carrier, geocoder
from phonenumbers import timezone as phone_timezone

from loyalty.models import ContactStatus
from loyalty.zones import CITY_ZONES, PHONE_REGION_ZONES


@dataclass(frozen=True)
class PhoneInfo:
    e164: str
    operator: str
    region: str
    time_zone: str


@dataclass(frozen=True)
class ContactData:
    city: str
    phone: str
    phone_raw: str
    phone_status: str
    phone_operator: str
    phone_region: str
    email: str
    email_raw: str
    email_status: str
    time_zone: str
    time_zone_source: str
    phone_error: str = ""
    email_error: str = ""

    def errors(self) -> dict[str, str]:
        return {k: v for k, v in (("phone", self.phone_error), ("email", self.email_error)) if v}


def phone_parse(raw: str) -> PhoneInfo:
    """Parse a phone number written in any common format. Raises ``ValidationError``.

    ``8 (916) 123-45-67``, ``+7 916 123 45 67``, ``79161234567`` and ``9161234567`` all
    give ``+79161234567``.
    """
    text = (raw or "").strip()
    if not text:
        raise ValidationError(_("Enter a phone number."), code="required")
    digits = re.sub(r"\D", "", text)
    region = settings.LOYALTY["PHONE_REGION"]
    # Russian habit: a leading 8 is the trunk prefix of +7 (8 916 ... / 8916...).
    if region == "RU" and not text.startswith("+") and len(digits) == 11 and digits[0] in "78":
        text = "+7" + digits[1:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(
            _("%(value)s is not a phone number."), code="invalid", params={"value": raw}
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(
            _("%(value)s is not a valid phone number."), code="invalid", params={"value": raw}
        )
    return _phone_info(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def phone_region_name(e164: str, stored: str = "") -> str:
    """The phone's region in the reader's language ("Свердловская обл" where the stored,
    English value reads "Ekaterinburg"); the stored value when the number is unreadable."""
    if not e164:
        return stored
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return stored
    return geocoder.description_for_number(number, (get_language() or "en")[:2]) or stored


@lru_cache(maxsize=65536)
def _phone_info(e164: str) -> PhoneInfo:
    number = phonenumbers.parse(e164)
    operator = carrier.name_for_number(number, "en")
    region = geocoder.description_for_number(number, "en")
    zone = PHONE_REGION_ZONES.get(region, "")
    if not zone:
        zones = [z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
        # Only trust the library's own answer when it is a single zone outside Russia,
        # where its zone data is coarse (Kaliningrad comes back as Europe/Bucharest).
        if len(zones) == 1 and number.country_code != 7:
            zone = zones[0]
    return PhoneInfo(e164=e164, operator=operator, region=region, time_zone=zone)


def email_parse(raw: str) -> str:
    """Validate and normalise an email (no DNS lookups). Raises ``ValidationError``."""
    text = (raw or "").strip()
    if not text:
        raise ValidationError(_("Enter an email address."), code="required")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        # The validator's own reason is in English: given where the reader reads English.
        if (get_language() or "en").startswith("en"):
            message, params = _("%(value)s is not a valid email address: %(reason)s"), {"reason": str(exc)}
        else:
            message, params = _("%(value)s is not a valid email address."), {}
        raise ValidationError(message, code="invalid", params={"value": raw, **params}) from exc
    return result.normalized.lower()


_CITY_PARTICLES = {"на", "над", "под", "de", "on"}


def city_normalise(text: str) -> str:
    """One spelling per city: no "г." prefix, single spaces, each part capitalised
    (``"г. санкт-петербург"`` → ``"Санкт-Петербург"``, ``"ростов-на-дону"`` →
    ``"Ростов-на-Дону"``)."""
    text = re.sub(r"^\s*(г\.|город)\s*", "", (text or "").strip(), flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text)

    def word(part: str, first: bool) -> str:
        return (
            part.lower()
            if (part.lower() in _CITY_PARTICLES and not first)
            else part[:1].upper() + part[1:].lower()
        )

    return " ".join(
        "-".join(word(p, i == 0 and j == 0) for j, p in enumerate(w.split("-")))
        for i, w in enumerate(text.split(" "))
    ).strip()


def city_time_zone(*texts: str) -> str:
    """The zone of the first known city named in ``texts`` (a city field, an address)."""
    for text in texts:
        if not text:
            continue
        key = text.strip().lower().replace("ё", "е")
        key = re.sub(r"^(г\.|город|city of)\s*", "", key).strip()
        if key in CITY_ZONES:
            return CITY_ZONES[key]
        for part in re.split(r"[,;]", key):
            part = re.sub(r"^\s*(г\.|город|city of)\s*", "", part).strip()
            if part in CITY_ZONES:
                return CITY_ZONES[part]
    return ""


def contacts_normalise(
    *, phone: str = "", email: str = "", city: str = "", postal_address: str = ""
) -> ContactData:
    """Normalise what was entered. Never raises: invalid values come back flagged, with
    the reason in ``phone_error`` / ``email_error``, so forms can refuse them and imports
    can keep the row marked as invalid contact data."""
    phone_raw, email_raw = (phone or "").strip(), (email or "").strip()
    e164 = operator = region = zone = zone_source = phone_error = email_error = ""
    phone_status = email_status = ContactStatus.MISSING
    if phone_raw:
        try:
            info = phone_parse(phone_raw)
        except ValidationError as exc:
            phone_status, phone_error = ContactStatus.INVALID, exc.messages[0]
        else:
            phone_status = ContactStatus.VALID
            e164, operator, region = info.e164, info.operator, info.region
            if info.time_zone:
                zone, zone_source = info.time_zone, "phone"
    normalised_email = ""
    if email_raw:
        try:
            normalised_email = email_parse(email_raw)
        except ValidationError as exc:
            email_status, email_error = ContactStatus.INVALID, exc.messages[0]
        else:
            email_status = ContactStatus.VALID
    if not zone:
        zone = city_time_zone(city, postal_address)
        zone_source = "city" if zone else ""
    return ContactData(
        city=city_normalise(city),
        phone=e164,
        phone_raw=phone_raw,
        phone_status=phone_status,
        phone_operator=operator,
        phone_region=region,
        email=normalised_email,
        email_raw=email_raw,
        email_status=email_status,
        time_zone=zone,
        time_zone_source=zone_source,
        phone_error=phone_error,
        email_error=email_error,
    )


def phone_search_key(text: str) -> str:
    """E.164 for a search box entry that looks like a phone number, else ``""``."""
    if sum(c.isdigit() for c in text) < 10:
        return ""
    try:
        return phone_parse(text).e164
    except ValidationError:
        return ""
