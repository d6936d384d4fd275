"""The `/taxi/` WebSocket: frames in, handlers called, pushes forwarded.

The consumer owns the frame discipline (size, JSON, rate, errors); what each
message type does lives in a handler table, one per app (`trips.ws_handlers`,
`dispatch.ws_handlers`). Every client frame is untrusted: a bad one gets an
`error` frame and the socket stays open.
"""

import json
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from rest_framework.exceptions import ValidationError

from trips import events
from trips.errors import DomainError
from trips.ws_handlers import HANDLERS as TRIP_HANDLERS

logger = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
# Rate-limited frames tolerated in one flood before the socket is closed.
FLOOD_STRIKES = 50
MAX_REQUEST_ID_CHARS = 128


class FrameError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        self.code, self.detail = code, detail
        super().__init__(detail)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _handlers() -> dict:
    from dispatch.ws_handlers import HANDLERS as DISPATCH_HANDLERS

    return {"echo.message": None, **TRIP_HANDLERS, **DISPATCH_HANDLERS}


class TokenBucket:
    """`rate` frames a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class TaxiConsumer(AsyncWebsocketConsumer):
    handlers: dict | None = None

    async def connect(self) -> None:
        self.user = self.scope["user"]
        self.stream = events.user_stream(self.user.pk)
        self.bucket = TokenBucket(settings.WS_RATE_PER_S, settings.WS_RATE_BURST)
        self.strikes = 0
        await self.channel_layer.group_add(self.stream, self.channel_name)
        await self.accept()
        logger.info("ws.connected", extra={"user_id": self.user.pk})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "stream"):
            await self.channel_layer.group_discard(self.stream, self.channel_name)
            logger.info("ws.disconnected", extra={"user_id": self.user.pk, "code": code})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raw = text_data if text_data is not None else bytes_data or b""
        size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
        if size > settings.WS_MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        if not self.bucket.take():
            self.strikes += 1
            if self.strikes > FLOOD_STRIKES:
                logger.warning("ws.flood_closed", extra={"user_id": self.user.pk})
                await self.close(code=CLOSE_POLICY_VIOLATION)
                return
            await self.send_error("rate_limited", "Too many frames; slow down.")
            return
        self.strikes = 0

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
        else:
            if reply is not None:
                await self.send_frame(reply, message)

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
        data: dict = {"code": code, "detail": detail}
        if errors is not None:
            data["errors"] = errors
        payload = events.frame(events.ERROR, data)
        if request and isinstance(request.get("type"), str):
            payload["data"]["type"] = request["type"][:MAX_REQUEST_ID_CHARS]
        await self.send_frame(payload, request)

    # Channel-layer handler: a push from any process, for this user.
    async def stream_push(self, message: dict) -> None:
        if message.get("exclude") == self.channel_name:
            return
        await self.send(text_data=json.dumps(message["frame"], default=str))

    # For handlers: run a service (sync ORM) off the event loop.
    @staticmethod
    async def call(func, /, **kwargs):
        return await database_sync_to_async(func)(**kwargs)


def _request_id(request: dict | None) -> object:
    if not request:
        return None
    value = request.get("request_id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, str) and len(value) > MAX_REQUEST_ID_CHARS:
        return value[:MAX_REQUEST_ID_CHARS]
    return value
