"""Personal-products lists in the back office: the products members pick from, how many
picks, the period; how many members picked and which products they chose most."""

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from offers.models import PersonalProduct, PersonalProductProgram

TOP_PRODUCTS = 10


class PersonalProductProgramForm(forms.ModelForm):
    class Meta:
        model = PersonalProductProgram
        fields = ["name", "description", "products", "max_picks", "starts_at", "ends_at", "active"]

    def clean(self):
        cleaned = super().clean()
        starts, ends = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", gettext("The period must end after it starts."))
        if cleaned.get("max_picks") is not None and cleaned["max_picks"] < 1:
            self.add_error("max_picks", gettext("A member picks at least one product."))
        return cleaned


@admin.register(PersonalProductProgram)
class PersonalProductProgramAdmin(admin.ModelAdmin):
    form = PersonalProductProgramForm
    list_display = ("name", "period", "max_picks", "products_count", "members_count", "active")
    list_filter = ("active",)
    search_fields = ("name",)
    autocomplete_fields = ("products",)
    readonly_fields = ("picks_summary",)
    fieldsets = (
        (None, {"fields": ("name", "description", "active")}),
        (_("Products"), {"fields": ("products", "max_picks")}),
        (_("Period"), {"fields": ("starts_at", "ends_at")}),
        (_("Picks"), {"fields": ("picks_summary",)}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                products_total=Count("products", distinct=True),
                members_total=Count("picks__member", distinct=True),
            )
        )

    @admin.display(description=_("period"), ordering="starts_at")
    def period(self, obj):
        start, end = timezone.localtime(obj.starts_at), timezone.localtime(obj.ends_at)
        return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M}"

    @admin.display(description=_("products"), ordering="products_total")
    def products_count(self, obj):
        return obj.products_total

    @admin.display(description=_("members who picked"), ordering="members_total")
    def members_count(self, obj):
        return obj.members_total

    @admin.display(description=_("picks"))
    def picks_summary(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        picks = PersonalProduct.objects.filter(program=obj)
        members = picks.values("member").distinct().count()
        if not members:
            return gettext("Nobody has picked yet.")
        top = (
            picks.values("product__name", "product__sku")
            .annotate(n=Count("member", distinct=True))
            .order_by("-n", "product__name")[:TOP_PRODUCTS]
        )
        rows = format_html_join(
            "",
            "<tr><td>{} <small>{}</small></td><td>{}</td></tr>",
            ((r["product__name"], r["product__sku"], r["n"]) for r in top),
        )
        return format_html(
            '<p>{}</p><table class="picks-top"><thead><tr><th>{}</th><th>{}</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            gettext("Members who picked: %(n)s.") % {"n": members},
            gettext("most picked products"),
            gettext("members"),
            rows,
        )
