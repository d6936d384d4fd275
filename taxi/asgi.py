"""ASGI entry point: HTTP through Django; WebSockets through Channels: `/taxi/`
for riders and drivers, `/ops/stream/` for the staff console."""

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taxi.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from pages.consumers import OpsStreamConsumer  # noqa: E402
from taxi.ws import OriginCheck, TokenOrSessionAuth  # noqa: E402
from trips.consumers import TaxiConsumer  # noqa: E402
from trips.errors import Unavailable  # noqa: E402

logger = logging.getLogger(__name__)


class RefuseWhenUnavailable:
    """A handshake that needs a backing service which is away (no database
    connection free within DB_POOL_TIMEOUT_S: the token's user, the session)
    is refused (403) for the app to retry, as when Redis is away; daphne would
    answer an exception before `accept` with a 500. After `accept` the
    consumer answers errors itself."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        accepted = False

        async def watched_send(message):
            nonlocal accepted
            accepted = accepted or message["type"] == "websocket.accept"
            await send(message)

        try:
            return await self.app(scope, receive, watched_send)
        except Unavailable as exc:
            if accepted:
                raise
            logger.warning("ws.handshake_unavailable", extra={"error": type(exc).__name__})
            await send({"type": "websocket.close"})


websocket_urlpatterns = [
    path("taxi/", TaxiConsumer.as_asgi()),
    path("ops/stream/", OpsStreamConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": RefuseWhenUnavailable(
            OriginCheck(TokenOrSessionAuth(URLRouter(websocket_urlpatterns)))
        ),
    }
)
