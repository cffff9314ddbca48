"""Back-office pages of communications, one module per area."""

from communications.admin import chains, delivery, feedback, mailings, regular, templates  # noqa: F401
