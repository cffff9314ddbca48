"""Cards, partners and points of sale, catalog, receipts, ledger and the event journal."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty.admin.mixins import (
    CsvExportMixin,
    EventChannelFilter,
    EventTypeFilter,
    ReadOnlyAdminMixin,
    channel_labels,
)
from loyalty.events import event_types
from loyalty.models import (
    BonusAccount,
    BonusOperation,
    Card,
    Consent,
    ConsentChange,
    Currency,
    LedgerEntry,
    MemberEvent,
    Partner,
    PaymentMethod,
    PointOfSale,
    Product,
    ProductGroup,
    Receipt,
    ReceiptLine,
    ReceiptPayment,
    StatusChange,
)
from loyalty.services.cards import card_activate, card_block, card_issue, card_replace, card_unblock
from loyalty.services.errors import DomainError
from loyalty.services.receipts import receipt_cancel
from loyalty.templatetags.loyalty_tags import money


def _each(modeladmin, request, queryset, action, done: str) -> None:
    ok, failed = 0, []
    for obj in queryset:
        try:
            action(obj)
            ok += 1
        except (DomainError, ValidationError) as exc:
            failed.append(f"{obj}: {exc}")
    if ok:
        modeladmin.message_user(request, done % {"count": ok}, messages.SUCCESS)
    for message in failed:
        modeladmin.message_user(request, message, messages.ERROR)


@admin.register(Card)
class CardAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("number", "member", "state", "kind", "issued_at", "activated_at")
    list_filter = ("state", "kind", "issued_at")
    search_fields = ("number", "member__phone", "member__last_name")
    autocomplete_fields = ("member",)
    list_select_related = ("member",)
    readonly_fields = ("state", "issued_at", "activated_at", "blocked_at", "replaced_by")
    fields = ("number", "kind", "member", "issued_at_point", "state", "block_reason", *readonly_fields[1:])
    actions = ["export_csv", "activate", "block", "unblock", "replace"]

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "number", "kind") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        card = card_issue(
            number=obj.number, kind=obj.kind, member=obj.member, point_of_sale=obj.issued_at_point
        )
        obj.pk = card.pk

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "number" in form.base_fields:
            form.base_fields["number"].required = False
            form.base_fields["number"].help_text = _("Leave empty to take the next free number.")
        return form

    @admin.action(description=_("Activate selected cards"), permissions=["change"])
    def activate(self, request, queryset):
        _each(
            self,
            request,
            queryset,
            lambda c: card_activate(card=c, channel="back_office"),
            gettext("%(count)d card(s) activated."),
        )

    @admin.action(description=_("Block selected cards"), permissions=["change"])
    def block(self, request, queryset):
        reason = gettext("Blocked in the back office by %(user)s") % {"user": request.user}
        _each(
            self,
            request,
            queryset,
            lambda c: card_block(card=c, reason=reason),
            gettext("%(count)d card(s) blocked."),
        )

    @admin.action(description=_("Unblock selected cards"), permissions=["change"])
    def unblock(self, request, queryset):
        _each(
            self, request, queryset, lambda c: card_unblock(card=c), gettext("%(count)d card(s) unblocked.")
        )

    @admin.action(description=_("Replace selected cards with new numbers"), permissions=["change"])
    def replace(self, request, queryset):
        reason = gettext("Replaced in the back office by %(user)s") % {"user": request.user}
        _each(
            self,
            request,
            queryset,
            lambda c: card_replace(card=c, reason=reason),
            gettext("%(count)d card(s) replaced."),
        )


@admin.register(Partner)
class PartnerAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("name", "code", "legal_name", "tax_id")
    search_fields = ("name", "code", "legal_name", "tax_id")


@admin.register(PointOfSale)
class PointOfSaleAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("name", "code", "partner", "kind", "city", "time_zone", "attributes_shown", "active")
    list_filter = ("kind", "partner", "time_zone", "active")
    search_fields = ("name", "code", "city", "address")

    @admin.display(description=_("attributes"))
    def attributes_shown(self, obj: PointOfSale) -> str:
        return ", ".join(f"{k} = {v}" for k, v in obj.attributes.items())


@admin.register(PaymentMethod)
class PaymentMethodAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("name", "code", "kind")
    list_filter = ("kind",)
    search_fields = ("name", "code")


@admin.register(ProductGroup)
class ProductGroupAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("indented_name", "code", "parent")
    search_fields = ("name", "code")
    autocomplete_fields = ("parent",)

    @admin.display(description=_("name"), ordering="path")
    def indented_name(self, obj: ProductGroup) -> str:
        depth = obj.path.count("/") - 2
        return format_html("{}{}", "— " * depth, obj.name)


@admin.register(Product)
class ProductAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("name", "sku", "group", "price_shown", "active")
    list_filter = ("active", "group")
    search_fields = ("name", "sku")
    autocomplete_fields = ("group",)
    list_select_related = ("group",)

    @admin.display(description=_("price"), ordering="price")
    def price_shown(self, obj: Product) -> str:
        return money(obj.price)


class ReceiptLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ReceiptLine
    extra = 0
    fields = ("position", "sku", "name", "quantity", "price", "amount", "discount")
    readonly_fields = fields


class ReceiptPaymentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ReceiptPayment
    extra = 0
    fields = ("method", "amount")
    readonly_fields = fields


@admin.register(Receipt)
class ReceiptAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "external_id",
        "kind",
        "point_of_sale",
        "member",
        "state",
        "purchased_at",
        "total_shown",
        "bonus_paid",
        "bonus_accrued",
    )
    csv_fields = (
        "external_id",
        "kind",
        "point_of_sale",
        "member",
        "state",
        "purchased_at",
        "amount",
        "discount",
        "total",
        "bonus_paid",
        "bonus_accrued",
    )
    list_filter = ("state", "kind", "point_of_sale__kind", "point_of_sale", "purchased_at")
    search_fields = ("external_id", "card__number", "member__phone", "member__last_name")
    date_hierarchy = "purchased_at"
    list_select_related = ("point_of_sale", "member")
    inlines = [ReceiptLineInline, ReceiptPaymentInline]
    readonly_fields = ("refunds_shown",)
    actions = ["export_csv", "cancel_reservations"]

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("loyalty.change_receipt")

    @admin.action(
        description=_("Cancel selected reserved receipts (their bonuses go back)"), permissions=["cancel"]
    )
    def cancel_reservations(self, request, queryset):
        _each(
            self,
            request,
            queryset,
            lambda r: receipt_cancel(receipt=r),
            gettext("%(count)d receipt(s) cancelled; the bonuses reserved for them went back."),
        )

    @admin.display(description=_("total"), ordering="total")
    def total_shown(self, obj: Receipt) -> str:
        return money(obj.total)

    @admin.display(description=_("refunds"))
    def refunds_shown(self, obj: Receipt) -> str:
        return ", ".join(f"{r.external_id} ({money(r.total)})" for r in obj.refunds.all()) or "—"


@admin.register(Currency)
class CurrencyAdmin(CsvExportMixin, admin.ModelAdmin):
    list_display = ("name", "code", "is_default", "spend_priority")


@admin.register(BonusAccount)
class BonusAccountAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("member", "currency", "available", "pending", "created_at")
    list_filter = ("currency",)
    search_fields = ("member__phone", "member__last_name", "member__cards__number")
    list_select_related = ("member", "currency")


class LedgerEntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LedgerEntry
    extra = 0
    fields = ("lot", "kind", "available_delta", "pending_delta", "created_at")
    readonly_fields = fields


@admin.register(BonusOperation)
class BonusOperationAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "account",
        "amount",
        "source_type",
        "source",
        "operator",
        "reason",
    )
    list_filter = ("kind", "source_type", "created_at")
    search_fields = ("source_label", "reason", "idempotency_key", "account__member__phone")
    list_select_related = ("account__member", "account__currency", "operator", "receipt")
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]

    @admin.display(description=_("source name"), ordering="source_label")
    def source(self, obj: BonusOperation) -> str:
        return obj.source_text


@admin.register(LedgerEntry)
class LedgerEntryAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "account", "kind", "available_delta", "pending_delta", "operation")
    list_filter = ("kind", "created_at")
    search_fields = ("account__member__phone", "operation__source_label")
    list_select_related = ("account__member", "account__currency", "operation")


@admin.register(MemberEvent)
class MemberEventAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "event_label", "member", "point_of_sale", "channel_label")
    list_filter = (EventTypeFilter, EventChannelFilter, "occurred_at")
    search_fields = ("member__phone", "member__last_name", "event_type")
    list_select_related = ("member", "point_of_sale")
    date_hierarchy = "occurred_at"

    @admin.display(description=_("event"), ordering="event_type")
    def event_label(self, obj: MemberEvent) -> str:
        return str(event_types.label(obj.event_type))

    @admin.display(description=_("channel"), ordering="channel")
    def channel_label(self, obj: MemberEvent) -> str:
        return str(channel_labels().get(obj.channel, obj.channel))


@admin.register(Consent)
class ConsentAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("member", "channel", "granted", "changed_at", "source")
    list_filter = ("channel", "granted", "source")
    search_fields = ("member__phone", "member__last_name")
    list_select_related = ("member",)


@admin.register(ConsentChange)
class ConsentChangeAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("changed_at", "member", "channel", "granted", "source", "changed_by")
    list_filter = ("channel", "granted", "source")
    search_fields = ("member__phone", "member__last_name")
    list_select_related = ("member", "changed_by")


@admin.register(StatusChange)
class StatusChangeAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("changed_at", "member", "status_from", "status_to", "reason", "changed_by")
    list_filter = ("status_to",)
    search_fields = ("member__phone", "member__last_name")
    list_select_related = ("member", "status_from", "status_to", "changed_by")
