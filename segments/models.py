"""Segments (saved rules over member data), their snapshots and count history; RFM scores
and their history; target audiences (static member lists); the global control group.

The tables written a million rows at a time (snapshots, audience members, purchase
figures, RFM scores and moves) have no database foreign keys (``db_constraint=False``):
PostgreSQL checks a foreign key with one trigger call per inserted row, which costs
more than the insert itself. Django's ``on_delete`` still cascades when a member, a
segment or an audience is deleted."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Segment(models.Model):
    """A saved rule tree (see ``segments.rules``); counted live or materialised into a
    snapshot (``SegmentMember``) by ``segments.services.segment_materialise``."""

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    rule = models.JSONField(_("rule"), default=dict)
    auto_refresh = models.BooleanField(
        _("refresh the snapshot on schedule"), default=True, help_text=_("Hourly, by the scheduler.")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # The current snapshot: its generation number, size and when it was computed.
    generation = models.PositiveIntegerField(default=0, editable=False, verbose_name=_("generation"))
    member_count = models.PositiveIntegerField(_("members"), null=True, blank=True, editable=False)
    refreshed_at = models.DateTimeField(_("refreshed at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from segments.rules import RuleError, rule_validate

        try:
            self.rule = rule_validate(self.rule)
        except RuleError as exc:
            raise ValidationError({"rule": str(exc)}) from exc


class SegmentMember(models.Model):
    """One member of a segment's snapshot of a given generation."""

    segment = models.ForeignKey(
        Segment,
        models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("segment"),
    )
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("member"),
    )
    generation = models.PositiveIntegerField(verbose_name=_("generation"))
    computed_at = models.DateTimeField(verbose_name=_("computed at"))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "generation", "member"], name="segment_member_unique")
        ]
        indexes = [models.Index(fields=["member"], name="segment_member_member_idx")]

    def __str__(self) -> str:
        return f"{self.segment_id}#{self.generation}/{self.member_id}"


class SegmentCount(models.Model):
    """History of a segment's size: one row per materialisation."""

    segment = models.ForeignKey(Segment, models.CASCADE, related_name="counts", verbose_name=_("segment"))
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)
    members = models.PositiveIntegerField(_("members"))
    added = models.PositiveIntegerField(_("added"))
    removed = models.PositiveIntegerField(_("removed"))
    seconds = models.FloatField(_("seconds"), default=0)

    class Meta:
        ordering = ["-computed_at"]
        verbose_name = _("segment count")
        verbose_name_plural = _("segment counts")

    def __str__(self) -> str:
        return f"{self.segment_id}: {self.members}"


