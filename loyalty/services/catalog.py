"""The catalog's version: products by SKU are cached in each process until a product or
a product group changes (``offers.context``), instead of for a fixed minute after which
every till request with an expired SKU reads the catalog again."""

from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save

from loyalty import refcache
from loyalty.models import CatalogState, Product, ProductGroup

# How long a process trusts the catalog's version it read: a change made in another
# process reaches this one within this time (the process that made it knows at once).
VERSION_SECONDS = 1.0


def catalog_version() -> int:
    return refcache.cached(("catalog_version",), _version_read, ttl=VERSION_SECONDS)


def _version_read() -> int:
    version = CatalogState.objects.filter(pk=1).values_list("version", flat=True).first()
    if version is None:  # the row a migration creates is gone (a flushed test database)
        CatalogState.objects.get_or_create(pk=1)
        return 0
    return version


def _forget() -> None:
    refcache.forget(("catalog_version",))


def catalog_changed() -> None:
    """A new catalog version: every process drops its cached products (this one at once,
    the others within ``VERSION_SECONDS``). Saving or deleting a product or a group
    calls it; a bulk change that bypasses the models' signals must call it too."""
    if not CatalogState.objects.filter(pk=1).update(version=F("version") + 1):
        CatalogState.objects.get_or_create(pk=1, defaults={"version": 1})
    _forget()
    transaction.on_commit(_forget)


def _on_change(sender, **kwargs) -> None:
    if kwargs.get("raw"):  # loading fixtures
        return
    catalog_changed()


def catalog_signals_connect() -> None:
    for model in (Product, ProductGroup):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"catalog-version:{model._meta.label}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"catalog-version:{model._meta.label}")
