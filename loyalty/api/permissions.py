from rest_framework.permissions import BasePermission

from loyalty.roles import API_USER


class IsApiUser(BasePermission):
    """Points of sale, stores and apps authenticate as users of the "API user" role;
    administrators may call the API too."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        return user.is_superuser or user.groups.filter(name=API_USER).exists()
