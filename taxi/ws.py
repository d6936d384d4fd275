"""The WebSocket handshake: Origin check, then token or session authentication.

Both refuse at the handshake (an HTTP 403 before the socket opens), so a
consumer only ever sees authenticated users from allowed origins.
"""

import logging
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

logger = logging.getLogger(__name__)


class Denier(WebsocketDenier):
    """Refuses the handshake without opening a channel on the layer, so a
    refusal costs no Redis round trip and frees the connection at once."""

    channel_layer_alias = None


class OriginCheck:
    """Browsers send `Origin`: its host must be in ALLOWED_HOSTS. Native apps
    send none, and are judged by their credentials alone (Channels' stock
    validator would refuse them)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        origin = dict(scope.get("headers", [])).get(b"origin")
        if origin is not None and not self._allowed(origin):
            logger.info("ws.refused_origin")
            return await Denier()(scope, receive, send)
        return await self.app(scope, receive, send)

    @staticmethod
    def _allowed(origin: bytes) -> bool:
        try:
            text = origin.decode("latin-1")
        except UnicodeDecodeError:
            return False
        if "://" not in text:
            return False
        host, _port = split_domain_port(text.split("://", 1)[1].split("/", 1)[0])
        return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


_JWT = JWTAuthentication()


@database_sync_to_async
def _user_for_token(raw: str):
    """The active user an access token names, exactly as REST's Bearer
    authentication decides it (simplejwt's rules and settings); None if none."""
    try:
        return _JWT.get_user(_JWT.get_validated_token(raw))
    except (InvalidToken, AuthenticationFailed, ValueError, TypeError):
        return None


class TokenOrSessionAuth:
    """`?token=<access>` when given (a bad one is refused, never downgraded to
    the session); otherwise the session cookie; otherwise refused."""

    def __init__(self, app):
        self.app = app
        self.session_app = AuthMiddlewareStack(self._require_user(app))

    async def __call__(self, scope, receive, send):
        tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if not tokens:
            return await self.session_app(scope, receive, send)
        user = await _user_for_token(tokens[0])
        if user is None:
            logger.info("ws.refused_token")
            return await Denier()(scope, receive, send)
        return await self.app(dict(scope, user=user), receive, send)

    @staticmethod
    def _require_user(app):
        async def require_user(scope, receive, send):
            user = scope.get("user")
            if user is None or not user.is_authenticated:
                logger.info("ws.refused_anonymous")
                return await Denier()(scope, receive, send)
            return await app(scope, receive, send)

        return require_user
