"""ASGI entry point: HTTP through Django, `/taxi/` WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taxi.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from taxi.ws import OriginCheck, TokenOrSessionAuth  # noqa: E402
from trips.consumers import TaxiConsumer  # noqa: E402

websocket_urlpatterns = [path("taxi/", TaxiConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginCheck(TokenOrSessionAuth(URLRouter(websocket_urlpatterns))),
    }
)
