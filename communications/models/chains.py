"""Chains (communication campaigns): a turn-on event starts a member on a sequence of
steps (waits, conditions, messages, bonuses, audience changes, branches); a turn-off
event ends it for that member.

Where each member stands is a ``ChainEntry`` row with its current step and the time it is
due, a durable timer in the database: a periodic task advances the due entries set-wise
(``communications.services.chains``), so a restart loses nothing and no task is queued
per member.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ChainStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    ACTIVE = "active", _("active")
    PAUSED = "paused", _("paused")
    STOPPED = "stopped", _("stopped")


class Reentry(models.TextChoices):
    ONCE = "once", _("once per member")
    AFTER_EXIT = "after_exit", _("again on a later occurrence, once the previous pass has ended")


class Chain(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    campaign = models.ForeignKey(
        "communications.Campaign",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="chains",
        verbose_name=_("campaign"),
    )
    category = models.ForeignKey(
        "communications.MailingCategory",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="chains",
        verbose_name=_("mailing category"),
    )
    turn_on = models.CharField(_("turn-on event"), max_length=64)
    turn_off = models.JSONField(
        _("turn-off events"),
        default=list,
        blank=True,
        help_text=_("Any of them ends the chain for the member."),
    )
    reentry = models.CharField(_("re-entry"), max_length=16, choices=Reentry.choices, default=Reentry.ONCE)
    reentry_days = models.PositiveIntegerField(
        _("not earlier than, days"),
        null=True,
        blank=True,
        help_text=_("With re-entry: the least number of days between two entries."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=ChainStatus.choices, default=ChainStatus.DRAFT
    )
    recipe = models.CharField(_("recipe"), max_length=64, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("chain")
        verbose_name_plural = _("chains")
        indexes = [models.Index(fields=["status", "turn_on"], name="chain_turn_on")]

    def __str__(self) -> str:
        return self.name


class ChainStep(models.Model):
    """One step: ``kind`` is a key of the chain-step registry, ``params`` its validated
    parameters."""

    chain = models.ForeignKey(Chain, models.CASCADE, related_name="steps", verbose_name=_("chain"))
    order = models.PositiveSmallIntegerField(_("order"))
    kind = models.CharField(_("step"), max_length=32)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    name = models.CharField(_("name"), max_length=200, blank=True, default="")

    class Meta:
        ordering = ["chain", "order"]
        verbose_name = _("chain step")
        verbose_name_plural = _("chain steps")
        constraints = [models.UniqueConstraint(fields=["chain", "order"], name="chain_step_order_unique")]

    def __str__(self) -> str:
        return self.name or f"{self.order}. {self.kind}"


class EntryState(models.TextChoices):
    ACTIVE = "active", _("in the chain")
    FINISHED = "finished", _("finished")
    EXITED = "exited", _("left")


class ChainEntry(models.Model):
    """A member's pass through a chain, started by one occurrence of the turn-on event."""

    chain = models.ForeignKey(
        Chain, models.CASCADE, related_name="entries", db_index=False, verbose_name=_("chain")
    )
    # No index of its own: chain_entry_member leads with the member.
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="chain_entries",
        db_index=False,
        verbose_name=_("member"),
    )
    occurrence = models.BigIntegerField(_("turn-on event"), help_text=_("The journal id of the event."))
    step = models.PositiveSmallIntegerField(_("current step"), default=0)
    state = models.CharField(_("state"), max_length=16, choices=EntryState.choices, default=EntryState.ACTIVE)
    due_at = models.DateTimeField(_("due at"), default=timezone.now)
    anchor_at = models.DateTimeField(
        _("counting from"), default=timezone.now, help_text=_("Where the current wait counts from.")
    )
    entered_at = models.DateTimeField(_("entered at"), default=timezone.now)
    step_at = models.DateTimeField(_("reached the step at"), default=timezone.now)
    left_at = models.DateTimeField(_("left at"), null=True, blank=True)
    exit_reason = models.CharField(_("why it ended"), max_length=255, blank=True, default="")
    payload = models.JSONField(_("event values"), default=dict, blank=True)

    class Meta:
        verbose_name = _("chain member")
        verbose_name_plural = _("chain members")
        constraints = [
            models.UniqueConstraint(fields=["chain", "member", "occurrence"], name="chain_entry_occurrence"),
            models.UniqueConstraint(
                fields=["chain", "member"], condition=Q(state="active"), name="chain_entry_one_active"
            ),
        ]
        indexes = [
            models.Index(fields=["due_at"], name="chain_entry_due", condition=Q(state="active")),
            models.Index(fields=["member", "state"], name="chain_entry_member"),
        ]

    def __str__(self) -> str:
        return f"{self.chain_id}/{self.member_id} @ {self.step}"
