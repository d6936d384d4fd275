"""Everything pushed to sockets: stream names, message types, payload shapes.

A socket joins its user's own stream on connect; every push goes to the
streams of the users it concerns, never to a broadcast group. Pushes are
notifications sent after commit; the database stays the truth.
"""

import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# Server -> client message types (PROTOCOL.md, "WebSocket").
TRIP_CREATED = "trip.created"
TRIP_UPDATED = "trip.updated"
TRIP_OFFER = "trip.offer"
TRIP_OFFER_REVOKED = "trip.offer.revoked"
DRIVER_LOCATION = "driver.location"
DRIVER_STATUS = "driver.status"
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


def push(user_ids: Iterable[int], payload: dict, *, exclude_channel: str | None = None) -> None:
    """Send now. A failed push is logged, never raised: the write it reports
    has committed, and clients re-read REST on a gap."""
    try:
        async_to_sync(apush)(list(user_ids), payload, exclude_channel=exclude_channel)
    except Exception:
        logger.exception("events.push_failed", extra={"type": payload.get("type")})


def push_on_commit(
    user_ids: Iterable[int], payload: dict, *, exclude_channel: str | None = None
) -> None:
    ids = list(user_ids)
    transaction.on_commit(lambda: push(ids, payload, exclude_channel=exclude_channel))


def trip_updated(trip) -> dict:
    return frame(TRIP_UPDATED, trip_data(trip))


def trip_created(trip) -> dict:
    return frame(TRIP_CREATED, trip_data(trip))


def trip_participants(trip) -> list[int]:
    return [trip.rider_id] + ([trip.driver_id] if trip.driver_id else [])
