"""The dispatch loop (DESIGN.md, "The dispatch loop") and driver presence services.

`trip_dispatch` offers a REQUESTED trip to its next driver; `offer_expire`
closes an offer nobody answered; the sweeps repair what lost tasks, dead
workers and silent phones leave behind. Each is safe to run twice, late, or
beside another copy of itself: state moves only under the trip's row lock, by
conditional updates, with the database's unique constraints as the last word
(one live offer per trip and per driver, one offer per trip and driver).

Pushes, Redis presence updates and task queueing all happen after commit.
Closing an offer on decline is `dispatch.offers.offer_decline`; withdrawing
one on cancel is `dispatch.offers.offer_revoke_live`.
"""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from dispatch import keys, offers, presence
from dispatch.matching import Candidate
from dispatch.models import Offer
from dispatch.queue import release_driver_on_commit, request_dispatch_on_commit
from trips import events
from trips.errors import Forbidden
from trips.models import Trip, User
from trips.services import trip_expire

logger = logging.getLogger(__name__)

# Candidates tried per dispatch run before the trip waits for the sweeper.
MAX_RESERVE_ATTEMPTS = 20
# The sweeper leaves an overdue offer to its own expire task for this long.
OVERDUE_GRACE = timedelta(seconds=2)
# ... and a trip without a live offer to the task already queued for it.
REDISPATCH_AFTER = timedelta(seconds=5)


# --- drivers ---------------------------------------------------------------------


def _require_driver(user: User) -> None:
    if not user.is_driver:
        raise Forbidden("Only drivers can do that.")


def driver_go_online(
    *, driver: User, lat: float, lng: float, origin_channel: str | None = None
) -> None:
    """The driver can receive offers from (lat, lng) on. A driver on a trip,
    or holding an offer, is online but not available until it ends."""
    _require_driver(driver)
    trip = (
        Trip.objects.filter(driver=driver, status__in=Trip.ASSIGNED)
        .values("pk", "rider_id")
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
        trip_id=trip and trip["pk"],
        rider_id=trip and trip["rider_id"],
    )
    events.push([driver.pk], driver_status_frame("online"), exclude_channel=origin_channel)
    logger.info("dispatch.driver_online", extra={"driver_id": driver.pk, "state": state})


def driver_go_offline(*, driver: User, origin_channel: str | None = None) -> None:
    """No new offers; a trip in progress continues. A live offer the driver
    holds is withdrawn (`trip.offer.revoked`, "canceled") and the trip moves
    on to its next candidate."""
    _require_driver(driver)
    presence.set_offline(driver.pk)
    held = Offer.objects.filter(driver=driver, status=Offer.Status.PENDING).first()
    if held is not None:
        with transaction.atomic():
            trip = Trip.objects.select_for_update().filter(pk=held.trip_id).first()
            # Under the trip's lock: only this driver's offer, if still open.
            revoked = trip is not None and offers.offer_revoke_live(
                trip=trip, driver=driver, reason=offers.REVOKED_CANCELED
            )
            if revoked:
                request_dispatch_on_commit(trip.pk)
    events.push([driver.pk], driver_status_frame("offline"), exclude_channel=origin_channel)
    logger.info("dispatch.driver_offline", extra={"driver_id": driver.pk})


def driver_report_location(
    *, driver: User, lat: float, lng: float, heading: float | None = None
) -> None:
    """A position from a sync caller (REST): one Redis round trip, and on to
    the rider when the driver is on a trip."""
    _require_driver(driver)
    forward = presence.ping(driver.pk, lat=lat, lng=lng)
    if forward is not None:
        events.push([forward.rider_id], driver_location_frame(forward, lat, lng, heading))


async def driver_report_location_async(
    *, driver: User, lat: float, lng: float, heading: float | None = None
) -> None:
    """The same from the event loop (a socket's `update.location`): no ORM."""
    _require_driver(driver)
    forward = await presence.aping(driver.pk, lat=lat, lng=lng)
    if forward is not None:
        try:
            await events.apush(
                [forward.rider_id], driver_location_frame(forward, lat, lng, heading)
            )
        except RedisError as exc:
            # The position is stored; only this live update is lost, and the
            # driver's next one (seconds away) replaces it.
            logger.warning("dispatch.location_not_forwarded", extra={"error": type(exc).__name__})


