"""Pricing reads products by SKU from a per-process cache kept under the catalog's
version: no catalog read while nothing changed, and a saved product or group seen at
once in the process that saved it and within a second in the others."""

from decimal import Decimal

import pytest
from django.db.models import F

from loyalty.models import CatalogState, Product
from loyalty.services.catalog import CATALOG_VERSION
from offers.context import LineIn, purchase_context
from tests import factories

pytestmark = pytest.mark.django_db


def priced(pos, sku):
    ctx = purchase_context(
        event="discount_calculated",
        point_of_sale=pos,
        lines=[LineIn(sku=sku, quantity=Decimal(1), price=Decimal(10))],
        member=None,
        needs=frozenset(),
    )
    (line,) = ctx.lines
    return line.name, line.group_path


def a_second_later():
    """What another process sees once its copy of the version is a second old."""
    CATALOG_VERSION.forget()


def test_products_stay_cached_until_the_catalog_changes(django_assert_num_queries):
    # given a product of the coffee group, priced once (the catalog read)
    pos = factories.PointOfSaleFactory()
    coffee, tea = factories.ProductGroupFactory(code="coffee"), factories.ProductGroupFactory(code="tea")
    product = factories.ProductFactory(sku="C-1", name="Arabica", group=coffee)
    assert priced(pos, "C-1") == ("Arabica", coffee.path)

    # when it is priced again, also after its version has to be read again: no catalog read
    with django_assert_num_queries(0):
        assert priced(pos, "C-1") == ("Arabica", coffee.path)
    a_second_later()
    with django_assert_num_queries(1):  # the version only
        assert priced(pos, "C-1") == ("Arabica", coffee.path)

    # when the product moves to another group in this process, the next price sees it
    product.group = tea
    product.save()
    assert priced(pos, "C-1") == ("Arabica", tea.path)

    # when another process changes it (here: around the models, then its version bump),
    # this one sees it once its version is a second old, not before
    Product.objects.filter(pk=product.pk).update(name="Robusta")
    CatalogState.objects.filter(pk=1).update(version=F("version") + 1)
    assert priced(pos, "C-1") == ("Arabica", tea.path)
    a_second_later()
    assert priced(pos, "C-1") == ("Robusta", tea.path)


def test_a_deleted_or_renamed_group_changes_the_catalog_version():
    from loyalty.services.catalog import catalog_version

    group = factories.ProductGroupFactory(code="bakery")
    before = catalog_version()
    group.name = "Bread"
    group.save()
    renamed = catalog_version()
    group.delete()
    assert before < renamed < catalog_version()