class RFMSettings(models.Model):
    """How recency, frequency and monetary value are scored (one row)."""

    class Method(models.TextChoices):
        QUANTILES = "quantiles", _("Quantiles (five equal groups)")
        THRESHOLDS = "thresholds", _("Thresholds set by hand")

    window_days = models.PositiveIntegerField(
        _("window, days"), default=365, validators=[MinValueValidator(7), MaxValueValidator(3650)]
    )
    method = models.CharField(_("scoring"), max_length=16, choices=Method.choices, default=Method.QUANTILES)
    # Four ascending cut-offs each: score 1 below the first ... score 5 from the fourth on.
    # Recency is in days since the last purchase, so fewer days score higher.
    recency_days = models.JSONField(_("recency cut-offs, days"), default=list, blank=True)
    frequency = models.JSONField(_("frequency cut-offs, receipts"), default=list, blank=True)
    monetary = models.JSONField(_("monetary cut-offs, amount"), default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("RFM settings")
        verbose_name_plural = _("RFM settings")

    def __str__(self) -> str:
        return str(_("RFM settings"))

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.method == self.Method.THRESHOLDS:
            errors = {}
            for name in ("recency_days", "frequency", "monetary"):
                value = getattr(self, name)
                if not (
                    isinstance(value, list)
                    and len(value) == 4
                    and all(isinstance(v, int | float) for v in value)
                    and value == sorted(value)
                ):
                    errors[name] = _("Four ascending numbers, e.g. [30, 90, 180, 270].")
            if errors:
                raise ValidationError(errors)

    @classmethod
    def current(cls) -> "RFMSettings":
        obj = cls.objects.order_by("pk").first()
        return obj or cls.objects.create()


class RFMSegment(models.TextChoices):
    CHAMPIONS = "champions", _("Champions")
    LOYAL = "loyal", _("Loyal")
    POTENTIAL_LOYALISTS = "potential_loyalists", _("Potential loyalists")
    NEW = "new", _("New")
    PROMISING = "promising", _("Promising")
    NEED_ATTENTION = "need_attention", _("Need attention")
    AT_RISK = "at_risk", _("At risk")
    CANT_LOSE = "cant_lose", _("Can't lose")
    HIBERNATING = "hibernating", _("Hibernating")
    LOST = "lost", _("Lost")


class MemberRFM(models.Model):
    """A member's current scores (members without purchases in the window have none)."""

    member = models.OneToOneField(
        "loyalty.Member",
        models.CASCADE,
        primary_key=True,
        related_name="rfm",
        db_constraint=False,
        verbose_name=_("member"),
    )
    # The last purchase rather than "days since": unchanged rows stay unchanged overnight.
    last_purchase_at = models.DateTimeField(verbose_name=_("last purchase"))
    frequency = models.PositiveIntegerField(verbose_name=_("frequency"))
    monetary = models.DecimalField(max_digits=14, decimal_places=2, verbose_name=_("monetary"))
    r = models.PositiveSmallIntegerField(verbose_name=_("R"))
    f = models.PositiveSmallIntegerField(verbose_name=_("F"))
    m = models.PositiveSmallIntegerField(verbose_name=_("M"))
    segment = models.CharField(max_length=24, choices=RFMSegment.choices, verbose_name=_("segment"))
    computed_at = models.DateTimeField(verbose_name=_("computed at"))

    class Meta:
        # With the member: "in these RFM segments" is read from the index alone.
        indexes = [models.Index(fields=["segment", "member"], name="rfm_segment_member_idx")]
        verbose_name = _("member RFM")
        verbose_name_plural = _("member RFM")

    def __str__(self) -> str:
        return f"R{self.r}F{self.f}M{self.m} {self.get_segment_display()}"


STATS_WINDOWS = (30, 90, 180, 365)


class MemberPurchaseStats(models.Model):
    """Per-member purchase figures for all time and rolling windows of 30, 90, 180 and
    365 days, so segment counts and RFM read one row per member instead of aggregating
    receipts. Kept current by ``segments.stats``: each confirmed purchase adds to it
    (event handler), a nightly run ages out what left each window, a rebuild recomputes
    everything from the receipts."""

    member = models.OneToOneField(
        "loyalty.Member",
        models.CASCADE,
        primary_key=True,
        related_name="purchase_stats",
        db_constraint=False,
        verbose_name=_("member"),
    )
    first_purchase_at = models.DateTimeField(null=True, verbose_name=_("first purchase"))
    last_purchase_at = models.DateTimeField(null=True, verbose_name=_("last purchase"))
    count_all = models.PositiveIntegerField(default=0, verbose_name=_("purchases, all time"))
    total_all = models.DecimalField(
        max_digits=16, decimal_places=2, default=0, verbose_name=_("amount, all time")
    )
    count_30 = models.IntegerField(default=0, verbose_name=_("purchases, 30 days"))
    total_30 = models.DecimalField(
        max_digits=16, decimal_places=2, default=0, verbose_name=_("amount, 30 days")
    )
    count_90 = models.IntegerField(default=0, verbose_name=_("purchases, 90 days"))
    total_90 = models.DecimalField(
        max_digits=16, decimal_places=2, default=0, verbose_name=_("amount, 90 days")
    )
    count_180 = models.IntegerField(default=0, verbose_name=_("purchases, 180 days"))
    total_180 = models.DecimalField(
        max_digits=16, decimal_places=2, default=0, verbose_name=_("amount, 180 days")
    )
    count_365 = models.IntegerField(default=0, verbose_name=_("purchases, 365 days"))
    total_365 = models.DecimalField(
        max_digits=16, decimal_places=2, default=0, verbose_name=_("amount, 365 days")
    )

    class Meta:
        verbose_name = _("member purchase figures")
        verbose_name_plural = _("member purchase figures")

    def __str__(self) -> str:
        return f"{self.member_id}: {self.count_all}"


class MemberGroupPurchase(models.Model):
    """When a member bought from a product group: the first and last purchase and how
    many receipts, per (member, the product's own group). "Bought from group G in the
    last N days" is then a range read of one index (``group`` in G's subtree, last
    purchase since the start) instead of a join of receipts and their lines. Kept by
    ``segments.stats`` with the purchase figures: a confirmed purchase adds its groups, a
    full refund recomputes the member's rows, a rebuild recomputes every row."""

    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("member"),
    )
    group = models.ForeignKey(
        "loyalty.ProductGroup",
        models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("product group"),
    )
    first_purchase_at = models.DateTimeField(verbose_name=_("first purchase"))
    last_purchase_at = models.DateTimeField(verbose_name=_("last purchase"))
    receipts = models.PositiveIntegerField(default=0, verbose_name=_("receipts"))

    class Meta:
        verbose_name = _("member purchases by product group")
        verbose_name_plural = _("member purchases by product group")
        constraints = [
            models.UniqueConstraint(fields=["member", "group"], name="member_group_purchase_unique")
        ]
        indexes = [
            models.Index(fields=["group", "last_purchase_at", "member"], name="member_group_purchase_last")
        ]

    def __str__(self) -> str:
        return f"{self.member_id}/{self.group_id}: {self.receipts}"