def driver_status_frame(status: str) -> dict:
    return events.frame(events.DRIVER_STATUS, {"status": status})


def driver_location_frame(
    forward: presence.Forward, lat: float, lng: float, heading: float | None
) -> dict:
    return events.frame(
        events.DRIVER_LOCATION,
        {
            "trip_id": forward.trip_id,
            "lat": lat,
            "lng": lng,
            "heading": heading,
            "at": timezone.now().isoformat(),
        },
    )


# --- the loop --------------------------------------------------------------------


class _TripSettled(Exception):
    """The trip needs no offer from this run: it moved on, or holds one."""


def trip_dispatch(*, trip_id: UUID) -> Offer | None:
    """Offer the trip to the nearest available driver not yet offered it.

    Quietly does nothing unless the trip is REQUESTED without a live offer.
    After DISPATCH_MAX_OFFERS offers, or with nobody available in range, the
    trip becomes EXPIRED (`no_drivers`). Returns the offer made, if any.
    """
    started = time.perf_counter()
    trip = Trip.objects.filter(pk=trip_id).first()
    if trip is None or trip.status != Trip.Status.REQUESTED:
        return None
    earlier = list(Offer.objects.filter(trip=trip).values_list("driver_id", "status"))
    if any(status == Offer.Status.PENDING for _, status in earlier):
        return None
    if len(earlier) >= settings.DISPATCH_MAX_OFFERS:
        _expire_no_drivers(trip, offers_made=len(earlier))
        return None

    candidates = presence.nearest_available(
        lat=trip.pick_up_lat, lng=trip.pick_up_lng, exclude={driver for driver, _ in earlier}
    )
    for attempt, candidate in enumerate(candidates):
        if attempt >= MAX_RESERVE_ATTEMPTS:
            # Everyone tried was busy elsewhere: the sweeper tries again soon.
            logger.warning("dispatch.reserve_exhausted", extra={"trip_id": str(trip.pk)})
            return None
        try:
            offer = _reserve(trip.pk, candidate)
        except _TripSettled:
            return None
        if offer is not None:
            logger.info(
                "dispatch.offered",
                extra={
                    "trip_id": str(trip.pk),
                    "offer_id": str(offer.pk),
                    "driver_id": offer.driver_id,
                    "distance_km": offer.distance_km,
                    "offers_made": len(earlier) + 1,
                    "dispatch_ms": round((time.perf_counter() - started) * 1000, 1),
                    "since_request_ms": round(
                        (offer.created - trip.created).total_seconds() * 1000, 1
                    ),
                },
            )
            return offer
    _expire_no_drivers(trip, offers_made=len(earlier))
    return None


def _expire_no_drivers(trip: Trip, *, offers_made: int) -> None:
    if trip_expire(trip_id=trip.pk, reason=Trip.Reason.NO_DRIVERS) is not None:
        logger.info(
            "dispatch.no_drivers", extra={"trip_id": str(trip.pk), "offers_made": offers_made}
        )


def _reserve(trip_id: UUID, candidate: Candidate) -> Offer | None:
    """Write the offer if the trip still wants one and the driver is still
    free, both checked under row locks (trip first, then the driver, the
    order `trip_accept` takes them in). None when the driver turned out busy;
    _TripSettled when the trip no longer needs this run."""
    driver_id = candidate.driver_id
    timeout_s = settings.DISPATCH_OFFER_TIMEOUT_S
    try:
        with transaction.atomic():
            trip = Trip.objects.select_for_update().filter(pk=trip_id).first()
            if trip is None or trip.status != Trip.Status.REQUESTED:
                raise _TripSettled
            statuses = list(Offer.objects.filter(trip=trip).values_list("status", flat=True))
            if Offer.Status.PENDING in statuses or len(statuses) >= settings.DISPATCH_MAX_OFFERS:
                raise _TripSettled
            if not _lock_free_driver(driver_id):
                return None
            offer = Offer.objects.create(
                trip=trip,
                driver_id=driver_id,
                expires_at=timezone.now() + timedelta(seconds=timeout_s),
                distance_km=round(candidate.distance_km, 3),
            )
            transaction.on_commit(lambda: _announce_offer(offer, trip, timeout_s), robust=True)
    except IntegrityError:
        # A concurrent reservation won the driver: the constraints decide.
        # Nothing else was written in this transaction, so nothing is lost.
        return None
    return offer


