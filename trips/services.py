"""Every write to a trip: the trip lifecycle. Each runs in a transaction,
under the row locks `dispatch.offers.lock` takes (the trip, then the driver),
moves the trip with a conditional update that checks what it changed, and
sends pushes and queues work only after commit. What happens to the trip's
offer meanwhile is `dispatch.offers`'s to write."""

import logging
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import presence
from dispatch.models import Offer
from dispatch.offers import lock, offer_revoke_live, offer_take
from pricing import surge
from pricing.quotes import final_fare, trip_price
from taxi.infra.push import push_on_commit
from trips import events
from trips.errors import (
    ActiveTripExists,
    Forbidden,
    InvalidTransition,
    NotFound,
    OfferNotAvailable,
)
from trips.models import Actor, Trip, User
from workers import queue

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 255


def trip_create(
    *,
    rider: User,
    pick_up_address: str,
    pick_up_lat: float,
    pick_up_lng: float,
    drop_off_address: str,
    drop_off_lat: float | None = None,
    drop_off_lng: float | None = None,
    idempotency_key: str | None = None,
    product: str | None = None,
    quote_id: UUID | str | None = None,
) -> Trip:
    """A new REQUESTED trip, dispatched after commit. With an idempotency key
    the rider's earlier trip under that key is returned instead of a second.
    Its price: the quote's with `quote_id`, else an estimate for `product`
    (DEFAULT_PRODUCT when none) when it has a drop-off (`pricing.quotes`)."""
    if not rider.is_rider:
        raise Forbidden("Only riders can request trips.")
    if idempotency_key:
        earlier = _trip_by_idempotency_key(rider, idempotency_key)
        if earlier is not None:
            return earlier
    drop_off = None if drop_off_lat is None else (drop_off_lat, drop_off_lng)
    # Before the transaction: a routing engine may take up to ETA_TIMEOUT_MS.
    price = trip_price(
        rider=rider,
        pick_up=(pick_up_lat, pick_up_lng),
        drop_off=drop_off,
        product=product,
        quote_id=quote_id,
    )
    try:
        with transaction.atomic():
            trip = Trip.objects.create(
                rider=rider,
                pick_up_address=pick_up_address,
                pick_up_lat=pick_up_lat,
                pick_up_lng=pick_up_lng,
                drop_off_address=drop_off_address,
                drop_off_lat=drop_off_lat,
                drop_off_lng=drop_off_lng,
                idempotency_key=idempotency_key or None,
                product=price.product,
                rate_card=price.rate_card,
                quote=price.quote,
                fare=price.fare,
                distance_m=price.distance_m,
                duration_s=price.duration_s,
                pickup_eta_s=price.pickup_eta_s,
            )
            push_on_commit([rider.pk], events.trip_created(trip), is_result=True)
            queue.dispatch_on_commit(trip.pk)
            transaction.on_commit(
                lambda: surge.record_request(pick_up_lat, pick_up_lng), robust=True
            )
    except IntegrityError:
        # Either a retry raced its first attempt, or the rider already rides.
        if idempotency_key:
            earlier = _trip_by_idempotency_key(rider, idempotency_key)
            if earlier is not None:
                return earlier
        raise ActiveTripExists() from None
    logger.info("trip.created", extra={"trip_id": str(trip.pk), "rider_id": rider.pk})
    return trip


def _trip_by_idempotency_key(rider: User, key: str) -> Trip | None:
    return Trip.objects.filter(rider=rider, idempotency_key=key).first()


def trip_accept(*, trip_id: UUID, driver: User) -> Trip:
    """The driver holding the trip's live offer takes it: REQUESTED -> STARTED."""
    with transaction.atomic():
        trip = lock(trip_id, driver_id=driver.pk, with_people=True).trip
        if trip is None:
            raise OfferNotAvailable()
        pickup_eta_s = offer_take(trip=trip, driver=driver)
        try:
            with transaction.atomic():
                trip = _transition(
                    trip,
                    Trip.Status.STARTED,
                    Actor.OFFERED_DRIVER,
                    driver=driver,
                    pickup_eta_s=pickup_eta_s,
                )
        except IntegrityError:
            # The driver is already assigned to another active trip.
            raise OfferNotAvailable("You are already on another trip.") from None
        transaction.on_commit(
            lambda: presence.on_driver_assigned(
                driver.pk, trip_id=trip.pk, rider_id=trip.rider_id, target=trip.driver_target()
            ),
            robust=True,
        )
    logger.info("trip.accepted", extra={"trip_id": str(trip.pk), "driver_id": driver.pk})
    return trip


