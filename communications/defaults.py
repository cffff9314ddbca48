"""Dictionary entries the migrations seed in English. Marked here so the catalogs carry
their translations: ``__str__`` of these models shows a seeded entry in the viewer's
language, and an entry the program wrote itself as it was written."""

from django.utils.translation import gettext_noop

UNSUBSCRIBE_REASONS = [
    gettext_noop("I receive too many messages"),
    gettext_noop("The messages are not interesting to me"),
    gettext_noop("I did not subscribe"),
    gettext_noop("I no longer use the program"),
    gettext_noop("Other"),
]

FEEDBACK_TOPICS = [
    gettext_noop("Bonuses and balance"),
    gettext_noop("Purchases"),
    gettext_noop("My card"),
    gettext_noop("Personal data"),
    gettext_noop("Suggestion"),
    gettext_noop("Other"),
]
