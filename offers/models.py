"""Offers, their versions, counters, and what offers did.

An offer reacts to one event type; its ``rules`` are a list of ``{"filters": [...],
"actions": [...]}``, each entry ``{"key", "params"}`` from the catalogs
(``offers.catalog``), validated by ``offers.services.offer_save``. Only a draft is edited
freely; changing an active offer keeps the previous rules as an ``OfferVersion``.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class OfferStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    ACTIVE = "active", _("active")
    PAUSED = "paused", _("paused")
    FINISHED = "finished", _("finished")
    ARCHIVED = "archived", _("archived")


class Offer(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    event_type = models.CharField(_("event"), max_length=48)
    status = models.CharField(
        _("status"), max_length=16, choices=OfferStatus.choices, default=OfferStatus.DRAFT
    )
    starts_at = models.DateTimeField(_("starts"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    priority = models.PositiveIntegerField(
        _("priority"), default=100, help_text=_("Lower numbers run first.")
    )
    stop_further = models.BooleanField(
        _("stop further offers"),
        default=False,
        help_text=_("When this offer applies, offers after it do not run."),
    )
    audience = models.ForeignKey(
        "segments.TargetAudience",
        models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("target audience"),
        help_text=_("Empty: every member (and anonymous receipts)."),
    )
    rules = models.JSONField(_("rules"), default=list, blank=True)
    version = models.PositiveIntegerField(_("version"), default=1)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        verbose_name=_("updated by"),
    )

    class Meta:
        verbose_name = _("offer")
        verbose_name_plural = _("offers")
        ordering = ["priority", "pk"]
        indexes = [models.Index(fields=["status", "event_type"], name="offer_active_event")]

    def __str__(self) -> str:
        return self.name


class OfferVersion(models.Model):
    offer = models.ForeignKey(Offer, models.CASCADE, related_name="versions", verbose_name=_("offer"))
    number = models.PositiveIntegerField(_("version"))
    rules = models.JSONField(_("rules"))
    options = models.JSONField(_("settings"), default=dict)
    created_at = models.DateTimeField(_("replaced at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, verbose_name=_("created by")
    )

    class Meta:
        verbose_name = _("offer version")
        verbose_name_plural = _("offer versions")
        ordering = ["offer", "-number"]
        constraints = [models.UniqueConstraint(fields=["offer", "number"], name="offer_version_unique")]

    def __str__(self) -> str:
        return f"{self.offer} v{self.number}"


class OffersState(models.Model):
    """One row: bumped whenever an active offer changes, so every process recompiles."""

    version = models.PositiveBigIntegerField(default=0, verbose_name=_("version"))

    def __str__(self) -> str:
        return f"offers v{self.version}"


class CounterPeriod(models.TextChoices):
    ALL = "all", _("all time")
    DAY = "day", _("day")
    WEEK = "week", _("week")
    MONTH = "month", _("month")
    OFFER = "offer", _("the offer's period")


class Counter(models.Model):
    key = models.SlugField(_("key"), max_length=48, unique=True)
    name = models.CharField(_("name"), max_length=100)
    period = models.CharField(
        _("period"), max_length=8, choices=CounterPeriod.choices, default=CounterPeriod.ALL
    )

    class Meta:
        verbose_name = _("counter")
        verbose_name_plural = _("counters")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CounterValue(models.Model):
    # No index of its own: counter_value_unique leads with the member.
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="counter_values",
        db_index=False,
        verbose_name=_("member"),
    )
    counter = models.ForeignKey(Counter, models.CASCADE, related_name="values", verbose_name=_("counter"))
    period_start = models.DateField(_("period from"))
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2, default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("counter value")
        verbose_name_plural = _("counter values")
        constraints = [
            models.UniqueConstraint(fields=["member", "counter", "period_start"], name="counter_value_unique")
        ]

    def __str__(self) -> str:
        return f"{self.counter}: {self.value}"


class PersonalProductProgram(models.Model):
    """The personal-products mechanic: the list a member picks from, how many picks, and
    the period the picks hold. An offer with the personal-products filter rewards them."""

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    products = models.ManyToManyField("loyalty.Product", related_name="+", verbose_name=_("products offered"))
    max_picks = models.PositiveSmallIntegerField(
        _("products a member picks"), default=3, help_text=_("How many products a member may choose.")
    )
    starts_at = models.DateTimeField(_("period starts"))
    ends_at = models.DateTimeField(_("period ends"))
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "pk"]
        verbose_name = _("personal products list")
        verbose_name_plural = _("personal products lists")

    def __str__(self) -> str:
        return self.name


class PersonalProduct(models.Model):
    """A product the member picked for the personal-products offer of a period."""

    # No index of its own: personal_product_member leads with the member.
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="personal_products",
        db_index=False,
        verbose_name=_("member"),
    )
    program = models.ForeignKey(
        PersonalProductProgram,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="picks",
        verbose_name=_("personal products list"),
    )
    product = models.ForeignKey("loyalty.Product", models.CASCADE, verbose_name=_("product"))
    valid_from = models.DateTimeField(_("valid from"), default=timezone.now)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)

    class Meta:
        verbose_name = _("personal product")
        verbose_name_plural = _("personal products")
        indexes = [models.Index(fields=["member", "valid_from"], name="personal_product_member")]

    def __str__(self) -> str:
        return str(self.product)


class OfferApplication(models.Model):
    """What an offer did on one confirmed receipt or processed event.

    A receipt writes one row per offer that applied (dozens with hundreds of active
    offers), so the table carries no database foreign keys (PostgreSQL checks each with
    a trigger call per row) and only the indexes its readers use: once per offer and
    event, and by event. The offer list's figures are rolled up by id
    (``offers.reach``), and an offer that was ever active is kept for the receipts it
    priced (only a draft is deleted: ``offers.services.offer_delete``), so no index by
    offer is kept up on the till's path: each receipt's rows would land on dozens of its
    pages."""

    offer = models.ForeignKey(
        Offer,
        models.DO_NOTHING,  # a draft, the only offer deleted, never applied
        related_name="applications",
        db_constraint=False,
        db_index=False,
        verbose_name=_("offer"),
    )
    member = models.ForeignKey(
        "loyalty.Member",
        models.SET_NULL,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,
        verbose_name=_("member"),
    )
    receipt = models.ForeignKey(
        "loyalty.Receipt",
        models.CASCADE,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,
        verbose_name=_("receipt"),
    )
    event = models.ForeignKey(
        "loyalty.MemberEvent",
        models.SET_NULL,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,
        verbose_name=_("event"),
    )
    discount = models.DecimalField(_("discount"), max_digits=14, decimal_places=2, default=0)
    bonus = models.DecimalField(_("bonuses"), max_digits=14, decimal_places=2, default=0)
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("offer application")
        verbose_name_plural = _("offer applications")
        indexes = [
            models.Index(
                fields=["event"], name="offer_application_event", condition=models.Q(event__isnull=False)
            ),
        ]
        constraints = [
            # An event's offers run once: a concurrent second run fails and rolls back.
            models.UniqueConstraint(
                fields=["offer", "event"],
                condition=models.Q(event__isnull=False),
                name="offer_application_once_per_event",
            )
        ]

    def __str__(self) -> str:
        return f"{self.offer} @ {self.at:%Y-%m-%d}"


class OfferReach(models.Model):
    """How many receipts and members an offer has touched and what it gave, rolled up
    set-wise from ``OfferApplication`` every few minutes (``offers.reach``), so the offer
    list reads one row per offer instead of counting every application it ever made."""

    offer = models.OneToOneField(
        Offer, models.CASCADE, primary_key=True, related_name="reach", verbose_name=_("offer")
    )
    receipts = models.BigIntegerField(_("receipts"), default=0)
    members = models.BigIntegerField(_("members"), default=0)
    discount = models.DecimalField(_("discount given"), max_digits=18, decimal_places=2, default=0)
    bonus = models.DecimalField(_("bonuses given"), max_digits=18, decimal_places=2, default=0)

    class Meta:
        verbose_name = _("offer reach")
        verbose_name_plural = _("offer reach")

    def __str__(self) -> str:
        return f"{self.offer_id}: {self.receipts} / {self.members}"


class OfferMember(models.Model):
    """A member an offer has touched, once per pair: what the reach's member count
    counts. ``run`` is the roll-up that found the pair first."""

    offer = models.ForeignKey(Offer, models.CASCADE, db_index=False, verbose_name=_("offer"))
    member = models.ForeignKey(
        "loyalty.Member", models.CASCADE, db_constraint=False, db_index=False, verbose_name=_("member")
    )
    run = models.BigIntegerField(_("roll-up"))

    class Meta:
        verbose_name = _("member reached by an offer")
        verbose_name_plural = _("members reached by offers")
        constraints = [models.UniqueConstraint(fields=["offer", "member"], name="offer_member_once")]
        indexes = [models.Index(fields=["run", "offer"], name="offer_member_run")]

    def __str__(self) -> str:
        return f"{self.offer_id}: {self.member_id}"


class ReachClock(models.Model):
    """One row: the roll-up's place in ``OfferApplication`` (every application with an id
    up to ``counted_up_to`` is counted) and how many roll-ups ran."""

    counted_up_to = models.BigIntegerField(_("counted up to"), default=0)
    runs = models.BigIntegerField(_("roll-ups"), default=0)
    refreshed_at = models.DateTimeField(_("refreshed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("offer reach clock")
        verbose_name_plural = _("offer reach clock")

    def __str__(self) -> str:
        return f"up to {self.counted_up_to}"
