import csv

from django.contrib import admin
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class _Echo:
    def write(self, value):
        return value


class CsvExportMixin:
    """Adds "Export selected to CSV": the list's columns (``csv_fields`` or
    ``list_display``), streamed so a large selection does not build in memory."""

    csv_fields: tuple[str, ...] = ()
    actions = ["export_csv"]

    @admin.action(description=_("Export selected to CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        fields = self.csv_fields or tuple(f for f in self.list_display if f != "__str__")
        labels = [self._csv_label(f) for f in fields]
        writer = csv.writer(_Echo())

        def rows():
            yield "\ufeff"  # BOM: spreadsheet programs then read UTF-8 Cyrillic correctly
            yield writer.writerow(labels)
            for obj in queryset.iterator(chunk_size=2000):
                yield writer.writerow([self._csv_value(obj, f) for f in fields])

        name = f"{self.model._meta.model_name}-{timezone.now():%Y%m%d-%H%M}.csv"
        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def _csv_label(self, name: str) -> str:
        attr = getattr(self, name, None)
        if attr is not None and hasattr(attr, "short_description"):
            return str(attr.short_description)
        try:
            return str(self.model._meta.get_field(name).verbose_name)
        except Exception:
            return name

    def _csv_value(self, obj, name: str):
        attr = getattr(self, name, None)
        if callable(attr):
            return attr(obj)
        value = getattr(obj, f"get_{name}_display", None)
        if callable(value):
            return value()
        value = getattr(obj, name, "")
        return "" if value is None else value


class ReadOnlyAdminMixin:
    """For append-only records: viewable, never added, changed or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class EventTypeFilter(admin.SimpleListFilter):
    """Event types by their labels, from the registry (no scan of the journal for the
    distinct values, which a field filter would make on every page load)."""

    title = _("event")
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        from loyalty.events import event_types

        return sorted(event_types.choices(), key=lambda choice: str(choice[1]))

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() else queryset


def channel_labels() -> dict[str, str]:
    """What the journal's ``channel`` codes read as: sales and registration channels."""
    from loyalty.models import RegistrationChannel, SalesChannel

    return {**dict(RegistrationChannel.choices), **dict(SalesChannel.choices)}


class EventChannelFilter(admin.SimpleListFilter):
    title = _("channel")
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        return sorted(channel_labels().items(), key=lambda choice: str(choice[1]))

    def queryset(self, request, queryset):
        return queryset.filter(channel=self.value()) if self.value() else queryset
