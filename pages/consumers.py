"""`/ops/stream/`: the staff console's live feed.

One ticker per web process (per event loop) reads the city once every
OPS_TICK_S while at least one staff socket is open, whatever the number of
sockets: the cost to Redis and the database does not grow with the audience.
Each socket gets a snapshot first, then one delta per tick; the JSON of each
is built once and sent to every socket, in parts when it is big (FRAME_BYTES).
A socket that fell behind (its previous frames were still being written when
the next tick came) gets a fresh snapshot instead of a delta it could not apply.

Independent of the rider and driver socket (`trips.consumers`, whose close
codes it shares): no handlers, nothing read from the client; the channel
layer only for the user's control messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from pages import ops_state
from taxi.infra import push
from trips import sockets
from trips.events import CLOSE_CREDENTIALS_REVOKED, CLOSE_SERVICE_RESTART, CLOSE_TOKEN_EXPIRED

logger = logging.getLogger(__name__)

SNAPSHOT = "ops.snapshot"
DELTA = "ops.delta"
PART = "ops.part"
# Largest frame sent: daphne refuses to send a message over its limit (the
# Procfile's 64 KiB), so a big snapshot or delta goes out in parts.
FRAME_BYTES = 60_000
# Layers the console draws only when the service has them (PROTOCOL.md Part 2):
# surge by cell, which the console reads from /api/ops/surge/ (pricing.ops).
FEATURES = {"surge": True}
# The match figures are a database aggregate: refreshed less often than positions.
STATS_EVERY_TICKS = 5


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _frame(type_: str, data: dict) -> str:
    return json.dumps({"type": type_, "data": data}, separators=(",", ":"))


def _frames(type_: str, head: dict, changes: dict) -> list[str]:
    """One frame when it fits in FRAME_BYTES; otherwise a head frame (without
    the driver and trip rows, naming how many `parts` follow) and the rows in
    `ops.part` frames of the same tick. ASCII JSON: characters are bytes."""
    whole = _frame(type_, {**head, **changes})
    if len(whole) <= FRAME_BYTES:
        return [whole]
    rows = {key: changes[key] for key in ("drivers", "trips") if key in changes}
    rest = {key: value for key, value in changes.items() if key not in rows}
    parts = ops_state.split(rows, FRAME_BYTES - 100)
    first = _frame(type_, {**head, **rest, "parts": len(parts)})
    return [first, *(_frame(PART, {"tick": head["tick"], **part}) for part in parts)]


@database_sync_to_async
def _read_database(ended_ids: list[str], with_stats: bool):
    trips = ops_state.read_trips(ended_ids)
    return trips, ops_state.match_stats() if with_stats else None


class CityTicker:
    """Reads the city every `interval` seconds for its subscribers."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.subscribers: set[OpsStreamConsumer] = set()
        self.tick = 0
        self.city = ops_state.City()
        self.stats: dict = {"match_p50_s": None, "acceptance": None, "offers_answered": 0}
        self.ended_at: dict[str, float] = {}
        self.delta_frames: list[str] = []
        self._snapshot_frames: list[str] = []
        self._task: asyncio.Task | None = None

    def subscribe(self, consumer: OpsStreamConsumer) -> None:
        self.subscribers.add(consumer)
        if self.tick:
            consumer.wake.set()  # the city as last read, at once
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unsubscribe(self, consumer: OpsStreamConsumer) -> None:
        self.subscribers.discard(consumer)

    def frames_after(self, sent_tick: int) -> list[str]:
        """What a socket that has the city as of `sent_tick` needs now."""
        if sent_tick == self.tick - 1 and self.delta_frames:
            return self.delta_frames
        if not self._snapshot_frames:
            head = {"at": _now(), "tick": self.tick, "features": FEATURES}
            self._snapshot_frames = _frames(SNAPSHOT, head, ops_state.snapshot(self.city))
        return self._snapshot_frames

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.subscribers:
            began = loop.time()
            try:
                await self.advance(loop.time())
            except (RedisError, OSError, DatabaseError) as exc:
                # The console shows the last city it had; the next tick retries.
                logger.warning("ops.read_failed", extra={"error": type(exc).__name__})
            except Exception:
                logger.exception("ops.tick_failed")
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - began)))
        self.tick, self.city, self.delta_frames, self._snapshot_frames = 0, ops_state.City(), [], []

    async def advance(self, now: float) -> None:
        before = self.city
        # Trips that left the open set since the last tick are read once for
        # their final status, then kept on the map for a while.
        ended_before = {
            trip_id: trip for trip_id, trip in before.trips.items() if trip_id in self.ended_at
        }
        kept = {
            trip_id: trip
            for trip_id, trip in ended_before.items()
            if now - self.ended_at[trip_id] < ops_state.ENDED_SHOWN_S
        }
        with_stats = self.tick % STATS_EVERY_TICKS == 0
        was_open = [trip_id for trip_id in before.trips if trip_id not in ended_before]
        (open_trips, ended, requests), stats = await _read_database(was_open, with_stats)
        ended = {trip_id: trip for trip_id, trip in ended.items() if trip_id not in open_trips}
        for trip_id in ended:
            self.ended_at[trip_id] = now
        trips = {**kept, **ended, **open_trips}
        self.ended_at = {trip_id: at for trip_id, at in self.ended_at.items() if trip_id in trips}
        also = {trip["driver"] for trip in open_trips.values() if trip["driver"] is not None}
        drivers = await ops_state.read_drivers(also)
        if stats is not None:
            self.stats = stats
        city = ops_state.City(
            drivers=drivers, trips=trips, counters=ops_state.counters(drivers, requests, self.stats)
        )
        delta = ops_state.diff(before, city)
        self.tick += 1
        self.city = city
        self._snapshot_frames = []
        # Sent every tick even when nothing moved: the console shows how
        # fresh its picture is.
        self.delta_frames = _frames(DELTA, {"at": _now(), "tick": self.tick}, delta)
        for consumer in self.subscribers:
            consumer.wake.set()


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CityTicker] = (
    weakref.WeakKeyDictionary()
)


