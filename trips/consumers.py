"""The `/taxi/` WebSocket: frames in, handlers called, pushes forwarded.

The consumer owns the frame discipline (size, JSON, rate, errors) and the
socket's credentials (closed at the access token's expiry, at log-out, at
deactivation; `auth.refresh` moves the expiry); what each message type does
lives in a handler table, one per app (`trips.ws_handlers`,
`dispatch.ws_handlers`). Every client frame is untrusted: a bad one gets an
`error` frame and the socket stays open.
"""

import asyncio
import contextlib
import datetime
import functools
import json
import logging
import time

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.exceptions import ValidationError

from dispatch.ws_handlers import HANDLERS as DISPATCH_HANDLERS
from taxi.infra.push import user_stream
from taxi.ws import authenticate_access_token
from trips import events, sockets
from trips.errors import DomainError, Unavailable
from trips.frame_limits import FrameRateLimiter, user_buckets
from trips.ws_handlers import HANDLERS as TRIP_HANDLERS

logger = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = events.CLOSE_POLICY_VIOLATION
CLOSE_TOO_BIG = events.CLOSE_TOO_BIG
CLOSE_SERVICE_RESTART = events.CLOSE_SERVICE_RESTART
CLOSE_TOKEN_EXPIRED = events.CLOSE_TOKEN_EXPIRED
CLOSE_CREDENTIALS_REVOKED = events.CLOSE_CREDENTIALS_REVOKED
MAX_REQUEST_ID_CHARS = 128
# A validation message can quote the input (`"<value>" is not a valid choice.`);
# each is cut to this, and an error frame that would still pass the frame
# limit goes without `errors`: daphne refuses to send a frame over
# --websocket-max-message-size and fails the socket (1011) instead.
MAX_ERROR_MESSAGE_CHARS = 256
MAX_ACCESS_TOKEN_CHARS = 4096


class FrameError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        self.code, self.detail = code, detail
        super().__init__(detail)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


@functools.cache
def _handlers() -> dict:
    # A function, so that TaxiConsumer (defined below) can be named.
    return {
        "echo.message": None,
        "auth.refresh": TaxiConsumer.auth_refresh,
        **TRIP_HANDLERS,
        **DISPATCH_HANDLERS,
    }


