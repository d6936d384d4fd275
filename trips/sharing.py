"""A trip's public follow link (PROTOCOL.md Part 2, "After the ride").

The rider shares an unguessable link; whoever holds it sees the trip's
status, the driver's first name and car, where the car is and how far it is
from where it heads, and nothing about the rider. The link works while the
trip runs and SHARE_LINK_AFTER_END_S after it ends; then it names nothing,
like a token that never existed.
"""

import logging
import re
import secrets
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import presence
from pricing import eta
from trips.errors import Forbidden, NotFound, NotShareable
from trips.models import Actor, ShareLink, Trip, User
from trips.selectors import trip_get_for_user

logger = logging.getLogger(__name__)

# 32 random bytes: 43 URL-safe characters, beyond any guessing.
TOKEN_BYTES = 32
# What `secrets.token_urlsafe` writes; anything else names no link (and is
# never sent to the database: PostgreSQL refuses a NUL in a string).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def share_create(*, trip_id: UUID | str, user: User) -> ShareLink:
    """The rider's share link for their trip, made on the first call and the
    same on every later one. NotFound for anyone the trip is not the rider's
    or driver's; Forbidden for its assigned driver; NotShareable once the
    trip is final."""
    trip = trip_get_for_user(trip_id=trip_id, user=user)
    actor = trip.actor_for(user)
    if actor == Actor.ASSIGNED_DRIVER:
        raise Forbidden("Only the rider can share a trip.")
    if actor != Actor.RIDER:
        raise NotFound()
    if trip.status in Trip.FINAL:
        raise NotShareable()
    # One link per trip (a one-to-one row): two first calls at once agree on it.
    link, created = ShareLink.objects.get_or_create(
        trip=trip, defaults={"token": secrets.token_urlsafe(TOKEN_BYTES)}
    )
    link.trip = trip
    if created:
        logger.info("trip.shared", extra={"trip_id": str(trip.pk)})
    return link


def share_expires_at(trip: Trip) -> datetime | None:
    """None while the trip runs; SHARE_LINK_AFTER_END_S after it ended."""
    if trip.status not in Trip.FINAL:
        return None
    # A trip that ended before `ended_at` was kept ended at its last change.
    ended = trip.ended_at or trip.updated
    return ended + timedelta(seconds=settings.SHARE_LINK_AFTER_END_S)


def shared_view(*, token: str) -> dict:
    """What the link's holder sees: `{"status", "driver": {"first_name",
    "vehicle"} | None, "position": {"lat", "lng", "at"} | None, "eta_s"}`.
    The position (and so the ETA) only while a driver is on the way or
    driving. NotFound for an unknown or expired token."""
    link = None
    if _TOKEN.fullmatch(token):
        link = ShareLink.objects.select_related("trip__driver__vehicle").filter(token=token).first()
    if link is None:
        raise NotFound()
    trip = link.trip
    expires_at = share_expires_at(trip)
    if expires_at is not None and timezone.now() >= expires_at:
        raise NotFound()
    driver = trip.driver
    position = None
    if driver is not None and trip.status in Trip.ASSIGNED:
        position = _last_position(driver.pk)
    return {
        "status": trip.status,
        "driver": None
        if driver is None
        else {"first_name": driver.first_name, "vehicle": getattr(driver, "vehicle", None)},
        "position": position,
        "eta_s": _eta_s(position, trip.driver_target()),
    }


def _last_position(driver_id: int) -> dict | None:
    """The driver's last accepted position and when they were last heard
    from. A Redis failure hides the position rather than the page."""
    try:
        seen = presence.position_seen(driver_id)
    except RedisError:
        logger.warning("trip.shared_position_unavailable", extra={"driver_id": driver_id})
        return None
    if seen is None:
        return None
    (lat, lng), at = seen
    return {"lat": lat, "lng": lng, "at": at}


def _eta_s(position: dict | None, target: tuple[float, float] | None) -> int | None:
    """Seconds to the pick-up (or, once the rider is in, the drop-off) by the
    straight-line estimator, as `driver.location` tells the rider."""
    if position is None or target is None:
        return None
    route = eta.straight_line().route((position["lat"], position["lng"]), target)
    return round(route.duration_s)
