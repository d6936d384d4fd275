from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path
from django.views import defaults
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from taxi.health import healthz


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """An unknown /api/ URL answers like every other API error (PROTOCOL.md,
    "Errors"); anything else gets Django's page. Used when DEBUG is off."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


handler404 = not_found

# The API's own description is public: no login, and no token checked.
_PUBLIC = {"permission_classes": [AllowAny], "authentication_classes": []}

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(**_PUBLIC), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **_PUBLIC), name="docs"),
    path("api/", include("trips.urls")),
    path("api/", include("dispatch.urls")),
]

if settings.DEBUG:
    # Uploaded photos; in production a web server or object storage serves them.
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]