class TaxiConsumer(AsyncWebsocketConsumer):
    handlers: dict | None = None

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, OSError) as exc:
            if hasattr(self, "channel_name"):
                raise
            # The layer could not subscribe this socket's channel (Redis is
            # down): no push could reach it, so refuse the handshake (403) and
            # let the app retry, as `connect` does when joining the stream fails.
            logger.warning("ws.stream_unavailable", extra={"error": type(exc).__name__})
            await send({"type": "websocket.close"})

    async def dispatch(self, message: dict) -> None:
        """Channels' own dispatch first closes stale database connections on
        the sync thread (`aclose_old_connections`): a round trip to the one
        thread all ORM work shares, for every frame and every push, which made
        it the bottleneck of location ingest and echo (BENCHMARKS.md). This
        consumer reaches the database only through `database_sync_to_async`,
        which makes that check itself around each call, so it is skipped here."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']!r}")
        await handler(message)

    async def connect(self) -> None:
        self.user = self.scope["user"]
        self.stream = user_stream(self.user.pk)
        self.closing = False
        self.credentials = self.scope.get("credentials") or sockets.Credentials()
        self.expiry: asyncio.Task | None = None
        try:
            await self.channel_layer.group_add(self.stream, self.channel_name)
        except (RedisError, OSError) as exc:
            # Without the channel layer no push could reach this socket:
            # refuse the handshake (403) and let the app retry, never a 500.
            logger.warning("ws.stream_unavailable", extra={"error": type(exc).__name__})
            del self.stream
            await self.close()
            return
        self.limiter = FrameRateLimiter(
            settings.WS_RATE_PER_S, settings.WS_RATE_BURST, bucket=user_buckets.hold(self.user.pk)
        )
        self.holds_bucket = True
        await self.accept()
        self.expire_at(self.credentials.expires_at)
        logger.info("ws.connected", extra={"user_id": self.user.pk})

    def expire_at(self, expires_at: float | None) -> None:
        """Close (4001) when the access token expires: from then on, its
        bearer could not open this socket, nor make a REST call with it."""
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if expires_at is not None:
            self.expiry = asyncio.ensure_future(self._close_at(expires_at))

    async def _close_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self.credentials_ended(CLOSE_TOKEN_EXPIRED)

    async def credentials_ended(self, close: tuple[int, str]) -> None:
        if self.closing:
            return
        code, reason = close
        logger.info("ws.credentials_ended", extra={"user_id": self.user.pk, "code": code})
        self.closing = True
        await self.close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "expiry", None) is not None:
            self.expiry.cancel()
        if getattr(self, "holds_bucket", False):
            self.holds_bucket = False
            user_buckets.release(self.user.pk)
        if hasattr(self, "stream"):
            with contextlib.suppress(RedisError, OSError):  # its entry expires by itself
                await self.channel_layer.group_discard(self.stream, self.channel_name)
            logger.info("ws.disconnected", extra={"user_id": self.user.pk, "code": code})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            # Frames already queued when we closed: the socket is done with them.
            return
        expires_at = self.credentials.expires_at
        if expires_at is not None and time.time() >= expires_at:
            # The close is due and its timer has not run yet (a busy loop):
            # nothing is done with credentials that have ended.
            await self.credentials_ended(CLOSE_TOKEN_EXPIRED)
            return
        if _frame_size(text_data, bytes_data) > settings.WS_MAX_FRAME_BYTES:
            logger.info("ws.frame_too_big", extra={"user_id": self.user.pk})
            await self.close_with(CLOSE_TOO_BIG)
            return
        verdict = self.limiter.check()
        if verdict == FrameRateLimiter.CLOSE:
            logger.warning("ws.flood_closed", extra={"user_id": self.user.pk})
            await self.close_with(CLOSE_POLICY_VIOLATION)
            return
        if verdict == FrameRateLimiter.LIMIT:
            await self.send_error("rate_limited", "Too many frames; slow down.", _peek(text_data))
            return

        message: dict = {}
        try:
            message = self.parse(text_data, bytes_data)
            reply = await self.dispatch_message(message)
        except FrameError as exc:
            await self.send_error(exc.code, exc.detail, message)
        except DomainError as exc:
            await self.send_error(exc.code, exc.detail, message)
        except ValidationError as exc:
            await self.send_error("invalid", "The data is invalid.", message, errors=exc.detail)
        except RedisError as exc:
            # Redis away or saturated: the client's fault no more than a bug
            # is, and worth a retry (REST answers 503 with the same code).
            logger.warning(
                "ws.unavailable",
                extra={
                    "user_id": self.user.pk,
                    "type": _message_type(message),
                    "error": type(exc).__name__,
                },
            )
            await self.send_error("unavailable", Unavailable.default_detail, message)
        except Exception:
            # A bug, not the client's fault: say so, keep the socket.
            logger.exception(
                "ws.handler_failed",
                extra={"user_id": self.user.pk, "type": _message_type(message)},
            )
            await self.send_error("internal", "Something went wrong on our side.", message)
        else:
            if reply is not None:
                await self.send_frame(reply, message)

    async def close_with(self, code: int) -> None:
        self.closing = True
        await self.close(code=code)

    @staticmethod
    def parse(text_data: str | None, bytes_data: bytes | None) -> dict:
        if text_data is None:
            raise FrameError("bad_json", "Frames must be JSON text, not binary.")
        try:
            message = json.loads(text_data, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise FrameError("bad_json", "The frame is not valid JSON.") from None
        if not isinstance(message, dict):
            raise FrameError("bad_json", "A frame must be a JSON object.")
        return message

    async def dispatch_message(self, message: dict) -> dict | None:
        handlers = self.handlers if self.handlers is not None else _handlers()
        type_ = message.get("type")
        if not isinstance(type_, str) or type_ not in handlers:
            raise FrameError("unknown_type", "Unknown or missing message type.")
        if type_ == "echo.message":
            return {"type": type_, "data": message.get("data")}
        data = message.get("data", {})
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise FrameError("invalid", "`data` must be a JSON object.")
        return await handlers[type_](self, data)

    async def auth_refresh(self, data: dict) -> dict:
        """`auth.refresh`: a newer access token of the same user keeps the
        socket past the old one's expiry. It is checked as the handshake
        checks a token; a refused one leaves the socket as it was."""
        raw = data.get("access")
        if not isinstance(raw, str) or not raw or len(raw) > MAX_ACCESS_TOKEN_CHARS:
            raise ValidationError({"access": ["An access token is required."]})
        found = await authenticate_access_token(raw)
        if found is None or found[0].pk != self.user.pk:
            raise FrameError(
                "not_authenticated",
                "That access token is invalid, expired, revoked or not this user's.",
            )
        self.credentials = self.credentials.refreshed(found[1])
        self.expire_at(self.credentials.expires_at)
        expires_at = datetime.datetime.fromtimestamp(self.credentials.expires_at, datetime.UTC)
        return events.frame(events.AUTH_REFRESHED, {"expires_at": expires_at.isoformat()})

    async def send_frame(self, payload: dict, request: dict | None = None) -> None:
        request_id = _request_id(request)
        if request_id is not None:
            payload = {**payload, "request_id": request_id}
        text = json.dumps(payload, default=str)
        if _too_big(text):
            # Daphne would fail the socket (1011) rather than send it. Only a
            # reply can get here (an echo of a near-limit frame grows by its
            # escapes and request_id); error frames are bounded below.
            await self.send_error("too_big", "The reply would exceed the frame limit.", request)
            return
        await self.send(text_data=text)

    async def send_error(
        self, code: str, detail: str, request: dict | None = None, errors: object = None
    ) -> None:
        """`{"code", "detail"}` plus, when the offending frame had them, its
        `type` and `request_id` (the latter also on the frame, as on replies)."""
        data: dict = {"code": code, "detail": detail}
        if errors is not None:
            # Always field -> messages, as a serializer reports them.
            errors = _bounded(errors)
            data["errors"] = errors if isinstance(errors, dict) else {"non_field_errors": errors}
        type_ = _message_type(request)
        if type_ is not None:
            data["type"] = type_
        request_id = _request_id(request)
        if request_id is not None:
            data["request_id"] = request_id
        payload = events.frame(events.ERROR, data)
        if request_id is not None:
            payload["request_id"] = request_id
        text = json.dumps(payload, default=str)
        if _too_big(text):
            # So many messages that even cut short they pass the limit.
            data.pop("errors", None)
            text = json.dumps(payload, default=str)
        await self.send(text_data=text)

    # Channel-layer handler: a push from any process, for this user.
    async def stream_push(self, message: dict) -> None:
        if self.closing or message.get("exclude") == self.channel_name:
            return
        text = json.dumps(message["frame"], default=str)
        if _too_big(text):
            # Never sent by the services (every field has a bound); were one
            # ever built, dropping it beats failing the socket (1011).
            logger.error("ws.push_too_big", extra={"user_id": self.user.pk})
            return
        await self.send(text_data=text)

    # Channel-layer handler: a control message from log-out or deactivation
    # (trips.sockets); the client sees only the close.
    async def stream_revoke(self, message: dict) -> None:
        if sockets.revoke_matches(message, self.credentials):
            await self.credentials_ended(CLOSE_CREDENTIALS_REVOKED)

    # Channel-layer handler: this process's subscription broke, so pushes may
    # have been lost. Closing tells the app to reconnect and re-read its trip.
    async def layer_lost(self, message: dict) -> None:
        if not self.closing:
            logger.info("ws.stream_lost", extra={"user_id": self.user.pk})
            await self.close_with(CLOSE_SERVICE_RESTART)

    # For handlers: run a service (sync ORM) off the event loop.
    @staticmethod
    async def call(func, /, **kwargs):
        return await database_sync_to_async(func)(**kwargs)


def _too_big(text: str) -> bool:
    """For text from json.dumps, which escapes every non-ASCII character: its
    length is its size in bytes, with no encoding pass on every push."""
    return len(text) > settings.WS_MAX_FRAME_BYTES


def _bounded(errors: object) -> object:
    """Validation messages, each cut to MAX_ERROR_MESSAGE_CHARS."""
    if isinstance(errors, dict):
        return {str(k)[:MAX_ERROR_MESSAGE_CHARS]: _bounded(v) for k, v in errors.items()}
    if isinstance(errors, list | tuple):
        return [_bounded(v) for v in errors]
    return str(errors)[:MAX_ERROR_MESSAGE_CHARS]


def _frame_size(text_data: str | None, bytes_data: bytes | None) -> int:
    if text_data is None:
        return len(bytes_data or b"")
    if len(text_data) > settings.WS_MAX_FRAME_BYTES:
        return len(text_data)  # at least one byte a character: too big already
    return len(text_data.encode("utf-8", "surrogatepass"))


def _peek(text_data: str | None) -> dict:
    """The frame as far as it parses, for the request_id of an error about it."""
    try:
        return TaxiConsumer.parse(text_data, None)
    except FrameError:
        return {}


def _message_type(request: dict | None) -> str | None:
    if not request or not isinstance(request.get("type"), str):
        return None
    return request["type"][:MAX_REQUEST_ID_CHARS]


def _request_id(request: dict | None) -> object:
    if not request:
        return None
    value = request.get("request_id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, str) and len(value) > MAX_REQUEST_ID_CHARS:
        return value[:MAX_REQUEST_ID_CHARS]
    return value
