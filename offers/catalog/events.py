"""Events an offer can react to: the member event catalog (``loyalty.events``), each
marked as purchase flow (evaluated on a receipt, with its lines) or not."""

from loyalty.events import PURCHASE, event_types

# Evaluated together when a till asks to calculate a receipt, in priority order.
PURCHASE_CALCULATION = ("discount_calculated", "bonus_calculated", "bonus_paid", "balance_requested")
# Evaluated on the confirmed receipt (its lines are the context).
RECEIPT_EVENTS = ("purchase_completed", "friend_purchase", "purchase_refunded")


class OfferEvents:
    def __iter__(self):
        return iter(event_types)

    def __contains__(self, key: str) -> bool:
        return key in event_types

    def choices(self):
        return [(t.key, t.label) for t in event_types]

    def has_receipt(self, key: str) -> bool:
        return (
            key in PURCHASE_CALCULATION
            or key in RECEIPT_EVENTS
            or (key in event_types and event_types.get(key).group == PURCHASE and key != "card_issued")
        )


offer_events = OfferEvents()
