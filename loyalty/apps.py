from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = _("Loyalty program")

    def ready(self) -> None:
        # The event catalog registers its entries on import.
        from . import events  # noqa: F401
        from .services.catalog import catalog_signals_connect

        catalog_signals_connect()
