"""The WebSocket handshake: Origin check, then token or session
authentication, then the per-user socket cap.

All refuse at the handshake (an HTTP 403 before the socket opens), so a
consumer only ever sees authenticated users from allowed origins, within
their socket allowance. The scope's `credentials` (trips.sockets.Credentials)
say what opened the socket, so the consumer can close it when they end.
"""

import asyncio
import logging
import uuid
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from redis.exceptions import RedisError
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken

from trips import sockets
from trips.authentication import LOGIN_CLAIM, LoginJWTAuthentication

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


_JWT = LoginJWTAuthentication()


@database_sync_to_async
def _validated_access_token(raw: str):
    """The active user an access token names and the token, exactly as REST's
    Bearer authentication decides it (simplejwt's rules and settings, and not
    logged out); None if none."""
    try:
        token = _JWT.get_validated_token(raw)
        return _JWT.get_user(token), token
    except (InvalidToken, AuthenticationFailed, ValueError, TypeError):
        return None


async def authenticate_access_token(raw: str):
    """`(user, Credentials)` for a good access token, else None. The
    handshake's check, and `auth.refresh`'s."""
    found = await _validated_access_token(raw)
    if found is None:
        return None
    user, token = found
    login = token.get(LOGIN_CLAIM)
    return user, sockets.Credentials(
        expires_at=float(token["exp"]), login=login if isinstance(login, str) else None
    )


class TokenOrSessionAuth:
    """`?token=<access>` when given (a bad one is refused, never downgraded to
    the session); otherwise the session cookie; otherwise refused. Then the
    socket cap (`SocketCap`)."""

    def __init__(self, app):
        self.app = SocketCap(app)
        self.session_app = AuthMiddlewareStack(self._require_user(self.app))

    async def __call__(self, scope, receive, send):
        tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if not tokens:
            return await self.session_app(scope, receive, send)
        try:
            found = await authenticate_access_token(tokens[0])
        except (RedisError, OSError) as exc:
            # Whether the log-in was revoked is unknown: refuse, the app retries.
            logger.warning("ws.stream_unavailable", extra={"error": type(exc).__name__})
            found = None
        if found is None:
            logger.info("ws.refused_token")
            return await Denier()(scope, receive, send)
        user, credentials = found
        return await self.app(dict(scope, user=user, credentials=credentials), receive, send)

    @staticmethod
    def _require_user(app):
        async def require_user(scope, receive, send):
            user = scope.get("user")
            if user is None or not user.is_authenticated:
                logger.info("ws.refused_anonymous")
                return await Denier()(scope, receive, send)
            session = sockets.session_digest(scope["session"].session_key)
            return await app(
                dict(scope, credentials=sockets.Credentials(session=session)), receive, send
            )

        return require_user


class SocketCap:
    """At most WS_MAX_SOCKETS_PER_USER open sockets per user, across every
    web process: one more is refused at the handshake, and the sockets already
    open stay (a client reconnecting in a loop cannot push its own live
    sockets out). The lease is held, and renewed, for as long as the socket lives."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        user_id, socket_id = scope["user"].pk, uuid.uuid4().hex
        try:
            admitted = await sockets.lease_acquire(user_id, socket_id)
        except (RedisError, OSError) as exc:
            # No count, no socket: as when the push stream cannot be joined.
            logger.warning("ws.stream_unavailable", extra={"error": type(exc).__name__})
            return await Denier()(scope, receive, send)
        if not admitted:
            logger.info("ws.refused_too_many_sockets", extra={"user_id": user_id})
            return await Denier()(scope, receive, send)
        keeper = asyncio.ensure_future(sockets.lease_keep(user_id, socket_id))
        try:
            return await self.app(scope, receive, send)
        finally:
            keeper.cancel()
            await sockets.lease_release(user_id, socket_id)