def trip_move(*, trip_id: UUID, user: User, status: str) -> Trip:
    """The assigned driver picks the rider up (IN_PROGRESS) or drops them off (COMPLETED)."""
    if status not in Trip.DRIVER_MOVES:
        # Accept, cancel and expiry have their own services and side effects.
        raise InvalidTransition(f"A trip cannot be moved to {status} this way.")
    # Where the driver ends, for the fare of a trip without a drop-off: read
    # before the locks (one Redis call; a missing position keeps the estimate).
    end = _position_or_none(user.pk) if status == Trip.Status.COMPLETED else None
    with transaction.atomic():
        trip = _lock_trip(trip_id)
        actor = _actor_or_not_found(trip, user)
        now = timezone.now()
        if status == Trip.Status.IN_PROGRESS:
            trip = _transition(trip, status, actor, picked_up_at=now)
            transaction.on_commit(
                lambda: presence.set_target(
                    trip.driver_id, trip_id=trip.pk, target=trip.driver_target()
                ),
                robust=True,
            )
        else:
            fare = (
                final_fare(trip, completed_at=now, end=end)
                if Trip.can_transition(trip.status, status, actor)
                else trip.fare
            )
            trip = _transition(trip, status, actor, fare=fare)
        if trip.status == Trip.Status.COMPLETED:
            _release_driver_on_commit(trip)
    logger.info("trip.moved", extra={"trip_id": str(trip.pk), "status": status, "user_id": user.pk})
    return trip


def trip_cancel(*, trip_id: UUID, user: User, reason: str | None = None) -> Trip:
    """The rider (before completion) or the assigned driver (before pick-up) cancels."""
    with transaction.atomic():
        trip = _lock_trip(trip_id)
        actor = _actor_or_not_found(trip, user)
        default_reason = "canceled_by_rider" if actor == Actor.RIDER else "canceled_by_driver"
        trip = _transition(
            trip,
            Trip.Status.CANCELED,
            actor,
            reason=(reason or default_reason)[:MAX_REASON_CHARS],
        )
        offer_revoke_live(trip=trip, reason=events.RevokeReason.CANCELED)
        _release_driver_on_commit(trip)
    logger.info("trip.canceled", extra={"trip_id": str(trip.pk), "user_id": user.pk})
    return trip


def trip_expire(*, trip_id: UUID, reason: str) -> Trip | None:
    """The service gives up on a REQUESTED trip. Returns None, changing nothing,
    when the trip has already moved on (safe to call twice, or late)."""
    with transaction.atomic():
        trip = lock(trip_id, with_people=True).trip
        if trip is None or trip.status != Trip.Status.REQUESTED:
            return None
        offer_revoke_live(trip=trip, reason=events.RevokeReason.EXPIRED)
        trip = _transition(trip, Trip.Status.EXPIRED, Actor.SERVICE, reason=reason)
    logger.info("trip.expired", extra={"trip_id": str(trip.pk), "reason": reason})
    return trip


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


def _position_or_none(driver_id: int) -> tuple[float, float] | None:
    try:
        return presence.position(driver_id)
    except RedisError:
        return None


def _lock_trip(trip_id: UUID) -> Trip:
    trip = lock(trip_id, with_people=True).trip
    if trip is None:
        raise NotFound()
    return trip


def _actor_or_not_found(trip: Trip, user: User) -> str:
    actor = trip.actor_for(user)
    if actor is not None:
        return actor
    # A driver who was offered the trip may read it, so it is no secret to
    # them: they hear that this move is not theirs to make.
    if Offer.live().filter(trip=trip, driver=user).exists():
        raise InvalidTransition("Only the rider or the assigned driver can do that.")
    raise NotFound()


def _transition(
    trip: Trip,
    to_status: str,
    actor: str,
    *,
    reason: str | None = None,
    **fields,
) -> Trip:
    """One conditional write: the trip moves only from the status and version
    it was read at, and the version grows by one. `trip.updated` follows the
    commit, to both participants; it is the result of the request, so the
    socket that asked (and gets the trip as its reply) is skipped."""
    if not Trip.can_transition(trip.status, to_status, actor):
        raise InvalidTransition(f"A trip that is {trip.status} cannot become {to_status} that way.")
    now = timezone.now()
    changed = Trip.objects.filter(pk=trip.pk, status=trip.status, version=trip.version).update(
        status=to_status,
        status_reason=reason,
        version=F("version") + 1,
        updated=now,
        **fields,
    )
    if changed != 1:
        raise InvalidTransition("The trip changed meanwhile; read it again.")
    # The row now holds exactly this (the update matched the version read):
    # no need to read it back.
    trip.version += 1
    trip.status, trip.status_reason, trip.updated = to_status, reason, now
    for name, value in fields.items():
        setattr(trip, name, value)
    push_on_commit(events.trip_participants(trip), events.trip_updated(trip), is_result=True)
    return trip


def _release_driver_on_commit(trip: Trip) -> None:
    if trip.driver_id is not None:
        presence.release_on_commit(trip.driver_id, trip_id=trip.pk)
