from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

ZERO = Decimal("0")


class ReceiptState(models.TextChoices):
    CALCULATED = "calculated", _("Calculated")
    CONFIRMED = "confirmed", _("Confirmed")
    CANCELLED = "cancelled", _("Cancelled")
    REFUNDED = "refunded", _("Refunded")
    PARTLY_REFUNDED = "partly_refunded", _("Partly refunded")


class ReceiptKind(models.TextChoices):
    SALE = "sale", _("Sale")
    REFUND = "refund", _("Refund")


class Receipt(models.Model):
    """A purchase (or a refund of one) at a point of sale. Amounts are in the program's
    money; ``bonus_paid`` is the part of ``total`` paid with bonuses. State changes go
    through ``loyalty.services.receipts``."""

    point_of_sale = models.ForeignKey(
        "loyalty.PointOfSale",
        models.PROTECT,
        related_name="receipts",
        verbose_name=_("point of sale"),
        db_index=False,  # receipt_external_id_unique leads with it
    )
    external_id = models.CharField(_("receipt id at the point of sale"), max_length=64)
    kind = models.CharField(_("kind"), max_length=8, choices=ReceiptKind.choices, default=ReceiptKind.SALE)
    refund_of = models.ForeignKey(
        "self",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="refunds",
        verbose_name=_("refund of"),
        db_index=False,  # receipt_refund_of: only refunds
    )
    card = models.ForeignKey(
        "loyalty.Card",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="receipts",
        verbose_name=_("card"),
        db_index=False,  # receipt_card: only receipts with a card
    )
    member = models.ForeignKey(
        "loyalty.Member",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="receipts",
        verbose_name=_("member"),
        db_index=False,  # receipt_member_time_idx leads with it
    )
    state = models.CharField(
        _("state"), max_length=16, choices=ReceiptState.choices, default=ReceiptState.CALCULATED
    )
    purchased_at = models.DateTimeField(_("purchased at"), default=timezone.now)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    amount = models.DecimalField(_("amount before discount"), max_digits=14, decimal_places=2, default=ZERO)
    discount = models.DecimalField(_("discount"), max_digits=14, decimal_places=2, default=ZERO)
    total = models.DecimalField(_("total"), max_digits=14, decimal_places=2, default=ZERO)
    bonus_paid = models.DecimalField(_("paid with bonuses"), max_digits=14, decimal_places=2, default=ZERO)
    bonus_accrued = models.DecimalField(_("bonuses accrued"), max_digits=14, decimal_places=2, default=ZERO)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-purchased_at", "-id"]
        verbose_name = _("receipt")
        verbose_name_plural = _("receipts")
        constraints = [
            models.UniqueConstraint(
                fields=["point_of_sale", "kind", "external_id"], name="receipt_external_id_unique"
            )
        ]
        # Every confirmed purchase writes each index: none repeats another's leading column.
        indexes = [
            models.Index(fields=["member", "purchased_at"], name="receipt_member_time_idx"),
            models.Index(fields=["purchased_at"], name="receipt_time_idx"),
            models.Index(fields=["card"], name="receipt_card", condition=Q(card__isnull=False)),
            models.Index(
                fields=["refund_of"], name="receipt_refund_of", condition=Q(refund_of__isnull=False)
            ),
            # Reserved receipts (not yet confirmed or cancelled, most holding bonuses): a
            # handful at any time, read for a balance and by the release of lapsed ones.
            models.Index(
                fields=["member", "created_at"], name="receipt_reserved", condition=Q(state="calculated")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.point_of_sale_id}/{self.external_id}"


class ReceiptLine(models.Model):
    """A receipt's line. Written thirty at a time with their receipt on every
    confirmation, its keys have no database foreign keys (``db_constraint=False``):
    PostgreSQL checks each with a trigger call per line, and the check of the product
    locks its row (``FOR KEY SHARE``), which concurrent tills selling the same bread turn
    into shared multi-transaction locks. Lines are only written with their receipt
    (``receipt_store``) from a product looked up in the same request, and Django's
    ``on_delete`` still cascades from a deleted receipt and protects a sold product."""

    receipt = models.ForeignKey(
        Receipt,
        models.CASCADE,
        related_name="lines",
        db_index=False,  # receipt_line_position leads with it
        db_constraint=False,
        verbose_name=_("receipt"),
    )
    position = models.PositiveSmallIntegerField(_("position"))
    product = models.ForeignKey(
        "loyalty.Product",
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("product"),
        db_constraint=False,
    )
    sku = models.CharField(_("SKU"), max_length=64)
    name = models.CharField(_("name"), max_length=255, blank=True)
    quantity = models.DecimalField(_("quantity"), max_digits=12, decimal_places=3)
    price = models.DecimalField(_("price"), max_digits=12, decimal_places=2)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    discount = models.DecimalField(_("discount"), max_digits=14, decimal_places=2, default=ZERO)

    class Meta:
        ordering = ["receipt", "position"]
        verbose_name = _("receipt line")
        verbose_name_plural = _("receipt lines")
        constraints = [models.UniqueConstraint(fields=["receipt", "position"], name="receipt_line_position")]

    def __str__(self) -> str:
        return f"{self.position}. {self.name or self.sku}"


class ReceiptPayment(models.Model):
    receipt = models.ForeignKey(Receipt, models.CASCADE, related_name="payments", verbose_name=_("receipt"))
    method = models.ForeignKey(
        "loyalty.PaymentMethod", models.PROTECT, related_name="+", verbose_name=_("payment method")
    )
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")

    def __str__(self) -> str:
        return f"{self.method_id}: {self.amount}"
