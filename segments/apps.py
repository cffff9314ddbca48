from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = _("Segments and audiences")

    def ready(self) -> None:
        from loyalty.events import event_types

        from . import metrics  # noqa: F401  (registers the metric catalog)

        if "rfm_segment_changed" not in event_types:
            event_types.add("rfm_segment_changed", _("Moved to another RFM segment"), "program")

        from loyalty.events import event_handlers

        from .stats import on_purchase_completed, on_purchase_refunded

        event_handlers.register("purchase_completed", in_transaction=True)(on_purchase_completed)
        event_handlers.register("purchase_refunded")(on_purchase_refunded)
