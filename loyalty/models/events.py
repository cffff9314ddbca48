from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class MemberEvent(models.Model):
    """One entry of the member event journal. ``event_type`` is a key of the catalog in
    ``loyalty.events``; record through ``loyalty.services.events.event_record`` so the
    registered handlers run after commit."""

    event_type = models.CharField(_("event"), max_length=64)
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("member"),
        db_index=False,  # event_member_type_time_idx leads with the member
    )
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    point_of_sale = models.ForeignKey(
        "loyalty.PointOfSale",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("point of sale"),
    )
    channel = models.CharField(_("channel"), max_length=32, blank=True)
    payload = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("member event")
        verbose_name_plural = _("member events")
        indexes = [
            # A member's events of a type (in a period) from the index alone: how a segment
            # condition on an event probes each candidate member, and how chains and the
            # personal account ask. The member's whole history sorts that member's rows.
            models.Index(fields=["member", "event_type", "occurred_at"], name="event_member_type_time_idx"),
            # With the member: "had event X (in a period)" is read from the index alone.
            models.Index(fields=["event_type", "occurred_at", "member"], name="event_type_time_member_idx"),
        ]

    def __str__(self) -> str:
        from loyalty.events import event_types

        return str(event_types.label(self.event_type))