def _lock_free_driver(driver_id: int) -> bool:
    """Lock the driver's row; True when they are an active driver with no
    assigned trip and no live offer. When Redis thought them free, it is
    corrected after commit so they stop coming up in searches."""
    assigned = Trip.objects.filter(driver_id=OuterRef("pk"), status__in=Trip.ASSIGNED)
    offered = Offer.objects.filter(driver_id=OuterRef("pk"), status=Offer.Status.PENDING)
    driver = (
        User.objects.select_for_update(of=("self",))
        .filter(pk=driver_id, group=User.Group.DRIVER, is_active=True)
        .annotate(assigned=Exists(assigned), offered=Exists(offered))
        .values("assigned", "offered")
        .first()
    )
    if driver is None:
        return False
    if driver["assigned"]:
        trip = (
            Trip.objects.filter(driver_id=driver_id, status__in=Trip.ASSIGNED)
            .values("pk", "rider_id")
            .first()
        )
        if trip is not None:
            transaction.on_commit(
                lambda: presence.on_driver_assigned(
                    driver_id, trip_id=trip["pk"], rider_id=trip["rider_id"]
                ),
                robust=True,
            )
        return False
    if driver["offered"]:
        transaction.on_commit(lambda: presence.mark_offered(driver_id), robust=True)
        return False
    return True


def _announce_offer(offer: Offer, trip: Trip, timeout_s: float) -> None:
    """After commit: the driver leaves the available set, hears the offer, and
    its deadline is queued. A failure here is logged: the offer row stands,
    and the sweeper expires it if its deadline task was never queued."""
    from workers.tasks import expire_offer

    presence.mark_offered(offer.driver_id)
    events.push([offer.driver_id], offer_frame(offer, trip, timeout_s))
    try:
        expire_offer.apply_async((str(offer.pk),), countdown=timeout_s)
    except (KombuError, RedisError, OSError):
        logger.exception("dispatch.expire_queue_failed", extra={"offer_id": str(offer.pk)})


def offer_frame(offer: Offer, trip: Trip, timeout_s: float) -> dict:
    """`trip.offer`: what the driver needs to decide, and no rider identity.
    `distance_km` is the straight line from the driver to the pick-up."""
    return events.frame(
        events.TRIP_OFFER,
        {
            "offer_id": str(offer.pk),
            "expires_at": offer.expires_at.isoformat(),
            "timeout_s": timeout_s,
            "trip": {
                "id": str(trip.pk),
                "pick_up_address": trip.pick_up_address,
                "pick_up_lat": trip.pick_up_lat,
                "pick_up_lng": trip.pick_up_lng,
                "drop_off_address": trip.drop_off_address,
                "drop_off_lat": trip.drop_off_lat,
                "drop_off_lng": trip.drop_off_lng,
                "distance_km": offer.distance_km,
            },
        },
    )


@dataclass(frozen=True)
class ExpiryResult:
    """What `offer_expire` did: `expired`, or `retry_in_s` seconds early."""

    expired: bool = False
    retry_in_s: float | None = None


