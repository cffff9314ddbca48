"""Offer filters on the member and the moment (registered into ``offer_filters``)."""
