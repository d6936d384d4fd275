"""The `/taxi/` WebSocket: frames in, handlers called, pushes forwarded.

The consumer owns the frame discipline (size, JSON, rate, errors); what each
message type does lives in a handler table, one per app (`trips.ws_handlers`,
`dispatch.ws_handlers`). Every client frame is untrusted: a bad one gets an
`error` frame and the socket stays open.
"""

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.exceptions import ValidationError

from trips import events
from trips.errors import DomainError, Unavailable
from trips.ws_handlers import HANDLERS as TRIP_HANDLERS

logger = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
# Flood control: frames beyond the token bucket are strikes, forgiven at
# FLOOD_FORGIVE_PER_S; more than FLOOD_STRIKES outstanding closes the socket.
# So a burst past the bucket only earns `rate_limited` errors, while a client
# that keeps sending faster than WS_RATE_PER_S + FLOOD_FORGIVE_PER_S (60 a
# second by default) is closed: at 100 a second after about 3 s. (Resetting
# the count on every allowed frame instead would never close a flood slow
# enough to let a token through every few frames.)
FLOOD_STRIKES = 50
FLOOD_FORGIVE_PER_S = 10.0
MAX_REQUEST_ID_CHARS = 128


class FrameError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        self.code, self.detail = code, detail
        super().__init__(detail)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


@functools.cache
def _handlers() -> dict:
    from dispatch.ws_handlers import HANDLERS as DISPATCH_HANDLERS

    return {"echo.message": None, **TRIP_HANDLERS, **DISPATCH_HANDLERS}


class FrameRateLimiter:
    """A token bucket (`rate` frames a second on average, bursts up to
    `burst`) plus a strike count for the frames it refuses."""

    ALLOW, LIMIT, CLOSE = "allow", "limit", "close"

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        strikes_allowed: float = FLOOD_STRIKES,
        forgive_per_s: float = FLOOD_FORGIVE_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst = rate, burst
        self.strikes_allowed, self.forgive_per_s = strikes_allowed, forgive_per_s
        self.clock = clock
        self.tokens, self.strikes, self.stamp = float(burst), 0.0, clock()

    def check(self) -> str:
        now = self.clock()
        elapsed = max(0.0, now - self.stamp)
        self.stamp = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.strikes = max(0.0, self.strikes - elapsed * self.forgive_per_s)
        if self.tokens >= 1:
            self.tokens -= 1
            return self.ALLOW
        self.strikes += 1
        return self.CLOSE if self.strikes > self.strikes_allowed else self.LIMIT


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
        self.stream = events.user_stream(self.user.pk)
        self.limiter = FrameRateLimiter(settings.WS_RATE_PER_S, settings.WS_RATE_BURST)
        self.closing = False
        try:
            await self.channel_layer.group_add(self.stream, self.channel_name)
        except (RedisError, OSError) as exc:
            # Without the channel layer no push could reach this socket:
            # refuse the handshake (403) and let the app retry, never a 500.
            logger.warning("ws.stream_unavailable", extra={"error": type(exc).__name__})
            del self.stream
            await self.close()
            return
        await self.accept()
        logger.info("ws.connected", extra={"user_id": self.user.pk})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "stream"):
            with contextlib.suppress(RedisError, OSError):  # its entry expires by itself
                await self.channel_layer.group_discard(self.stream, self.channel_name)
            logger.info("ws.disconnected", extra={"user_id": self.user.pk, "code": code})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            # Frames already queued when we closed: the socket is done with them.
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

    async def send_frame(self, payload: dict, request: dict | None = None) -> None:
        request_id = _request_id(request)
        if request_id is not None:
            payload = {**payload, "request_id": request_id}
        await self.send(text_data=json.dumps(payload, default=str))

    async def send_error(
        self, code: str, detail: str, request: dict | None = None, errors: object = None
    ) -> None:
        """`{"code", "detail"}` plus, when the offending frame had them, its
        `type` and `request_id` (the latter also on the frame, as on replies)."""
        data: dict = {"code": code, "detail": detail}
        if errors is not None:
            # Always field -> messages, as a serializer reports them.
            data["errors"] = errors if isinstance(errors, dict) else {"non_field_errors": errors}
        type_ = _message_type(request)
        if type_ is not None:
            data["type"] = type_
        request_id = _request_id(request)
        if request_id is not None:
            data["request_id"] = request_id
        await self.send_frame(events.frame(events.ERROR, data), request)

    # Channel-layer handler: a push from any process, for this user.
    async def stream_push(self, message: dict) -> None:
        if self.closing or message.get("exclude") == self.channel_name:
            return
        await self.send(text_data=json.dumps(message["frame"], default=str))

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
