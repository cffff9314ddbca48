from offers.admin.offers import CounterAdmin, OfferAdmin  # noqa: F401