class StatsClock(models.Model):
    """When the purchase figures' windows were last aged (one row)."""

    aged_at = models.DateTimeField(verbose_name=_("aged at"))

    def __str__(self) -> str:
        return f"{self.aged_at:%Y-%m-%d %H:%M}"


class RFMChange(models.Model):
    """A member moved between RFM segments (also recorded as a member event)."""

    # No index of its own: rfm_change_member_idx leads with the member.
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
        verbose_name=_("member"),
    )
    segment_from = models.CharField(
        max_length=24, choices=RFMSegment.choices, blank=True, verbose_name=_("from")
    )
    segment_to = models.CharField(max_length=24, choices=RFMSegment.choices, blank=True, verbose_name=_("to"))
    changed_at = models.DateTimeField(verbose_name=_("changed at"))

    class Meta:
        ordering = ["-changed_at"]
        indexes = [models.Index(fields=["member", "changed_at"], name="rfm_change_member_idx")]

    def __str__(self) -> str:
        return f"{self.segment_from} → {self.segment_to}"


class RFMMonthly(models.Model):
    """Size of each named segment at the last recompute of a month (for trends)."""

    month = models.DateField(verbose_name=_("month"))
    segment = models.CharField(max_length=24, choices=RFMSegment.choices, verbose_name=_("segment"))
    members = models.PositiveIntegerField(verbose_name=_("members"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["month", "segment"], name="rfm_monthly_unique")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.segment}: {self.members}"


class TargetAudience(models.Model):
    """A static list of members: built by hand, imported, or uploaded from a segment."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    member_count = models.PositiveIntegerField(_("members"), default=0, editable=False)
    members = models.ManyToManyField(
        "loyalty.Member",
        through="AudienceMember",
        related_name="audiences",
        blank=True,
        verbose_name=_("members"),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("target audience")
        verbose_name_plural = _("target audiences")

    def __str__(self) -> str:
        return self.name


class AudienceMember(models.Model):
    audience = models.ForeignKey(
        TargetAudience, models.CASCADE, db_index=False, db_constraint=False, verbose_name=_("target audience")
    )
    member = models.ForeignKey(
        "loyalty.Member", models.CASCADE, db_constraint=False, verbose_name=_("member")
    )
    added_at = models.DateTimeField(_("added at"), default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["audience", "member"], name="audience_member_unique")]
        verbose_name = _("audience member")
        verbose_name_plural = _("audience members")

    def __str__(self) -> str:
        return f"{self.audience_id}/{self.member_id}"


class GlobalControlGroup(models.Model):
    """A stable share of all members held out of every marketing communication. Who is in
    it follows from a hash of the member id and the salt, so new members fall in or out as
    they register, at no cost; changing the salt re-forms the group."""

    enabled = models.BooleanField(_("enabled"), default=False)
    share_percent = models.DecimalField(
        _("share, %"),
        max_digits=5,
        decimal_places=2,
        default=5,
        validators=[MinValueValidator(0), MaxValueValidator(50)],
    )
    salt = models.PositiveIntegerField(_("salt"), default=1, help_text=_("Change it to re-form the group."))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("global control group")
        verbose_name_plural = _("global control group")

    def __str__(self) -> str:
        return str(_("Global control group: %(share)s%%") % {"share": self.share_percent})

    @classmethod
    def current(cls) -> "GlobalControlGroup":
        obj = cls.objects.order_by("pk").first()
        return obj or cls.objects.create()
