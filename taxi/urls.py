import sys

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path
from django.views import defaults
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from taxi.admin_log_in import admin_log_in
from taxi.health import healthz
from taxi.http_errors import bad_request
from trips.errors import Unavailable


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """An unknown /api/ URL answers like every other API error (PROTOCOL.md,
    "Errors"); anything else gets Django's page. Used when DEBUG is off."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """What Django answers for an exception outside DRF's views (its
    middleware, the admin). A backing service away, or no database connection
    free within DB_POOL_TIMEOUT_S, is a 503 `unavailable`, as REST answers it:
    worth a retry, not a fault. Django calls this inside its `except`, so the
    exception is the one being handled. Used when DEBUG is off."""
    exc = sys.exc_info()[1]
    if isinstance(exc, Unavailable):
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": exc.detail, "code": exc.code}, status=503)
        return HttpResponse(exc.detail, status=503, content_type="text/plain; charset=utf-8")
    return defaults.server_error(request)


handler400 = bad_request
handler404 = not_found
handler500 = server_error

# The API's own description is public: no login, and no token checked.
_PUBLIC = {"permission_classes": [AllowAny], "authentication_classes": []}

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Before the admin's own URLs: the same form, throttled.
    path("admin/login/", admin_log_in, name="admin_log_in"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(**_PUBLIC), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **_PUBLIC), name="docs"),
    path("api/", include("trips.urls")),
    path("api/", include("dispatch.urls")),
    path("api/", include("pricing.urls")),
    path("api/", include("notifications.urls")),
    # The landing page, the rider and driver app, the staff console.
    path("", include("pages.urls")),
]

if settings.DEBUG:
    # Uploaded photos; in production a web server or object storage serves them.
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]
