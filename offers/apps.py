from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OffersConfig(AppConfig):
    name = "offers"
    verbose_name = _("Offers")

    def ready(self):
        from loyalty.events import event_handlers
        from offers.services import event_offers_run

        event_handlers.register("*")(event_offers_run)

        from loyalty.admin.panels import register_member_panel
        from offers.selectors import member_counters_panel

        register_member_panel(member_counters_panel)
