"""Every field of the program's models has a translatable label: the back office shows
it as a column, filter or form label, and without one Django shows the English field
name to a Russian reader."""

from django.apps import apps
from django.utils import translation
from django.utils.functional import Promise

APPS = ("loyalty", "communications", "offers", "segments", "pos", "portal", "gateways")


def test_every_field_has_a_translatable_label():
    bare = [
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        if model._meta.app_label in APPS
        for field in model._meta.get_fields()
        if not field.auto_created
        and (field.concrete or field.many_to_many)
        and not isinstance(field.verbose_name, Promise)
    ]
    assert bare == []


def test_foreign_key_labels_read_in_russian():
    from loyalty.models import LedgerEntry, PointOfSale

    with translation.override("ru"):
        assert str(PointOfSale._meta.get_field("partner").verbose_name) == "партнёр"
        assert str(LedgerEntry._meta.get_field("lot").verbose_name) == "партия"