def ticker() -> CityTicker:
    loop = asyncio.get_running_loop()
    if loop not in _tickers:
        _tickers[loop] = CityTicker(settings.OPS_TICK_S)
    return _tickers[loop]


class OpsStreamConsumer(AsyncWebsocketConsumer):
    """Staff only: anyone else is refused at the handshake (403).

    Like every socket here, it ends with the credentials that opened it
    (PROTOCOL.md, "WebSocket, extended"): it listens on its user's own stream
    for the control message of a log-out or a deactivation (trips.sockets),
    and closes at an access token's expiry when one opened it."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not (user.is_active and user.is_staff):
            logger.info("ops.refused", extra={"user_id": getattr(user, "pk", None)})
            await self.close()
            return
        self.credentials = self.scope.get("credentials") or sockets.Credentials()
        try:
            await self.channel_layer.group_add(push.user_stream(user.pk), self.channel_name)
        except (RedisError, OSError) as exc:
            logger.warning("ops.stream_unavailable", extra={"error": type(exc).__name__})
            await self.close()
            return
        self.joined = True
        await self.accept()
        self.wake = asyncio.Event()
        self.sent_tick = -1
        loop = asyncio.get_running_loop()
        self.sender = loop.create_task(self._send_frames())
        if self.credentials.expires_at is not None:
            self.expiry = loop.create_task(self._close_at(self.credentials.expires_at))
        ticker().subscribe(self)
        logger.info("ops.connected", extra={"user_id": user.pk})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            self.joined = False
            with contextlib.suppress(RedisError, OSError):  # its entry expires by itself
                await self.channel_layer.group_discard(
                    push.user_stream(self.scope["user"].pk), self.channel_name
                )
        for name in ("expiry", "sender"):
            task = getattr(self, name, None)
            if task is None:
                continue
            if name == "sender":
                ticker().unsubscribe(self)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _close_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self.close(code=CLOSE_TOKEN_EXPIRED[0], reason=CLOSE_TOKEN_EXPIRED[1])

    # Channel-layer handlers for the user's own stream.
    async def stream_revoke(self, message: dict) -> None:
        if sockets.revoke_matches(message, self.credentials):
            await self.close(code=CLOSE_CREDENTIALS_REVOKED[0], reason=CLOSE_CREDENTIALS_REVOKED[1])

    async def stream_push(self, message: dict) -> None:
        """The user's rider or driver pushes belong on /taxi/, not here."""

    async def layer_lost(self, message: dict) -> None:
        # A revocation may have been missed: the console reconnects, and the
        # handshake checks the session again.
        await self.close(code=CLOSE_SERVICE_RESTART)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The stream is one-way; whatever a client sends is ignored."""

    async def _send_frames(self) -> None:
        source = ticker()
        while True:
            await self.wake.wait()
            self.wake.clear()
            if source.tick == self.sent_tick:
                continue
            frames = source.frames_after(self.sent_tick)
            self.sent_tick = source.tick
            for text in frames:
                await self.send(text_data=text)
