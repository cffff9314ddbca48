"""Back-office users and roles: the role groups keep their stored (English) names, which
the role rules use; the pages name them in the reader's language."""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.utils.translation import gettext_lazy as _

from loyalty.roles import ROLE_LABELS


def role_label(group: Group) -> str:
    return str(ROLE_LABELS.get(group.name, group.name))


class _RoleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return role_label(obj)


admin.site.unregister(Group)
admin.site.unregister(User)


@admin.register(Group)
class RoleAdmin(GroupAdmin):
    list_display = ("role",)

    @admin.display(description=_("name"), ordering="name")
    def role(self, obj: Group) -> str:
        return role_label(obj)


@admin.register(User)
class BackOfficeUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "roles")

    @admin.display(description=_("roles"))
    def roles(self, obj: User) -> str:
        return ", ".join(role_label(group) for group in obj.groups.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups":
            kwargs["form_class"] = _RoleChoiceField
        return super().formfield_for_manytomany(db_field, request, **kwargs)
