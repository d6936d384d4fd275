"""The dispatch loop (DESIGN.md, "The dispatch loop"): offer waiting trips to
drivers, as the matching policy proposes, until each holds an offer, runs out
of candidates, or has had its last offer.

Safe to run twice, late, or beside another copy of itself: every offer is
written by `dispatch.offers.offer_open` under row locks, which re-checks that
the trip still wants one and the driver is still free.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import policies, presence
from dispatch.models import Offer
from dispatch.offers import TripSettled, offer_open
from dispatch.policies import WaitingTrip
from trips.models import Trip
from trips.services import trip_expire

logger = logging.getLogger(__name__)

# Proposals tried per trip and run before the trip waits for the sweeper.
MAX_RESERVE_ATTEMPTS = 20


def trip_offer_next(*, trip_id: UUID) -> Offer | None:
    """Offer the trip to its next driver (the policy's choice) not yet offered it.

    Quietly does nothing unless the trip is REQUESTED without a live offer.
    After DISPATCH_MAX_OFFERS offers the trip becomes EXPIRED (`no_drivers`).
    With nobody available in range it waits for supply until its search runs
    out (`search_until`: PROTOCOL.md Part 2, "Waiting for supply"), then
    expires likewise. Returns the offer made, if any.

    Under a windowed policy (`batch`) it offers nothing: the matcher offers
    the trip in its next window (`trips_offer_window`).
    """
    if policies.is_windowed(policies.current()):
        return None
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
    waiting = WaitingTrip(
        trip_id=trip.pk,
        lat=trip.pick_up_lat,
        lng=trip.pick_up_lng,
        exclude=frozenset(driver for driver, _ in earlier),
        product=trip.product,
    )
    return _match([(waiting, trip, len(earlier))], started).get(trip.pk)


def _candidates(trip: WaitingTrip):
    return presence.nearest_available(
        lat=trip.lat, lng=trip.lng, exclude=trip.exclude, product=trip.product
    )


def _match(waiting: list[tuple[WaitingTrip, Trip, int]], started: float) -> dict[UUID, Offer]:
    """Reserve the policy's proposals in order; expire the trips it had
    nobody for. Returns the offers made, by trip."""
    trips = {entry.trip_id: (trip, offers_made) for entry, trip, offers_made in waiting}
    open_ = set(trips)
    attempts = dict.fromkeys(trips, 0)
    made: dict[UUID, Offer] = {}
    proposals = policies.current().assign([entry for entry, _, _ in waiting], _candidates)
    for proposal in proposals:
        trip_id = proposal.trip_id
        if trip_id not in open_:
            continue
        if attempts[trip_id] >= MAX_RESERVE_ATTEMPTS:
            # Everyone tried was busy elsewhere: the sweeper tries again soon.
            logger.warning("dispatch.reserve_exhausted", extra={"trip_id": str(trip_id)})
            open_.discard(trip_id)
        else:
            attempts[trip_id] += 1
            try:
                trip, _ = trips[trip_id]
                offer = offer_open(
                    trip_id=trip_id,
                    candidate=proposal.candidate,
                    pick_up=(trip.pick_up_lat, trip.pick_up_lng),
                )
            except TripSettled:
                open_.discard(trip_id)
            else:
                if offer is not None:
                    made[trip_id] = offer
                    open_.discard(trip_id)
                    trip, offers_made = trips[trip_id]
                    _log_offered(offer, trip, offers_made + 1, started)
        if not open_:
            return made
    for trip_id in open_:
        # The policy had nobody (left) to propose for this trip.
        trip, offers_made = trips[trip_id]
        _wait_or_expire(trip, offers_made=offers_made)
    return made


def _wait_or_expire(trip: Trip, *, offers_made: int) -> None:
    """Nobody free in range: the trip waits for the first eligible driver who
    becomes free near it (`presence.wake_waiting`), until its search runs out."""
    if trip.search_until is None or trip.search_until <= timezone.now():
        _expire_no_drivers(trip, offers_made=offers_made)
        return
    try:
        presence.wait(trip.pk, lat=trip.pick_up_lat, lng=trip.pick_up_lng, product=trip.product)
    except RedisError:
        # Not woken, then: the repair sweep tries it again shortly.
        logger.exception("dispatch.wait_failed", extra={"trip_id": str(trip.pk)})
        return
    logger.info(
        "dispatch.waiting_for_supply",
        extra={"trip_id": str(trip.pk), "offers_made": offers_made},
    )


def _log_offered(offer: Offer, trip: Trip, offers_made: int, started: float) -> None:
    logger.info(
        "dispatch.offered",
        extra={
            "trip_id": str(trip.pk),
            "offer_id": str(offer.pk),
            "driver_id": offer.driver_id,
            "distance_km": offer.distance_km,
            "offers_made": offers_made,
            "dispatch_ms": round((time.perf_counter() - started) * 1000, 1),
            "since_request_ms": round((offer.created - trip.created).total_seconds() * 1000, 1),
        },
    )


def _expire_no_drivers(trip: Trip, *, offers_made: int) -> bool:
    if trip_expire(trip_id=trip.pk, reason=Trip.Reason.NO_DRIVERS) is None:
        return False
    logger.info("dispatch.no_drivers", extra={"trip_id": str(trip.pk), "offers_made": offers_made})
    return True


# --- windowed policies (batch) ---------------------------------------------------


@dataclass(frozen=True)
class WindowResult:
    """What one window did: trips considered, offers made, trips expired,
    proposals that found their driver busy (those trips wait), and how long
    the whole window and the policy's part of it took (ms)."""

    waiting: int = 0
    offered: int = 0
    expired: int = 0
    busy: int = 0
    policy_ms: float = 0.0
    took_ms: float = 0.0


def trips_offer_window(*, limit: int | None = None) -> WindowResult:
    """One window of a windowed policy: every REQUESTED trip without a live
    offer is put to the policy at once, and its proposals are reserved
    through `offer_open`, as a dispatch task reserves nearest's.

    A trip the policy left out, or whose driver turned out busy, waits for the
    next window. A trip that has had DISPATCH_MAX_OFFERS offers, or has waited
    DISPATCH_SEARCH_TIMEOUT_S since its request, expires (`no_drivers`). A
    declined or expired offer's trip comes back here without that driver.
    Safe beside a copy of itself (the locks in `offer_open` decide)."""
    started = time.perf_counter()
    now = timezone.now()
    window_s = settings.DISPATCH_BATCH_WINDOW_MS / 1000
    live = Offer.objects.filter(trip=OuterRef("pk"), status=Offer.Status.PENDING)
    trips = list(
        Trip.objects.filter(status=Trip.Status.REQUESTED)
        .exclude(Exists(live))
        .order_by("created")[: limit or settings.DISPATCH_SWEEP_BATCH * 5]
    )
    if not trips:
        return WindowResult()
    earlier: dict[UUID, list[tuple[int, datetime | None]]] = {trip.pk: [] for trip in trips}
    for trip_id, driver_id, closed_at in Offer.objects.filter(trip__in=trips).values_list(
        "trip_id", "driver_id", "closed_at"
    ):
        earlier[trip_id].append((driver_id, closed_at))
    search_timeout_s = settings.DISPATCH_SEARCH_TIMEOUT_S
    expired, waiting = 0, []
    by_id = {}
    for trip in trips:
        offers = earlier[trip.pk]
        # The search's end: its own (a scheduled trip's time, a driver's
        # cancel restart it), or DISPATCH_SEARCH_TIMEOUT_S after the request.
        search_until = trip.search_until or trip.created + timedelta(seconds=search_timeout_s)
        if len(offers) >= settings.DISPATCH_MAX_OFFERS or search_until <= now:
            expired += _expire_no_drivers(trip, offers_made=len(offers))
            continue
        since = max([trip.created, *(closed for _, closed in offers if closed is not None)])
        by_id[trip.pk] = (trip, len(offers))
        waiting.append(
            WaitingTrip(
                trip_id=trip.pk,
                lat=trip.pick_up_lat,
                lng=trip.pick_up_lng,
                exclude=frozenset(driver for driver, _ in offers),
                product=trip.product,
                waited_windows=max(0, int((now - since).total_seconds() // window_s)),
            )
        )
    asked = time.perf_counter()
    proposals = list(policies.current().assign(waiting, _candidates))
    policy_ms = (time.perf_counter() - asked) * 1000
    offered = busy = 0
    done: set[UUID] = set()
    for proposal in proposals:
        if proposal.trip_id in done:
            continue
        done.add(proposal.trip_id)
        try:
            trip, _ = by_id[proposal.trip_id]
            offer = offer_open(
                trip_id=proposal.trip_id,
                candidate=proposal.candidate,
                pick_up=(trip.pick_up_lat, trip.pick_up_lng),
            )
        except TripSettled:
            continue
        if offer is None:
            busy += 1
            continue
        offered += 1
        trip, offers_made = by_id[proposal.trip_id]
        _log_offered(offer, trip, offers_made + 1, started)
    result = WindowResult(
        waiting=len(waiting),
        offered=offered,
        expired=expired,
        busy=busy,
        policy_ms=round(policy_ms, 2),
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    logger.info("dispatch.window", extra=result.__dict__)
    return result
