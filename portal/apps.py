from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Personal account")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from loyalty.files import files_follow_rows
        from portal.models import TargetedContent

        files_follow_rows(TargetedContent, "image")
