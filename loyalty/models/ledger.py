"""The bonus ledger.

An *operation* is one business act (an accrual for a receipt, a spend, a refund, a manual
adjustment, a nightly activation or expiry run); it names its source and may carry an
idempotency key. It writes *entries*: append-only rows, each moving points of one *lot*
between nothing, *pending* and *available*. A lot is what one accrual created: its amount,
when it activates and when it expires. Nothing is updated in place except the account's
running totals, which are a projection of its entries kept under the account's row lock
(``loyalty.services.ledger``) and guarded by CHECK constraints so they can never go
negative.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

ZERO = Decimal("0")
POINTS = {"max_digits": 14, "decimal_places": 2}


class Currency(models.Model):
    """A bonus currency (bonus points, gift points, promo points...)."""

    code = models.SlugField(_("code"), max_length=16, unique=True)
    name = models.CharField(_("name"), max_length=64)
    is_default = models.BooleanField(_("default"), default=False)
    # Which currency pays first when a purchase is paid with bonuses.
    spend_priority = models.PositiveSmallIntegerField(_("spend priority"), default=100)

    class Meta:
        ordering = ["spend_priority", "code"]
        verbose_name = _("bonus currency")
        verbose_name_plural = _("bonus currencies")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="currency_one_default"
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """The name as the reader's language has it: a name the program gave itself (the
        default currency's) is translated; a name a marketer typed is shown as typed."""
        return str(SEEDED_NAMES.get(self.name, self.name))


#: Currency names the program stores itself (``currency_default`` and the first
#: migration), read in the viewer's language.
SEEDED_NAMES = {"Bonus points": _("Bonus points")}


