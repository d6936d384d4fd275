"""Driver presence services: online, offline, positions, the silent-driver sweep.

The database says what a driver is doing (on a trip, holding an offer);
Redis (`dispatch.presence`) says where they are and whether they may be
offered a trip. A position never touches the database.
"""

import logging

from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError

from dispatch import keys, presence
from dispatch.models import Offer
from dispatch.offers import lock, offer_revoke_live
from pricing import eta
from pricing.models import Vehicle
from taxi.infra.push import apush, push
from trips import events
from trips.errors import Forbidden
from trips.models import Trip, User
from workers import queue

logger = logging.getLogger(__name__)


def _require_driver(user: User) -> None:
    if not user.is_driver:
        raise Forbidden("Only drivers can do that.")


def driver_go_online(*, driver: User, lat: float, lng: float) -> None:
    """The driver can receive offers from (lat, lng) on. A driver on a trip,
    or holding an offer, is online but not available until it ends."""
    _require_driver(driver)
    trip = (
        Trip.objects.filter(driver=driver, status__in=Trip.ASSIGNED)
        .only("pk", "rider_id", "status", *Trip.TARGET_FIELDS)
        .first()
    )
    if trip is not None:
        state = keys.STATE_ON_TRIP
    elif Offer.objects.filter(driver=driver, status=Offer.Status.PENDING).exists():
        state = keys.STATE_OFFERED
    else:
        state = keys.STATE_FREE
    # A Redis failure here is `unavailable` at the edge (503, or the error frame).
    presence.set_online(
        driver.pk,
        lat=lat,
        lng=lng,
        state=state,
        trip_id=trip and trip.pk,
        rider_id=trip and trip.rider_id,
        target=trip and trip.driver_target(),
        products=presence.products_field(Vehicle.products_of(driver.pk)),
    )
    push([driver.pk], events.driver_status("online"), is_result=True)
    if state == keys.STATE_FREE:
        presence.wake_waiting(driver.pk)
    logger.info("dispatch.driver_online", extra={"driver_id": driver.pk, "state": state})


def _eta_s(lat: float, lng: float, forward: presence.Forward) -> int | None:
    """Seconds from here to where the driver heads, by the straight-line
    estimator: a position is forwarded up to four times a second per driver,
    too often to ask a routing engine each time."""
    if forward.target is None:
        return None
    return round(eta.straight_line().route((lat, lng), forward.target).duration_s)


def driver_go_offline(*, driver: User) -> None:
    """No new offers; a trip in progress continues. A live offer the driver
    holds is withdrawn (`trip.offer.revoked`, "canceled") and the trip moves
    on to its next candidate."""
    _require_driver(driver)
    presence.set_offline(driver.pk)
    held = Offer.objects.filter(driver=driver, status=Offer.Status.PENDING).first()
    if held is not None:
        with transaction.atomic():
            trip = lock(held.trip_id).trip
            # Under the trip's lock: only this driver's offer, if still open.
            revoked = trip is not None and offer_revoke_live(
                trip=trip, driver=driver, reason=events.RevokeReason.CANCELED
            )
            if revoked:
                queue.dispatch_on_commit(trip.pk)
    push([driver.pk], events.driver_status("offline"), is_result=True)
    logger.info("dispatch.driver_offline", extra={"driver_id": driver.pk})


def driver_report_location(
    *, driver: User, lat: float, lng: float, heading: float | None = None
) -> None:
    """A position from a sync caller (REST): one Redis round trip, and on to
    the rider when the driver is on a trip."""
    _require_driver(driver)
    forward = presence.ping(driver.pk, lat=lat, lng=lng)
    if forward is not None:
        frame = events.driver_location(
            forward.trip_id, lat, lng, heading, _eta_s(lat, lng, forward)
        )
        push([forward.rider_id], frame)


async def driver_report_location_async(
    *, driver: User, lat: float, lng: float, heading: float | None = None
) -> None:
    """The same from the event loop (a socket's `update.location`): no ORM."""
    _require_driver(driver)
    forward = await presence.aping(driver.pk, lat=lat, lng=lng)
    if forward is not None:
        try:
            frame = events.driver_location(
                forward.trip_id, lat, lng, heading, _eta_s(lat, lng, forward)
            )
            await apush([forward.rider_id], frame)
        except RedisError as exc:
            # The position is stored; only this live update is lost, and the
            # driver's next one (seconds away) replaces it.
            logger.warning("dispatch.location_not_forwarded", extra={"error": type(exc).__name__})


def drivers_sweep_silent(*, batch: int | None = None) -> list[int]:
    """Drivers silent for DRIVER_PRESENCE_TTL_S stop being offered trips (a
    ping brings them back; a trip they are on is kept)."""
    removed = presence.sweep_silent(batch=batch or settings.DISPATCH_SWEEP_BATCH)
    if removed:
        logger.info("dispatch.silent_drivers_removed", extra={"count": len(removed)})
    return removed
