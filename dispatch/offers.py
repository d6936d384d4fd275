"""Every change of an offer's state, and the row locks they take.

An offer is opened by the dispatch loop (`offer_open`), taken by an accept
(`offer_take`, inside `trips.services.trip_accept`), declined by its driver,
expired at its deadline, or revoked when its trip ends or its driver goes
offline. Each runs under `lock`, which takes the row locks in the one order
every writer uses, the trip first and then the driver, so two writers never
wait on each other in a cycle; each moves the offer with a conditional update
and checks what it changed, with the database's unique constraints as the
last word (one live offer per trip and per driver, one offer per trip and
driver). Pushes, presence updates and queued work follow the commit.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import presence
from dispatch.matching import Candidate
from dispatch.models import Offer
from pricing import eta
from pricing.models import Vehicle
from taxi.infra.push import push, push_on_commit
from trips import events
from trips.errors import OfferNotAvailable
from trips.models import Trip, User
from workers import queue

logger = logging.getLogger(__name__)


# --- locks -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriverRow:
    """What the locked driver row says: on an active trip, holding a live
    offer, eligible for the trip's product (its vehicle serves it, or it has
    no vehicle and the product is DEFAULT_PRODUCT)."""

    assigned: bool
    offered: bool
    eligible: bool = True


@dataclass(frozen=True, slots=True)
class Locked:
    trip: Trip | None
    # Only when a driver was asked for and is an active driver.
    driver: DriverRow | None = None


def lock(trip_id: object, *, driver_id: int | None = None, with_people: bool = False) -> Locked:
    """Lock the trip's row, then (with `driver_id`) the driver's: the one
    order every writer takes them in. Call inside a transaction.

    `with_people`: the trip comes with its rider and driver, for a service
    that pushes the whole trip (only the trip's own row is locked; the
    dispatch loop's hot path reads neither). With no such trip (or no trip
    id at all) nothing is locked and `trip` is None."""
    try:
        trips = (
            Trip.objects.select_related("rider", "driver", "driver__vehicle")
            if with_people
            else Trip.objects
        )
        trip = trips.select_for_update(of=("self",)).filter(pk=trip_id).first()
    except (ValidationError, ValueError, TypeError):
        trip = None
    if trip is None or driver_id is None:
        return Locked(trip)
    assigned = Trip.objects.filter(driver_id=OuterRef("pk"), status__in=Trip.ASSIGNED)
    offered = Offer.objects.filter(driver_id=OuterRef("pk"), status=Offer.Status.PENDING)
    vehicle = Vehicle.objects.filter(driver_id=OuterRef("pk"))
    row = (
        User.objects.select_for_update(of=("self",))
        .filter(pk=driver_id, group=User.Group.DRIVER, is_active=True)
        .annotate(
            assigned=Exists(assigned),
            offered=Exists(offered),
            has_vehicle=Exists(vehicle),
            serves=Exists(vehicle.filter(products__code=trip.product)),
        )
        .values("assigned", "offered", "has_vehicle", "serves")
        .first()
    )
    if row is None:
        return Locked(trip)
    default = trip.product == settings.DEFAULT_PRODUCT
    eligible = row["serves"] or (default and not row["has_vehicle"])
    return Locked(trip, DriverRow(row["assigned"], row["offered"], eligible))


# --- open ------------------------------------------------------------------------


class TripSettled(Exception):
    """The trip needs no offer now: it moved on, holds one, or has had its last."""


def offer_open(
    *, trip_id: UUID, candidate: Candidate, pick_up: tuple[float, float] | None = None
) -> Offer | None:
    """Offer the trip to `candidate` if the trip still wants an offer and the
    driver is still free and eligible for its product, all checked under the
    locks. None when the driver turned out busy (Redis thought them free:
    corrected after commit) or not eligible; `TripSettled` when the trip no
    longer wants one. After commit the driver leaves the available set, hears
    `trip.offer`, and the deadline is queued. `pick_up` (lat, lng) lets a
    routing engine estimate the drive to it (`pickup_eta_s`)."""
    driver_id = candidate.driver_id
    timeout_s = settings.DISPATCH_OFFER_TIMEOUT_S
    # Before the locks: a routing engine may take up to ETA_TIMEOUT_MS.
    pickup_eta_s = _pickup_eta_s(candidate, pick_up)
    try:
        with transaction.atomic():
            locked = lock(trip_id, driver_id=driver_id)
            trip = locked.trip
            if trip is None or trip.status != Trip.Status.REQUESTED:
                raise TripSettled
            statuses = list(Offer.objects.filter(trip=trip).values_list("status", flat=True))
            if Offer.Status.PENDING in statuses or len(statuses) >= settings.DISPATCH_MAX_OFFERS:
                raise TripSettled
            if not _driver_free(driver_id, locked.driver):
                return None
            offer = Offer.objects.create(
                trip=trip,
                driver_id=driver_id,
                expires_at=timezone.now() + timedelta(seconds=timeout_s),
                distance_km=round(candidate.distance_km, 3),
                pickup_eta_s=pickup_eta_s,
            )
            transaction.on_commit(lambda: _announce(offer, trip, timeout_s), robust=True)
    except IntegrityError:
        # A concurrent reservation won the driver: the constraints decide.
        # Nothing else was written in this transaction, so nothing is lost.
        return None
    return offer


def _pickup_eta_s(candidate: Candidate, pick_up: tuple[float, float] | None) -> int:
    """The drive from the candidate to the pick-up: by the routing engine when
    one is configured and the driver's position is known, else by the
    straight-line estimator from the distance the search measured."""
    estimator = eta.current()
    if pick_up is not None and not isinstance(estimator, eta.StraightLine):
        try:
            here = presence.position(candidate.driver_id)
        except RedisError:
            here = None
        if here is not None:
            return round(estimator.route(here, pick_up).duration_s)
    return round(eta.straight_line().seconds(candidate.distance_km))


def _driver_free(driver_id: int, row: DriverRow | None) -> bool:
    """True for an active driver with no assigned trip and no live offer,
    eligible for the trip's product. When Redis thought them free, it is
    corrected after commit so they stop coming up in searches."""
    if row is None:
        return False
    if not row.eligible:
        # Redis's copy of their products is behind their vehicle (just edited,
        # or its write after the edit failed): corrected after commit, so the
        # search stops proposing them for this product.
        logger.info("dispatch.driver_not_eligible", extra={"driver_id": driver_id})
        transaction.on_commit(
            lambda: presence.set_products(driver_id, Vehicle.products_of(driver_id)), robust=True
        )
        return False
    if row.assigned:
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
    if row.offered:
        transaction.on_commit(lambda: presence.mark_offered(driver_id), robust=True)
        return False
    return True


def _announce(offer: Offer, trip: Trip, timeout_s: float) -> None:
    """After commit. A failure here is logged: the offer row stands, and the
    sweeper expires it if its deadline task was never queued."""
    presence.mark_offered(offer.driver_id, trip_id=trip.pk)
    push([offer.driver_id], events.trip_offer(offer, trip, timeout_s))
    queue.expire_offer_at_deadline(offer.pk, timeout_s)


# --- take, decline ---------------------------------------------------------------


def offer_take(*, trip: Trip, driver: User) -> int | None:
    """Inside `trip_accept`, under `lock(trip, driver)`: the driver's live
    offer for the trip becomes ACCEPTED; returns its `pickup_eta_s`.
    `OfferNotAvailable` when there is none (expired, declined, withdrawn,
    taken) or the trip moved on."""
    if trip.status != Trip.Status.REQUESTED:
        raise OfferNotAvailable()
    live = Offer.live().filter(trip=trip, driver=driver).values_list("pk", "pickup_eta_s").first()
    if live is None:
        raise OfferNotAvailable()
    now = timezone.now()
    # Conditional still: the deadline may pass between the read and the write.
    taken = (
        Offer.live()
        .filter(pk=live[0])
        .update(status=Offer.Status.ACCEPTED, closed_at=now, updated=now)
    )
    if taken != 1:
        raise OfferNotAvailable()
    return live[1]


def offer_decline(*, trip_id: UUID, driver: User) -> Offer:
    """The driver turns down their live offer for the trip. The driver is free
    again and the trip goes to its next candidate after commit; the rider,
    still waiting, hears nothing."""
    with transaction.atomic():
        trip = lock(trip_id).trip
        if trip is None:
            raise OfferNotAvailable()
        now = timezone.now()
        closed = (
            Offer.live()
            .filter(trip=trip, driver=driver)
            .update(status=Offer.Status.DECLINED, closed_at=now, updated=now)
        )
        if closed != 1:
            raise OfferNotAvailable()
        offer = Offer.objects.get(trip=trip, driver=driver)
        presence.release_on_commit(driver.pk)
        queue.dispatch_on_commit(trip.pk)
    logger.info(
        "dispatch.offer_declined",
        extra={"trip_id": str(trip.pk), "offer_id": str(offer.pk), "driver_id": driver.pk},
    )
    return offer


# --- expire, revoke --------------------------------------------------------------


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
        lock(offer.trip_id)
        now = timezone.now()
        closed = Offer.objects.filter(
            pk=offer.pk, status=Offer.Status.PENDING, expires_at__lte=now
        ).update(status=Offer.Status.EXPIRED, closed_at=now, updated=now)
        if closed != 1:
            return ExpiryResult()
        push_on_commit(
            [offer.driver_id], events.trip_offer_revoked(offer, events.RevokeReason.EXPIRED)
        )
        presence.release_on_commit(offer.driver_id)
        queue.dispatch_on_commit(offer.trip_id)
    logger.info(
        "dispatch.offer_expired",
        extra={
            "trip_id": str(offer.trip_id),
            "offer_id": str(offer.pk),
            "driver_id": offer.driver_id,
        },
    )
    return ExpiryResult(expired=True)


def offer_revoke_live(*, trip: Trip, reason: str, driver: User | None = None) -> Offer | None:
    """Under the trip's lock (the caller's transaction): withdraw the trip's
    live offer (`driver`'s only, if given), if any. The driver hears
    `trip.offer.revoked` and is free again after commit."""
    pending = Offer.objects.filter(trip=trip, status=Offer.Status.PENDING)
    offer = (pending if driver is None else pending.filter(driver=driver)).first()
    if offer is None:
        return None
    now = timezone.now()
    changed = Offer.objects.filter(pk=offer.pk, status=Offer.Status.PENDING).update(
        status=Offer.Status.REVOKED, closed_at=now, updated=now
    )
    if changed != 1:
        return None
    push_on_commit([offer.driver_id], events.trip_offer_revoked(offer, reason))
    presence.release_on_commit(offer.driver_id)
    logger.info(
        "dispatch.offer_revoked",
        extra={"trip_id": str(trip.pk), "offer_id": str(offer.pk), "reason": reason},
    )
    return offer