class BonusAccount(models.Model):
    # (member, currency) is unique: that index serves lookups by member.
    member = models.ForeignKey(
        "loyalty.Member",
        models.CASCADE,
        related_name="bonus_accounts",
        verbose_name=_("member"),
        db_index=False,
    )
    currency = models.ForeignKey(
        Currency, models.PROTECT, related_name="+", verbose_name=_("currency"), db_index=False
    )
    available = models.DecimalField(_("available"), default=ZERO, **POINTS)
    pending = models.DecimalField(_("pending activation"), default=ZERO, **POINTS)
    created_at = models.DateTimeField(_("opened at"), auto_now_add=True)

    class Meta:
        verbose_name = _("bonus account")
        verbose_name_plural = _("bonus accounts")
        constraints = [
            models.UniqueConstraint(fields=["member", "currency"], name="account_member_currency"),
            models.CheckConstraint(condition=Q(available__gte=0), name="account_available_gte_0"),
            models.CheckConstraint(condition=Q(pending__gte=0), name="account_pending_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}/{self.currency_id}"


class OperationKind(models.TextChoices):
    ACCRUAL = "accrual", _("Accrual")
    SPEND = "spend", _("Spend")
    REFUND = "refund", _("Refund")
    RELEASE = "release", _("Reservation released")
    ADJUSTMENT = "adjustment", _("Manual adjustment")
    ACTIVATION = "activation", _("Activation")
    EXPIRY = "expiry", _("Expiry")


class SourceType(models.TextChoices):
    RECEIPT = "receipt", _("Receipt")
    OFFER = "offer", _("Offer")
    CAMPAIGN = "campaign", _("Campaign")
    OPERATOR = "operator", _("Operator")
    REGULAR_TASK = "regular_task", _("Regular task")
    IMPORT = "import", _("Import")


class BonusOperation(models.Model):
    """One business act on the ledger and what caused it. ``idempotency_key`` makes a
    repeated request a no-op that returns the first result."""

    kind = models.CharField(_("kind"), max_length=16, choices=OperationKind.choices)
    # Null for set-wise runs (activation, expiry) that touch many accounts at once.
    # Few indexes on purpose: every accrual and spend writes one row here.
    account = models.ForeignKey(
        BonusAccount,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="operations",
        db_index=False,
        verbose_name=_("account"),
    )
    # Unique by the constraint below: a field's unique=True would add, on PostgreSQL, a
    # second index for LIKE searches that no query makes, written on every operation.
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, null=True, blank=True)
    amount = models.DecimalField(_("amount"), default=ZERO, **POINTS)
    source_type = models.CharField(_("source"), max_length=16, choices=SourceType.choices)
    # The offer, campaign or regular task that caused it, by the owning app's id.
    source_id = models.CharField(_("source id"), max_length=64, blank=True)
    source_label = models.CharField(_("source name"), max_length=255, blank=True)
    receipt = models.ForeignKey(
        "loyalty.Receipt",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="bonus_operations",
        verbose_name=_("receipt"),
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("operator"),
        db_index=False,
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("bonus operation")
        verbose_name_plural = _("bonus operations")
        indexes = [models.Index(fields=["account", "created_at"], name="operation_account_time_idx")]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="operation_idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount}"

    @property
    def source_text(self) -> str:
        """The source's name in the reader's language where the program named it itself
        (set-wise activation and expiry, a receipt); a name an offer or a person gave is
        shown as given."""
        if self.source_label in OperationKind.values:
            return str(OperationKind(self.source_label).label)
        if self.source_type == SourceType.RECEIPT and self.receipt_id and self.kind != OperationKind.REFUND:
            return gettext("Receipt %(id)s") % {"id": self.receipt.external_id}
        return self.source_label


class BonusLot(models.Model):
    """Points created by one accrual; never changed after creation. What remains of it,
    pending or available, is the sum of its entries."""

    account = models.ForeignKey(
        BonusAccount, models.PROTECT, related_name="lots", db_index=False, verbose_name=_("account")
    )
    operation = models.ForeignKey(
        BonusOperation, models.PROTECT, related_name="lots", verbose_name=_("operation")
    )
    amount = models.DecimalField(_("amount"), **POINTS)
    activates_at = models.DateTimeField(_("activates at"))
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("bonus lot")
        verbose_name_plural = _("bonus lots")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="lot_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("activates_at")),
                name="lot_expires_after_activation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} ({self.activates_at:%Y-%m-%d})"


class LotRemainder(models.Model):
    """Working projection of a lot that still holds points: what is left pending and
    available. The row goes when the lot is empty. Spending, activation and expiry read
    and write it under the account's row lock; the truth stays in ``LedgerEntry``."""

    lot = models.OneToOneField(
        BonusLot, models.CASCADE, primary_key=True, related_name="remainder", verbose_name=_("lot")
    )
    account = models.ForeignKey(
        BonusAccount, models.CASCADE, related_name="remainders", db_index=False, verbose_name=_("account")
    )
    available = models.DecimalField(default=ZERO, **POINTS, verbose_name=_("available"))
    pending = models.DecimalField(default=ZERO, **POINTS, verbose_name=_("pending"))
    activates_at = models.DateTimeField(verbose_name=_("activates at"))
    expires_at = models.DateTimeField(null=True, verbose_name=_("expires at"))

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(available__gte=0), name="remainder_available_gte_0"),
            models.CheckConstraint(condition=Q(pending__gte=0), name="remainder_pending_gte_0"),
        ]
        indexes = [
            models.Index(fields=["account", "expires_at"], name="remainder_account_idx"),
            models.Index(
                fields=["activates_at"], condition=Q(pending__gt=0), name="remainder_due_activation"
            ),
            models.Index(fields=["expires_at"], name="remainder_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lot_id}: {self.available}/{self.pending}"


class EntryKind(models.TextChoices):
    ACCRUAL = "accrual", _("Accrued")
    ACTIVATION = "activation", pgettext_lazy("ledger movement", "Activated")
    SPEND = "spend", _("Spent")
    RESTORE = "restore", _("Restored by refund")
    CLAWBACK = "clawback", _("Taken back by refund")
    RELEASE = "release", _("Released by a cancelled purchase")
    EXPIRY = "expiry", _("Expired")
    ADJUSTMENT = "adjustment", _("Adjusted by hand")


class LedgerEntry(models.Model):
    """Append-only: one movement of one lot's points. ``available_delta`` and
    ``pending_delta`` say how the lot's (and its account's) two buckets changed."""

    operation = models.ForeignKey(
        BonusOperation, models.PROTECT, related_name="entries", verbose_name=_("operation")
    )
    account = models.ForeignKey(
        BonusAccount, models.PROTECT, related_name="entries", db_index=False, verbose_name=_("account")
    )
    lot = models.ForeignKey(BonusLot, models.PROTECT, related_name="entries", verbose_name=_("lot"))
    kind = models.CharField(_("kind"), max_length=16, choices=EntryKind.choices)
    available_delta = models.DecimalField(_("available change"), default=ZERO, **POINTS)
    pending_delta = models.DecimalField(_("pending change"), default=ZERO, **POINTS)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        indexes = [models.Index(fields=["account", "created_at"], name="entry_account_time_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.available_delta or self.pending_delta}"
