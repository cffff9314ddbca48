from offers.admin.offers import CounterAdmin, OfferAdmin  # noqa: F401
from offers.admin.personal import PersonalProductProgramAdmin  # noqa: F401
