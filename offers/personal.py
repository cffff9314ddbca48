"""Personal products: the member picks up to ``max_picks`` products of a list for its
period; the picks are ``PersonalProduct`` rows that the engine's personal-products filter
reads on each receipt."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from loyalty.models import Member, Product
from offers.models import PersonalProduct, PersonalProductProgram


def programs_open(*, now: dt.datetime | None = None) -> list[PersonalProductProgram]:
    """Active lists whose period has not ended (running and upcoming), soonest first."""
    now = now or timezone.now()
    return list(
        PersonalProductProgram.objects.filter(active=True, ends_at__gt=now).order_by("starts_at", "pk")
    )


def program_products(program: PersonalProductProgram) -> list[Product]:
    return list(program.products.filter(active=True).order_by("name"))


def picks_of(member: Member, programs: Iterable[PersonalProductProgram]) -> dict[int, set[int]]:
    """The member's picked product ids per list (one query)."""
    ids = [p.pk for p in programs]
    out: dict[int, set[int]] = {pk: set() for pk in ids}
    for program_id, product_id in PersonalProduct.objects.filter(
        member=member, program_id__in=ids
    ).values_list("program_id", "product_id"):
        out[program_id].add(product_id)
    return out


@transaction.atomic
def picks_set(
    *,
    member: Member,
    program: PersonalProductProgram,
    product_ids: Iterable[int],
    now: dt.datetime | None = None,
) -> list[PersonalProduct]:
    """Replace the member's picks for ``program``. Refused (``ValidationError`` on
    ``products``) when the list is closed, a product is not on it, or there are too many."""
    now = now or timezone.now()
    wanted = list(dict.fromkeys(int(pk) for pk in product_ids))
    if not program.active or program.ends_at <= now:
        raise ValidationError({"products": _("This list is closed: its period has ended.")})
    if len(wanted) > program.max_picks:
        raise ValidationError(
            {
                "products": ngettext(
                    "Choose at most %(count)s product; %(chosen)s were chosen.",
                    "Choose at most %(count)s products; %(chosen)s were chosen.",
                    program.max_picks,
                )
                % {"count": program.max_picks, "chosen": len(wanted)}
            }
        )
    offered = set(program.products.filter(active=True, pk__in=wanted).values_list("pk", flat=True))
    stray = [pk for pk in wanted if pk not in offered]
    if stray:
        raise ValidationError({"products": _("Product %(id)s is not on this list.") % {"id": stray[0]}})
    # Two requests of the same member queue here, so the limit holds.
    Member.objects.select_for_update().filter(pk=member.pk).values_list("pk", flat=True).first()
    PersonalProduct.objects.filter(member=member, program=program).delete()
    return PersonalProduct.objects.bulk_create(
        PersonalProduct(
            member=member,
            program=program,
            product_id=pk,
            valid_from=max(program.starts_at, now),
            valid_until=program.ends_at,
        )
        for pk in wanted
    )
