"""Every write to a trip. Each runs in a transaction, under the trip's row lock,
moves the trip with a conditional update that checks what it changed, and
sends pushes and queues work only after commit."""

import logging
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from dispatch import offers, presence
from dispatch.models import Offer
from dispatch.queue import release_driver_on_commit, request_dispatch_on_commit
from trips import events
from trips.errors import (
    ActiveTripExists,
    Forbidden,
    InvalidTransition,
    NotFound,
    OfferNotAvailable,
)
from trips.models import Actor, Trip, User

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
    origin_channel: str | None = None,
) -> Trip:
    """A new REQUESTED trip, dispatched after commit. With an idempotency key
    the rider's earlier trip under that key is returned instead of a second."""
    if not rider.is_rider:
        raise Forbidden("Only riders can request trips.")
    if idempotency_key:
        earlier = _trip_by_idempotency_key(rider, idempotency_key)
        if earlier is not None:
            return earlier
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
            )
            events.push_on_commit(
                [rider.pk], events.trip_created(trip), exclude_channel=origin_channel
            )
            request_dispatch_on_commit(trip.pk)
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


def trip_accept(*, trip_id: UUID, driver: User, origin_channel: str | None = None) -> Trip:
    """The driver holding the trip's live offer takes it: REQUESTED -> STARTED."""
    with transaction.atomic():
        trip = _lock_trip(trip_id, missing=OfferNotAvailable)
        User.objects.select_for_update().filter(pk=driver.pk).first()
        now = timezone.now()
        taken = (
            Offer.live()
            .filter(trip=trip, driver=driver)
            .update(status=Offer.Status.ACCEPTED, closed_at=now, updated=now)
        )
        if taken != 1 or trip.status != Trip.Status.REQUESTED:
            raise OfferNotAvailable()
        try:
            with transaction.atomic():
                trip = _transition(
                    trip,
                    Trip.Status.STARTED,
                    Actor.OFFERED_DRIVER,
                    origin_channel=origin_channel,
                    driver=driver,
                )
        except IntegrityError:
            # The driver is already assigned to another active trip.
            raise OfferNotAvailable("You are already on another trip.") from None
        transaction.on_commit(
            lambda: presence.on_driver_assigned(driver.pk, trip_id=trip.pk, rider_id=trip.rider_id),
            robust=True,
        )
    logger.info("trip.accepted", extra={"trip_id": str(trip.pk), "driver_id": driver.pk})
    return trip


def trip_move(*, trip_id: UUID, user: User, status: str, origin_channel: str | None = None) -> Trip:
    """The assigned driver picks the rider up (IN_PROGRESS) or drops them off (COMPLETED)."""
    if status not in Trip.DRIVER_MOVES:
        # Accept, cancel and expiry have their own services and side effects.
        raise InvalidTransition(f"A trip cannot be moved to {status} this way.")
    with transaction.atomic():
        trip = _lock_trip(trip_id)
        actor = _actor_or_not_found(trip, user)
        trip = _transition(trip, status, actor, origin_channel=origin_channel)
        if trip.status == Trip.Status.COMPLETED:
            _release_driver_on_commit(trip)
    logger.info("trip.moved", extra={"trip_id": str(trip.pk), "status": status, "user_id": user.pk})
    return trip


def trip_cancel(
    *, trip_id: UUID, user: User, reason: str | None = None, origin_channel: str | None = None
) -> Trip:
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
            origin_channel=origin_channel,
        )
        offers.offer_revoke_live(trip=trip, reason=offers.REVOKED_CANCELED)
        _release_driver_on_commit(trip)
    logger.info("trip.canceled", extra={"trip_id": str(trip.pk), "user_id": user.pk})
    return trip


def trip_expire(*, trip_id: UUID, reason: str) -> Trip | None:
    """The service gives up on a REQUESTED trip. Returns None, changing nothing,
    when the trip has already moved on (safe to call twice, or late)."""
    with transaction.atomic():
        try:
            trip = Trip.objects.select_for_update().get(pk=trip_id)
        except Trip.DoesNotExist:
            return None
        if trip.status != Trip.Status.REQUESTED:
            return None
        offers.offer_revoke_live(trip=trip, reason=offers.REVOKED_EXPIRED)
        trip = _transition(trip, Trip.Status.EXPIRED, Actor.SERVICE, reason=reason)
    logger.info("trip.expired", extra={"trip_id": str(trip.pk), "reason": reason})
    return trip


def _lock_trip(trip_id: UUID, missing: type[Exception] = NotFound) -> Trip:
    try:
        # Only the trip row is locked; rider and driver come along for the push.
        trips = Trip.objects.select_related("rider", "driver")
        return trips.select_for_update(of=("self",)).get(pk=trip_id)
    except (Trip.DoesNotExist, ValidationError, ValueError, TypeError):
        raise missing() from None


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
    origin_channel: str | None = None,
    **fields,
) -> Trip:
    """One conditional write: the trip moves only from the status and version
    it was read at, and the version grows by one. Pushes follow the commit;
    `origin_channel`, the socket that asked (and gets the trip as its reply),
    is skipped, while every other socket of both participants hears it."""
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
    events.push_on_commit(
        events.trip_participants(trip), events.trip_updated(trip), exclude_channel=origin_channel
    )
    return trip


def _release_driver_on_commit(trip: Trip) -> None:
    if trip.driver_id is not None:
        release_driver_on_commit(trip.driver_id, trip_id=trip.pk)
