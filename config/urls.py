from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from config.schema import SchemaView

urlpatterns = [
    # The tills' API first: URLs resolve in order, and every till request is one of these.
    path("api/v1/", include("pos.urls")),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("loyalty.api.urls")),
    path("api/v1/", include("segments.api.urls")),
    path("api/v1/me/", include("portal.api.urls")),
    path("gateways/", include("gateways.urls")),
    path("m/", include("communications.urls")),
    path("account/", include("portal.urls")),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[]),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="api-schema", permission_classes=[]),
        name="api-redoc",
    ),
]

handler400 = "config.errors.bad_request"
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