def offer_expire(*, offer_id: UUID) -> ExpiryResult:
    """Close an offer whose deadline passed unanswered: the driver hears
    `trip.offer.revoked` ("expired"), is free again, and the trip goes to its
    next candidate. Too early (a clock ahead of ours), it says how long to
    wait; an offer already closed is left alone."""
    offer = Offer.objects.filter(pk=offer_id).first()
    if offer is None or offer.status != Offer.Status.PENDING:
        return ExpiryResult()
    remaining = (offer.expires_at - timezone.now()).total_seconds()
    if remaining > 0:
        return ExpiryResult(retry_in_s=remaining)
    with transaction.atomic():
        # The trip's lock orders this against accept, decline and cancel.
        Trip.objects.select_for_update().filter(pk=offer.trip_id).first()
        now = timezone.now()
        closed = Offer.objects.filter(
            pk=offer.pk, status=Offer.Status.PENDING, expires_at__lte=now
        ).update(status=Offer.Status.EXPIRED, closed_at=now, updated=now)
        if closed != 1:
            return ExpiryResult()
        events.push_on_commit(
            [offer.driver_id], offers.offer_revoked_frame(offer, offers.REVOKED_EXPIRED)
        )
        release_driver_on_commit(offer.driver_id)
        request_dispatch_on_commit(offer.trip_id)
    logger.info(
        "dispatch.offer_expired",
        extra={
            "trip_id": str(offer.trip_id),
            "offer_id": str(offer.pk),
            "driver_id": offer.driver_id,
        },
    )
    return ExpiryResult(expired=True)


# --- sweeps ----------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    offers_expired: int = 0
    trips_redispatched: int = 0


def dispatch_sweep(*, batch: int | None = None) -> SweepResult:
    """Repair what lost tasks leave: offers past their deadline whose expire
    task never ran are expired, and REQUESTED trips left without a live offer
    are queued for dispatch again. At most `batch` of each per run."""
    batch = batch or settings.DISPATCH_SWEEP_BATCH
    now = timezone.now()
    overdue = list(
        Offer.objects.filter(status=Offer.Status.PENDING, expires_at__lt=now - OVERDUE_GRACE)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:batch]
    )
    expired = sum(offer_expire(offer_id=offer_id).expired for offer_id in overdue)

    settled_since = now - REDISPATCH_AFTER
    live_offer = Offer.objects.filter(trip=OuterRef("pk"), status=Offer.Status.PENDING)
    recent_offer = Offer.objects.filter(trip=OuterRef("pk"), closed_at__gt=settled_since)
    stranded = list(
        Trip.objects.filter(status=Trip.Status.REQUESTED, created__lt=settled_since)
        .exclude(Exists(live_offer))
        .exclude(Exists(recent_offer))
        .order_by("created")
        .values_list("pk", flat=True)[:batch]
    )
    for trip_id in stranded:
        request_dispatch_on_commit(trip_id)
    if expired or stranded:
        logger.info(
            "dispatch.swept",
            extra={"offers_expired": expired, "trips_redispatched": len(stranded)},
        )
    return SweepResult(offers_expired=expired, trips_redispatched=len(stranded))


def trips_expire_stale(*, batch: int | None = None) -> int:
    """REQUESTED trips older than TRIP_STALE_AFTER_S become EXPIRED (`stale`),
    their live offers withdrawn. Returns how many."""
    batch = batch or settings.DISPATCH_SWEEP_BATCH
    cutoff = timezone.now() - timedelta(seconds=settings.TRIP_STALE_AFTER_S)
    stale = list(
        Trip.objects.filter(status=Trip.Status.REQUESTED, created__lt=cutoff)
        .order_by("created")
        .values_list("pk", flat=True)[:batch]
    )
    expired = sum(
        trip_expire(trip_id=trip_id, reason=Trip.Reason.STALE) is not None for trip_id in stale
    )
    if expired:
        logger.info("dispatch.stale_trips_expired", extra={"count": expired})
    return expired


def drivers_sweep_silent(*, batch: int | None = None) -> list[int]:
    """Drivers silent for DRIVER_PRESENCE_TTL_S stop being offered trips (a
    ping brings them back; a trip they are on is kept)."""
    removed = presence.sweep_silent(batch=batch or settings.DISPATCH_SWEEP_BATCH)
    if removed:
        logger.info("dispatch.silent_drivers_removed", extra={"count": len(removed)})
    return removed
