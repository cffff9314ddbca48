"""The offer catalogs: events, filters and actions (one registry each)."""

from offers.catalog import member_filters, more_actions  # noqa: F401  (register their entries)
from offers.catalog.actions import OfferAction, offer_actions  # noqa: F401
from offers.catalog.base import CatalogEntry, Registry, entry_validate  # noqa: F401
from offers.catalog.events import PURCHASE_CALCULATION, offer_events  # noqa: F401
from offers.catalog.filters import OfferFilter, offer_filters  # noqa: F401
