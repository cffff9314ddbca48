"""Offer actions beyond the receipt (registered into ``offer_actions``)."""
