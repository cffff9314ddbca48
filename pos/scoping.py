"""What an API key may see. A key acts for its partner's points of sale (or its one
point of sale). Cards belong to the partner whose point of sale issued them; cards the
program issued without a point of sale serve every partner. A member is seen through
the cards: a member with no card yet, or with a card the partner may see, is visible;
a member known only by other partners' cards is not. Whatever is out of scope is
answered exactly like something that does not exist (404), never 403."""

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _

from loyalty import refcache
from loyalty.models import Card, Member, PointOfSale, Receipt, ReceiptKind
from loyalty.prepared import PreparedRead
from loyalty.selectors import member_accounts_keep, member_accounts_sql
from loyalty.services.contacts import phone_parse
from pos.errors import CardNotFound, MemberNotFound, PointOfSaleNotFound, ReceiptNotFound
from pos.models import ApiKey


def points_of_sale(api_key: ApiKey) -> QuerySet[PointOfSale]:
    qs = PointOfSale.objects.filter(partner_id=api_key.partner_id, active=True)
    if api_key.point_of_sale_id:
        qs = qs.filter(pk=api_key.point_of_sale_id)
    return qs


def point_of_sale_get(api_key: ApiKey, code: str) -> PointOfSale:
    """The key's point of sale by code. Points of sale are read through the short
    reference cache (every till request names one); the key's scope is checked on each
    call."""
    pos = refcache.cached(("point_of_sale", code), lambda: PointOfSale.objects.filter(code=code).first())
    if (
        pos is None
        or not pos.active
        or pos.partner_id != api_key.partner_id
        or (api_key.point_of_sale_id and pos.pk != api_key.point_of_sale_id)
    ):
        raise PointOfSaleNotFound(_("No point of sale %(code)s.") % {"code": code})
    return pos


def _card_scope(api_key: ApiKey) -> Q:
    return Q(issued_at_point__isnull=True) | Q(issued_at_point__partner_id=api_key.partner_id)


def cards(api_key: ApiKey) -> QuerySet[Card]:
    return Card.objects.filter(_card_scope(api_key))


# ``cards(api_key).select_related("member", "member__status").filter(number=...)``, the
# SQL written once: every till request names a card, and compiling that queryset cost
# more than running it.
_CARD_WITH_MEMBER = PreparedRead(
    Card,
    related=("member", "member__status"),
    # and the member's accounts, which pricing reads next (one round trip instead of two)
    extra={"member_accounts": member_accounts_sql("{t}.member_id")},
    where=(
        "{t}.number = %s AND ({t}.issued_at_point_id IS NULL OR {t}.issued_at_point_id IN "
        f"(SELECT id FROM {PointOfSale._meta.db_table} WHERE partner_id = %s))"
    ),
)


def card_get(api_key: ApiKey, number: str) -> Card:
    if "\x00" in number:  # cannot be stored, so cannot exist
        raise CardNotFound(_("No such card."))
    card = _CARD_WITH_MEMBER.first(number, api_key.partner_id)
    if card is None:
        raise CardNotFound(_("No card %(number)s.") % {"number": number})
    if card.member is not None and hasattr(card, "member_accounts"):
        member_accounts_keep(card.member, card.member_accounts)
    return card


def members(api_key: ApiKey) -> QuerySet[Member]:
    any_card = Card.objects.filter(member=OuterRef("pk"))
    visible_card = Card.objects.filter(_card_scope(api_key), member=OuterRef("pk"))
    return Member.objects.filter(~Exists(any_card) | Exists(visible_card))


def member_get(api_key: ApiKey, pk: int) -> Member:
    member = members(api_key).select_related("status").filter(pk=pk).first()
    if member is None:
        raise MemberNotFound(_("No member %(id)s.") % {"id": pk})
    return member


def member_by_phone(api_key: ApiKey, phone: str, field: str = "phone") -> Member:
    try:
        e164 = phone_parse(phone).e164
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from exc
    member = members(api_key).select_related("status").filter(phone=e164).first()
    if member is None:
        raise MemberNotFound(_("No member with phone %(phone)s.") % {"phone": e164})
    return member


def identify(api_key: ApiKey, *, card: str = "", phone: str = "") -> tuple[Card | None, Member | None]:
    """The card and member a request names by card number and/or phone (both optional;
    when both are given they must name the same member)."""
    found_card = card_get(api_key, card) if card else None
    member = found_card.member if found_card else None
    if phone:
        by_phone = member_by_phone(api_key, phone)
        if found_card is not None and found_card.member_id not in (None, by_phone.pk):
            raise ValidationError({"phone": _("The phone belongs to another member than the card.")})
        member = by_phone
    return found_card, member


def receipt_get(pos: PointOfSale, external_id: str) -> Receipt:
    if "\x00" in external_id:  # cannot be stored, so cannot exist
        raise ReceiptNotFound(_("No such receipt."))
    receipt = (
        Receipt.objects.select_related("point_of_sale", "member", "card")
        .filter(point_of_sale=pos, kind=ReceiptKind.SALE, external_id=external_id)
        .first()
    )
    if receipt is None:
        raise ReceiptNotFound(_("No receipt %(id)s at %(pos)s.") % {"id": external_id, "pos": pos.code})
    return receipt
