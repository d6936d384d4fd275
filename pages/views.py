"""The pages themselves are static shells: the app talks to the public REST
and WebSocket API like any other client, and the console to its own staff
stream (pages/consumers.py). What the server renders is configuration only."""

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit
from uuid import UUID

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.http import require_GET

from pages import ops_state


def content_security_policy() -> str:
    """Everything from this host; map tiles also from the configured tile
    host, if any. A page that tries to load anything else is refused by the
    browser (and the browser tests fail on the console error it logs)."""
    images = "'self' data:"
    tile_origin = _origin(settings.MAP_TILE_URL)
    if tile_origin:
        images += f" {tile_origin}"
    return (
        "default-src 'self'; "
        f"img-src {images}; "
        "connect-src 'self'; "
        "style-src 'self'; "
        "script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url.replace("{s}", "a"))
    if not parts.scheme or not parts.netloc:
        return ""
    # Tile URLs name subdomains as {s}: allow them all.
    netloc = urlsplit(url).netloc.replace("{s}", "*")
    return f"{parts.scheme}://{netloc}"


def page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def with_policy(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = content_security_policy()
        return response

    return with_policy


def map_config() -> dict:
    lat, lng = settings.MAP_CENTER
    return {
        "tileUrl": settings.MAP_TILE_URL,
        "tileAttribution": settings.MAP_TILE_ATTRIBUTION,
        "center": [lat, lng],
    }


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page without an icon link (the
    admin's): an answer instead of a 404 in every console."""
    return HttpResponseRedirect(static("pages/favicon.svg"))


@require_GET
@page
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/landing.html")


@require_GET
@page
def rider_and_driver_app(request: HttpRequest) -> HttpResponse:
    config = {**map_config(), "offerTimeoutS": settings.DISPATCH_OFFER_TIMEOUT_S}
    return render(request, "pages/app.html", {"config": config})


@require_GET
@staff_member_required
@page
def ops_console(request: HttpRequest) -> HttpResponse:
    config = {
        **map_config(),
        "streamPath": "/ops/stream/",
        "tickS": settings.OPS_TICK_S,
        "surgePath": "/api/ops/surge/",
        "surgeRefreshS": settings.SURGE_REFRESH_S,
    }
    return render(request, "pages/ops.html", {"config": config})


@require_GET
def ops_trip(request: HttpRequest, trip_id: UUID) -> JsonResponse:
    """One trip and its offers, oldest first, for the console's side panel.
    Staff only; anyone else gets the same 404 as for a trip that does not exist."""
    user = request.user
    history = ops_state.trip_history(trip_id) if user.is_active and user.is_staff else None
    if history is None:
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return JsonResponse(history)
