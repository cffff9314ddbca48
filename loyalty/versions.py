"""Versions of what each process keeps compiled or cached (the active offers, products by
SKU): a counter in a one-row table, bumped in the transaction that changes what it
versions. Each process reads it at most once per ``seconds``; the process that bumped it
reads it again at once, and again when that transaction commits."""

from django.apps import apps
from django.db import transaction
from django.db.models import F

from loyalty import refcache


class Version:
    def __init__(self, model_label: str, *, seconds: float = 1.0) -> None:
        self.model_label = model_label  # a model with a ``version`` counter, one row (pk 1)
        self.seconds = seconds
        self.key = ("version", model_label)

    def current(self) -> int:
        return refcache.cached(self.key, self._read, ttl=self.seconds)

    def _read(self) -> int:
        model = apps.get_model(self.model_label)
        version = model.objects.filter(pk=1).values_list("version", flat=True).first()
        if version is None:  # the row a migration creates is gone (a flushed test database)
            model.objects.get_or_create(pk=1)
            return 0
        return version

    def forget(self) -> None:
        """This process reads the version again on its next use."""
        refcache.forget(self.key)

    def bump(self) -> None:
        """A new version: every process drops what it keeps under the old one (this one
        at once, the others within ``seconds``)."""
        model = apps.get_model(self.model_label)
        if not model.objects.filter(pk=1).update(version=F("version") + 1):
            model.objects.get_or_create(pk=1, defaults={"version": 1})
        self.forget()
        transaction.on_commit(self.forget)
