from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommunicationsConfig(AppConfig):
    name = "communications"
    verbose_name = _("Communications")

    def ready(self):
        from communications import selectors
        from communications.services.delivery import status_updates_apply
        from gateways.hooks import register_status_sink
        from segments.hooks import register_message_source

        register_status_sink(status_updates_apply)
        register_message_source(selectors.message_rows)
