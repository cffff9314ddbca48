from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from loyalty.timezones import validate_time_zone


class Partner(models.Model):
    """A legal entity taking part in the program; owns points of sale."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)
    legal_name = models.CharField(_("legal name"), max_length=255, blank=True)
    tax_id = models.CharField(_("tax id (INN)"), max_length=12, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("partner")
        verbose_name_plural = _("partners")

    def __str__(self) -> str:
        return self.name


class SalesChannel(models.TextChoices):
    OFFLINE = "offline", _("Offline store")
    ONLINE_STORE = "online_store", _("Online store")
    MOBILE_APP = "mobile_app", _("Mobile app")


class PointOfSale(models.Model):
    """An interaction point where purchases happen. ``attributes`` holds free additional
    information (e.g. ``{"CustomTradeFormat": "Hypermarket", "CoffeeShop": "yes"}``) that
    offer filters can match on."""

    partner = models.ForeignKey(
        Partner, models.PROTECT, related_name="points_of_sale", verbose_name=_("partner")
    )
    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(
        _("sales channel"), max_length=16, choices=SalesChannel.choices, default=SalesChannel.OFFLINE
    )
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Europe/Moscow", validators=[validate_time_zone]
    )
    city = models.CharField(_("city"), max_length=128, blank=True)
    address = models.CharField(_("address"), max_length=255, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["partner__name", "name"]
        verbose_name = _("point of sale")
        verbose_name_plural = _("points of sale")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.attributes, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in self.attributes.items()
        ):
            raise ValidationError({"attributes": _("Attributes must be an object of names to plain values.")})


class PaymentMethodKind(models.TextChoices):
    CASH = "cash", _("Cash")
    BANK_CARD = "bank_card", _("Bank card")
    BONUSES = "bonuses", _("Bonuses")
    ONLINE = "online", _("Online payment")
    GIFT_CARD = "gift_card", _("Gift card")
    OTHER = "other", _("Other")


class PaymentMethod(models.Model):
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=PaymentMethodKind.choices)

    class Meta:
        ordering = ["name"]
        verbose_name = _("payment method")
        verbose_name_plural = _("payment methods")

    def __str__(self) -> str:
        return self.name


class ProductGroup(models.Model):
    """A node of the product classifier. ``path`` (``/root/dairy/milk/``) is kept in step
    with the parent on save so "this group and its descendants" is one indexed prefix
    match."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    parent = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="children", verbose_name=_("parent")
    )
    path = models.CharField(_("path"), max_length=1024, editable=False, db_index=True)

    class Meta:
        ordering = ["path"]
        verbose_name = _("product group")
        verbose_name_plural = _("product groups")

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        old_path = self.path
        self.path = (self.parent.path if self.parent else "/") + f"{self.code}/"
        super().save(*args, **kwargs)
        if old_path and old_path != self.path:
            # Moving a group moves its subtree: rewrite the descendants' prefixes.
            for child in ProductGroup.objects.filter(path__startswith=old_path).exclude(pk=self.pk):
                child.path = self.path + child.path[len(old_path) :]
                child.save(update_fields=["path"])

    def clean(self) -> None:
        node = self.parent
        while node is not None:
            if node.pk == self.pk and self.pk is not None:
                raise ValidationError({"parent": _("A group cannot be inside itself.")})
            node = node.parent


class Product(models.Model):
    sku = models.CharField(_("SKU"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=255)
    group = models.ForeignKey(ProductGroup, models.PROTECT, related_name="products", verbose_name=_("group"))
    price = models.DecimalField(
        _("price"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class CatalogState(models.Model):
    """One row: bumped whenever a product or a product group changes, so every process
    drops the products it cached (``loyalty.services.catalog``)."""

    version = models.PositiveBigIntegerField(default=0, verbose_name=_("version"))

    def __str__(self) -> str:
        return f"catalog v{self.version}"
