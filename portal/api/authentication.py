"""``Authorization: Bearer mt_...``: the mobile app's member token (``portal.services.auth``).

The member API authenticates with these tokens only: a back-office session, token or
API key is no member, so the member views list this class alone and ``IsMember`` checks
the caller is a member principal."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from loyalty.models import Member
from portal.models import MemberToken
from portal.services.auth import token_member

KEYWORD = "Bearer"


class MemberUser:
    """Stands in for ``request.user``: the member signed in on a device, not a back-office
    user. ``member`` and ``token`` are the member and the token used."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, token: MemberToken) -> None:
        self.token = token
        self.member: Member = token.member
        self.username = f"member:{token.member_id}"

    def __str__(self) -> str:
        return self.username

    def has_perm(self, perm, obj=None) -> bool:
        return False


class MemberTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(_("Send the token as: Authorization: Bearer <token>."))
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed(_("Invalid token.")) from None
        token = token_member(key)
        if token is None:
            raise AuthenticationFailed(_("The token is invalid, expired or revoked. Sign in again."))
        return MemberUser(token), token

    def authenticate_header(self, request) -> str:
        return KEYWORD


class IsMember(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, MemberUser) and isinstance(request.auth, MemberToken)


class MemberTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.MemberTokenAuthentication"
    name = "MemberToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": str(
                _("The member's token from `POST /api/v1/me/auth/token` as `Authorization: Bearer mt_...`.")
            ),
        }
