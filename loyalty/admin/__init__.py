"""Back-office pages for the loyalty core. Each role sees what its permissions allow
(``loyalty.roles``)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from . import members, program, users  # noqa: F401  (registrations)

admin.site.site_header = _("Loyalty back office")
admin.site.site_title = _("Loyalty back office")
admin.site.index_title = _("Program management")
