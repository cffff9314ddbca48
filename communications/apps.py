from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommunicationsConfig(AppConfig):
    name = "communications"
    verbose_name = _("Communications")

    def ready(self):
        # Chains register their event handler and step kinds on import.
        import communications.services.chains  # noqa: F401
        import communications.services.regular  # noqa: F401
        from communications import selectors
        from communications.models import FeedbackMessage
        from communications.services.delivery import status_updates_apply
        from gateways.hooks import register_status_sink
        from loyalty.admin.panels import register_member_panel
        from loyalty.files import files_follow_rows
        from segments.hooks import register_message_source

        files_follow_rows(FeedbackMessage, "attachment")
        register_member_panel(selectors.member_subscriptions_panel)
        register_member_panel(selectors.member_messages_panel)
        register_status_sink(status_updates_apply)
        register_message_source(selectors.message_rows)
