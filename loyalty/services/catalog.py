"""The catalog's version: products by SKU are cached in each process until a product or
a product group changes (``offers.context``), instead of for a fixed minute after which
every till request with an expired SKU reads the catalog again."""

from django.db.models.signals import post_delete, post_save

from loyalty.models import Product, ProductGroup
from loyalty.versions import Version

# A change made in another process reaches this one within a second.
CATALOG_VERSION = Version("loyalty.CatalogState", seconds=1.0)


def catalog_version() -> int:
    return CATALOG_VERSION.current()


def catalog_changed() -> None:
    """Every process drops its cached products. Saving or deleting a product or a group
    calls it; a bulk change that bypasses the models' signals must call it too."""
    CATALOG_VERSION.bump()


def _on_change(sender, **kwargs) -> None:
    if kwargs.get("raw"):  # loading fixtures
        return
    catalog_changed()


def catalog_signals_connect() -> None:
    for model in (Product, ProductGroup):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"catalog-version:{model._meta.label}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"catalog-version:{model._meta.label}")
