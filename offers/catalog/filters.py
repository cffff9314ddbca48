"""Offer filters: whether a rule applies to this receipt or event.

A filter either answers yes/no for the whole context (``passes``) or, with
``selects_lines``, narrows the receipt lines the rule's actions work on (``select``);
a rule whose line filter leaves no line does not apply. ``needs`` names the member data
a filter reads, so the engine loads only what the active offers use.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _

from loyalty.models import PaymentMethod, PointOfSale, Product, ProductGroup, SalesChannel
from offers.catalog.base import CatalogEntry, Registry
from offers.engine import Context, Line


class OfferFilter(CatalogEntry):
    selects_lines: ClassVar[bool] = False
    # Decided by the point of sale alone (its id, sales channel, attributes): the engine
    # sorts out such filters once per point of sale instead of on every receipt.
    pos_static: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset()
    purchase_only: ClassVar[bool] = False

    def passes(self, ctx: Context) -> bool:
        raise NotImplementedError

    def select(self, ctx: Context, lines: list[Line]) -> list[Line]:
        raise NotImplementedError


offer_filters: Registry[type[OfferFilter]] = Registry("filter")

COMPARE = [("gte", "≥"), ("gt", ">"), ("eq", "="), ("lte", "≤"), ("lt", "<")]


def compare(value, op: str, target) -> bool:
    return {
        "gte": value >= target,
        "gt": value > target,
        "eq": value == target,
        "lte": value <= target,
        "lt": value < target,
    }[op]


class PaymentMethodParams(forms.Form):
    methods = forms.ModelMultipleChoiceField(
        label=_("payment methods"), queryset=PaymentMethod.objects.all(), to_field_name="code"
    )


@offer_filters.register
class PaymentMethodFilter(OfferFilter):
    key = "payment_method"
    label = _("Payment method")
    params = PaymentMethodParams
    purchase_only = True

    def setup(self, params):
        self.methods = frozenset(params["methods"])

    def passes(self, ctx):
        return bool(self.methods & ctx.payment_methods)


class PointsOfSaleParams(forms.Form):
    points_of_sale = forms.ModelMultipleChoiceField(
        label=_("points of sale"), queryset=PointOfSale.objects.all(), required=False
    )
    attribute = forms.CharField(
        label=_("or by attribute"), required=False, help_text=_("e.g. CustomTradeFormat")
    )
    values = forms.CharField(
        label=_("attribute values"),
        required=False,
        help_text=_("Comma-separated, e.g. Hypermarket, Supermarket"),
    )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("points_of_sale") and not cleaned.get("attribute"):
            raise forms.ValidationError(_("Choose points of sale or an attribute with its values."))
        if cleaned.get("attribute") and not cleaned.get("values"):
            self.add_error("values", _("Give the attribute's values."))
        return cleaned


@offer_filters.register
class PointsOfSaleFilter(OfferFilter):
    """By list, or by a point-of-sale attribute and its values (``CustomTradeFormat in
    [Hypermarket]``)."""

    key = "points_of_sale"
    label = _("Points of sale")
    params = PointsOfSaleParams
    pos_static = True

    def setup(self, params):
        self.ids = frozenset(params.get("points_of_sale") or ())
        self.attribute = params.get("attribute", "")
        self.values = frozenset(
            v.strip().casefold() for v in params.get("values", "").split(",") if v.strip()
        )

    def passes(self, ctx):
        if self.ids and ctx.point_of_sale_id in self.ids:
            return True
        if self.attribute:
            value = ctx.pos_attributes.get(self.attribute)
            values = value if isinstance(value, list) else [value]
            return any(str(v).casefold() in self.values for v in values if v is not None)
        return False


class SalesChannelParams(forms.Form):
    channels = forms.MultipleChoiceField(label=_("sales channels"), choices=SalesChannel.choices)


@offer_filters.register
class SalesChannelFilter(OfferFilter):
    key = "sales_channel"
    label = _("Sales channel")
    params = SalesChannelParams
    pos_static = True

    def setup(self, params):
        self.channels = frozenset(params["channels"])

    def passes(self, ctx):
        return ctx.sales_channel in self.channels


class ProductsParams(forms.Form):
    products = forms.ModelMultipleChoiceField(
        label=_("products"), queryset=Product.objects.all(), to_field_name="sku", required=False
    )
    groups = forms.ModelMultipleChoiceField(
        label=_("product groups"), queryset=ProductGroup.objects.all(), required=False
    )
    with_descendants = forms.BooleanField(label=_("include subgroups"), required=False, initial=True)
    exclude = forms.BooleanField(label=_("all products except these"), required=False)

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("products") and not cleaned.get("groups"):
            raise forms.ValidationError(_("Choose products or product groups."))
        return cleaned


@offer_filters.register
class ProductsFilter(OfferFilter):
    """Lines with these products or from these groups (with or without subgroups)."""

    key = "products"
    label = _("Products and product groups")
    params = ProductsParams
    selects_lines = True
    purchase_only = True

    def setup(self, params):
        self.skus = frozenset(params.get("products") or ())
        groups = ProductGroup.objects.filter(pk__in=params.get("groups") or ()).values_list("path", flat=True)
        self.paths = frozenset(groups)
        self.descendants = params.get("with_descendants", False)
        self.exclude = params.get("exclude", False)

    def _matches(self, line: Line) -> bool:
        if line.sku in self.skus:
            return True
        if self.descendants:
            return not self.paths.isdisjoint(line.prefixes)
        return line.group_path in self.paths

    def select(self, ctx, lines):
        if self.exclude:
            return [ln for ln in lines if not self._matches(ln)]
        paths = self.paths & ctx.prefixes
        skus = self.skus & ctx.skus
        if not paths and not skus:
            return []  # nothing on this receipt can match: no need to look at each line
        if lines is not ctx.lines:  # an earlier filter chose some lines: look at those
            return [ln for ln in lines if self._matches(ln)]
        # All the receipt's lines: take the matching ones from the receipt's index.
        by_prefix, by_sku = ctx.lines_by_prefix, ctx.lines_by_sku
        found: dict[int, Line] = {}
        for path in paths:
            for ln in by_prefix[path]:
                if self.descendants or ln.group_path == path:
                    found[ln.index] = ln
        for sku in skus:
            for ln in by_sku[sku]:
                found[ln.index] = ln
        return [found[i] for i in sorted(found)] if len(found) > 1 else list(found.values())


class AmountParams(forms.Form):
    measure = forms.ChoiceField(
        label=_("what"),
        choices=[
            ("amount", _("receipt amount")),
            ("quantity", _("quantity of goods")),
            ("lines", _("number of lines")),
        ],
    )
    operator = forms.ChoiceField(label=_("condition"), choices=COMPARE)
    value = forms.DecimalField(label=_("value"), min_value=0, decimal_places=2)


@offer_filters.register
class ReceiptAmountFilter(OfferFilter):
    key = "receipt"
    label = _("Receipt amount, quantity or lines")
    params = AmountParams
    purchase_only = True

    def setup(self, params):
        self.measure, self.op, self.value = params["measure"], params["operator"], Decimal(params["value"])

    def passes(self, ctx):
        if self.measure == "amount":
            measured = ctx.amount
        elif self.measure == "quantity":
            measured = ctx.quantity
        else:
            measured = Decimal(len(ctx.lines))
        return compare(measured, self.op, self.value)
