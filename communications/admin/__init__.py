"""Back-office pages of communications, one module per area."""

from communications.admin import chains, delivery, mailings, regular, templates  # noqa: F401
