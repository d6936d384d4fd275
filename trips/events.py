"""Everything pushed to sockets: stream names, message types, payload shapes.

A socket joins its user's own stream on connect; every push goes to the
streams of the users it concerns, never to a broadcast group. Pushes are
notifications sent after commit; the database stays the truth.
"""

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Coroutine, Iterable

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# Server -> client message types (PROTOCOL.md, "WebSocket").
TRIP_CREATED = "trip.created"
TRIP_UPDATED = "trip.updated"
TRIP_OFFER = "trip.offer"
TRIP_OFFER_REVOKED = "trip.offer.revoked"
# The reply to a driver's own `decline.trip` over the socket (REST answers 204).
TRIP_OFFER_DECLINED = "trip.offer.declined"
DRIVER_LOCATION = "driver.location"
DRIVER_STATUS = "driver.status"
# The reply to `auth.refresh`: the socket now lives until `expires_at`.
AUTH_REFRESHED = "auth.refreshed"
ERROR = "error"

# The channel-layer message type the consumer forwards to its client.
STREAM_PUSH = "stream.push"


def user_stream(user_id: int) -> str:
    return f"user.{user_id}"


def frame(type_: str, data: object) -> dict:
    return {"type": type_, "data": data}


def trip_data(trip) -> dict:
    from trips.serializers import TripSerializer

    return TripSerializer(trip).data


def _layer_message(payload: dict, exclude_channel: str | None) -> dict:
    return {"type": STREAM_PUSH, "frame": payload, "exclude": exclude_channel}


async def apush(user_ids: Iterable[int], payload: dict, *, exclude_channel: str | None = None):
    layer = get_channel_layer()
    message = _layer_message(payload, exclude_channel)
    for user_id in set(user_ids):
        await layer.group_send(user_stream(user_id), message)


class _PushLoop:
    """One event loop per process, in a daemon thread, for pushes from sync
    code (services after commit, Celery tasks). `async_to_sync` would start a
    new loop, and so open a new channel-layer connection, for every push:
    about 2.7 ms a push from a worker against 0.27 ms on this kept loop.
    Started on first use, and afresh in a forked child (a prefork worker
    inherits no threads)."""

    PUSH_TIMEOUT_S = 5.0

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="push-loop", daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def run(self, coroutine: Coroutine) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError("push() would block the event loop; await apush() instead")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            future.result(self.PUSH_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


_push_loop = _PushLoop()
os.register_at_fork(after_in_child=_push_loop._reset)


def push(user_ids: Iterable[int], payload: dict, *, exclude_channel: str | None = None) -> None:
    """Send now. A failed push is logged, never raised: the write it reports
    has committed, and clients re-read REST on a gap."""
    try:
        _push_loop.run(apush(list(user_ids), payload, exclude_channel=exclude_channel))
    except Exception:
        logger.exception("events.push_failed", extra={"type": payload.get("type")})


def push_on_commit(
    user_ids: Iterable[int], payload: dict, *, exclude_channel: str | None = None
) -> None:
    ids = list(user_ids)
    transaction.on_commit(lambda: push(ids, payload, exclude_channel=exclude_channel), robust=True)


def trip_updated(trip) -> dict:
    return frame(TRIP_UPDATED, trip_data(trip))


def trip_created(trip) -> dict:
    return frame(TRIP_CREATED, trip_data(trip))


def offer_declined(offer) -> dict:
    return frame(TRIP_OFFER_DECLINED, {"trip_id": str(offer.trip_id), "offer_id": str(offer.pk)})


def trip_participants(trip) -> list[int]:
    return [trip.rider_id] + ([trip.driver_id] if trip.driver_id else [])
