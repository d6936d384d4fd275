"""Every write to a trip: the trip lifecycle. Each runs in a transaction,
under the row locks `dispatch.offers.lock` takes (the trip, then the driver),
moves the trip with a conditional update that checks what it changed, records
the move in the trip's history in that same transaction, and sends pushes and
queues work only after commit. What happens to the trip's offer meanwhile is
`dispatch.offers`'s to write."""

import hmac
import logging
import secrets
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import presence
from dispatch.models import Offer
from dispatch.offers import lock, offer_revoke_live, offer_take
from notifications.services import notify_rider_if_away_on_commit
from pricing import surge
from pricing.quotes import final_fare, trip_price
from taxi.infra.push import push_on_commit
from trips import cancellation, events
from trips.errors import (
    ActiveTripExists,
    Forbidden,
    InvalidInput,
    InvalidPin,
    InvalidTransition,
    NotFound,
    OfferNotAvailable,
    PinLocked,
    TooEarly,
    TooManyScheduled,
)
from trips.models import Actor, Trip, TripEvent, User
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
    scheduled_for: datetime | None = None,
) -> Trip:
    """A new REQUESTED trip, dispatched after commit; with `scheduled_for`, a
    SCHEDULED one, dispatched SCHEDULE_DISPATCH_LEAD_S before that time
    (`trips_promote_due`). With an idempotency key the rider's earlier trip
    under that key is returned instead of a second. Its price: the quote's
    with `quote_id`, else an estimate for `product` (DEFAULT_PRODUCT when
    none) when it has a drop-off (`pricing.quotes`)."""
    if not rider.is_rider:
        raise Forbidden("Only riders can request trips.")
    if idempotency_key:
        earlier = _trip_by_idempotency_key(rider, idempotency_key)
        if earlier is not None:
            return earlier
    now = timezone.now()
    if scheduled_for is not None:
        _check_schedule(scheduled_for, now)
    drop_off = None if drop_off_lat is None else (drop_off_lat, drop_off_lng)
    # Before the transaction: a routing engine may take up to ETA_TIMEOUT_MS.
    price = trip_price(
        rider=rider,
        pick_up=(pick_up_lat, pick_up_lng),
        drop_off=drop_off,
        product=product,
        quote_id=quote_id,
    )
    status = Trip.Status.REQUESTED if scheduled_for is None else Trip.Status.SCHEDULED
    search_from = now if scheduled_for is None else scheduled_for
    try:
        with transaction.atomic():
            if scheduled_for is not None:
                _check_scheduled_count(rider)
            trip = Trip.objects.create(
                status=status,
                scheduled_for=scheduled_for,
                search_until=search_from + timedelta(seconds=settings.DISPATCH_SEARCH_TIMEOUT_S),
                pin=_new_pin(),
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
            _record(trip, None, status, Actor.RIDER, user=rider)
            push_on_commit([rider.pk], events.trip_created(trip), is_result=True)
            if status == Trip.Status.REQUESTED:
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


def _new_pin() -> str:
    return f"{secrets.randbelow(10_000):04d}"


def _check_schedule(scheduled_for: datetime, now: datetime) -> None:
    ahead = (scheduled_for - now).total_seconds()
    if not settings.SCHEDULE_MIN_AHEAD_S <= ahead <= settings.SCHEDULE_MAX_AHEAD_S:
        low = round(settings.SCHEDULE_MIN_AHEAD_S / 60)
        high = round(settings.SCHEDULE_MAX_AHEAD_S / 86400, 1)
        raise InvalidInput(f"scheduled_for must lie between {low} minutes and {high:g} days ahead.")


def _check_scheduled_count(rider: User) -> None:
    """Under the rider's row lock, so two bookings at once cannot both pass."""
    User.objects.select_for_update().filter(pk=rider.pk).values_list("pk").first()
    waiting = Trip.objects.filter(rider=rider, status=Trip.Status.SCHEDULED).count()
    if waiting >= settings.SCHEDULE_MAX_PER_RIDER:
        raise TooManyScheduled()


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
                    accepted_at=timezone.now(),
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


def trip_move(*, trip_id: UUID, user: User, status: str, pin: str | None = None) -> Trip:
    """The assigned driver is at the pick-up (ARRIVED), picks the rider up
    (IN_PROGRESS: with RIDE_PIN_REQUIRED, only with the rider's `pin`) or
    drops them off (COMPLETED)."""
    if status not in Trip.DRIVER_MOVES:
        # Accept, cancel and expiry have their own services and side effects.
        raise InvalidTransition(f"A trip cannot be moved to {status} this way.")
    # Where the driver ends, for the fare of a trip without a drop-off: read
    # before the locks (one Redis call; a missing position keeps the estimate).
    end = _position_or_none(user.pk) if status == Trip.Status.COMPLETED else None
    with transaction.atomic():
        trip = _lock_trip(trip_id)
        actor = _actor_or_not_found(trip, user)
        # A wrong PIN is counted in this transaction, which commits; the
        # error follows the commit.
        wrong_pin = _pin_check(trip, status, actor, pin)
        if wrong_pin is None:
            trip = _move(trip, status, actor, end=end)
    if wrong_pin is not None:
        raise wrong_pin
    logger.info("trip.moved", extra={"trip_id": str(trip.pk), "status": status, "user_id": user.pk})
    return trip


def _move(trip: Trip, status: str, actor: str, *, end: tuple[float, float] | None) -> Trip:
    """Inside `trip_move`, past the PIN: the driver's move and what follows
    it (the new target for the rider's ETA; the final fare, and the driver
    free again, on COMPLETED)."""
    now = timezone.now()
    if status == Trip.Status.ARRIVED:
        return _transition(trip, status, actor, arrived_at=now)
    if status == Trip.Status.IN_PROGRESS:
        trip = _transition(trip, status, actor, picked_up_at=now)
        transaction.on_commit(
            lambda: presence.set_target(
                trip.driver_id, trip_id=trip.pk, target=trip.driver_target()
            ),
            robust=True,
        )
        return trip
    fare = (
        final_fare(trip, completed_at=now, end=end)
        if Trip.can_transition(trip.status, status, actor)
        else trip.fare
    )
    trip = _transition(trip, status, actor, fare=fare, ended_at=now)
    _release_driver_on_commit(trip)
    return trip


def _pin_check(trip: Trip, status: str, actor: str, pin: str | None) -> Exception | None:
    """With RIDE_PIN_REQUIRED: a locked PIN stops every move; a move to
    IN_PROGRESS needs the rider's PIN, and a wrong one is counted (the
    RIDE_PIN_MAX_ATTEMPTS-th locks it). Returns the error to raise once the
    count is committed, or None to go on."""
    if not settings.RIDE_PIN_REQUIRED or not Trip.can_transition(trip.status, status, actor):
        return None
    if trip.pin_attempts >= settings.RIDE_PIN_MAX_ATTEMPTS:
        raise PinLocked()
    if status != Trip.Status.IN_PROGRESS or hmac.compare_digest(pin or "", trip.pin):
        return None
    Trip.objects.filter(pk=trip.pk).update(pin_attempts=F("pin_attempts") + 1)
    if trip.pin_attempts + 1 >= settings.RIDE_PIN_MAX_ATTEMPTS:
        logger.warning("trip.pin_locked", extra={"trip_id": str(trip.pk)})
        return PinLocked()
    return InvalidPin()


def trip_cancel(
    *, trip_id: UUID, user: User, reason: str | None = None, reason_code: str | None = None
) -> Trip:
    """The rider cancels (before pick-up), or the assigned driver does.

    A driver's cancel sends the trip back to dispatch without them
    (`status_reason` `driver_canceled`), except a no-show (`reason_code`
    `rider_no_show`, NO_SHOW_WAIT_S after arriving), which cancels it.
    Fees follow `trips.cancellation`."""
    with transaction.atomic():
        trip = _lock_trip(trip_id)
        actor = _actor_or_not_found(trip, user)
        cancellation.check_reason_code(actor, reason_code)
        now = timezone.now()
        if actor == Actor.ASSIGNED_DRIVER and reason_code != cancellation.RIDER_NO_SHOW:
            return _back_to_dispatch(trip, user, reason_code, now)
        # Too early only while the driver waits at the pick-up; from any other
        # status (not arrived yet, or already canceled by the rider) the move
        # itself is refused below as invalid_transition.
        if (
            reason_code == cancellation.RIDER_NO_SHOW
            and trip.status == Trip.Status.ARRIVED
            and not cancellation.no_show_due(trip, now)
        ):
            raise TooEarly()
        default_reason = "canceled_by_rider" if actor == Actor.RIDER else "canceled_by_driver"
        trip = _transition(
            trip,
            Trip.Status.CANCELED,
            actor,
            reason=(reason or default_reason)[:MAX_REASON_CHARS],
            by_user=user,
            cancel_reason_code=reason_code,
            cancellation_fee=cancellation.fee(trip, actor, reason_code, now),
            ended_at=now,
        )
        offer_revoke_live(trip=trip, reason=events.RevokeReason.CANCELED)
        _release_driver_on_commit(trip)
    logger.info("trip.canceled", extra={"trip_id": str(trip.pk), "user_id": user.pk})
    return trip


def _back_to_dispatch(trip: Trip, driver: User, reason_code: str | None, now: datetime) -> Trip:
    """Inside `trip_cancel`: the assigned driver gives the trip up before the
    pick-up. It is REQUESTED again, without a driver, searching anew for
    DISPATCH_SEARCH_TIMEOUT_S; that driver is never offered it again (their
    offer stands in its history). The rider is told; the driver hears the trip
    as someone no longer on it (no rider identity)."""
    if trip.status not in Trip.BEFORE_PICK_UP:
        raise InvalidTransition(f"A trip that is {trip.status} cannot be given up.")
    trip = _transition(
        trip,
        Trip.Status.REQUESTED,
        Actor.ASSIGNED_DRIVER,
        reason=Trip.Reason.DRIVER_CANCELED,
        by_user=driver,
        cancel_reason_code=reason_code,
        driver=None,
        accepted_at=None,
        arrived_at=None,
        pickup_eta_s=None,
        pin_attempts=0,
        search_until=now + timedelta(seconds=settings.DISPATCH_SEARCH_TIMEOUT_S),
    )
    push_on_commit([driver.pk], events.trip_updated(trip, viewer_id=driver.pk), is_result=True)
    presence.release_on_commit(driver.pk, trip_id=trip.pk)
    queue.dispatch_on_commit(trip.pk)
    logger.info(
        "trip.driver_canceled",
        extra={"trip_id": str(trip.pk), "driver_id": driver.pk, "reason_code": reason_code},
    )
    return trip


def trip_expire(*, trip_id: UUID, reason: str) -> Trip | None:
    """The service gives up on a REQUESTED (or still SCHEDULED) trip. Returns
    None, changing nothing, when the trip has already moved on (safe to call
    twice, or late)."""
    with transaction.atomic():
        trip = lock(trip_id, with_people=True).trip
        if trip is None or trip.status not in (Trip.Status.REQUESTED, Trip.Status.SCHEDULED):
            return None
        offer_revoke_live(trip=trip, reason=events.RevokeReason.EXPIRED)
        trip = _transition(
            trip, Trip.Status.EXPIRED, Actor.SERVICE, reason=reason, ended_at=timezone.now()
        )
        transaction.on_commit(lambda: presence.stop_waiting(trip.pk), robust=True)
    logger.info("trip.expired", extra={"trip_id": str(trip.pk), "reason": reason})
    return trip


def trips_expire_stale(*, batch: int | None = None) -> int:
    """Trips REQUESTED for longer than TRIP_STALE_AFTER_S (since they last
    changed: the request, a scheduled trip's dispatch, a driver's cancel)
    become EXPIRED (`stale`), their live offers withdrawn. Returns how many."""
    batch = batch or settings.DISPATCH_SWEEP_BATCH
    cutoff = timezone.now() - timedelta(seconds=settings.TRIP_STALE_AFTER_S)
    stale = list(
        Trip.objects.filter(status=Trip.Status.REQUESTED, updated__lt=cutoff)
        .order_by("updated")
        .values_list("pk", flat=True)[:batch]
    )
    expired = sum(
        trip_expire(trip_id=trip_id, reason=Trip.Reason.STALE) is not None for trip_id in stale
    )
    if expired:
        logger.info("dispatch.stale_trips_expired", extra={"count": expired})
    return expired


def trip_promote(*, trip_id: UUID) -> Trip | None:
    """A SCHEDULED trip's time to be dispatched: it becomes REQUESTED and
    searches until its time plus DISPATCH_SEARCH_TIMEOUT_S. None, changing
    nothing, when it moved on meanwhile (canceled, already promoted) or its
    rider is still on another trip (the next sweep tries again)."""
    try:
        with transaction.atomic():
            trip = lock(trip_id, with_people=True).trip
            if trip is None or trip.status != Trip.Status.SCHEDULED:
                return None
            with transaction.atomic():
                trip = _transition(trip, Trip.Status.REQUESTED, Actor.SERVICE)
            queue.dispatch_on_commit(trip.pk)
            transaction.on_commit(
                lambda: surge.record_request(trip.pick_up_lat, trip.pick_up_lng), robust=True
            )
    except IntegrityError:
        logger.info("trip.promotion_waits_for_rider", extra={"trip_id": str(trip_id)})
        return None
    logger.info("trip.promoted", extra={"trip_id": str(trip.pk)})
    return trip


def trips_promote_due(*, batch: int | None = None) -> int:
    """SCHEDULED trips within SCHEDULE_DISPATCH_LEAD_S of their time are
    dispatched. Bounded per run; safe to run twice. Returns how many."""
    batch = batch or settings.DISPATCH_SWEEP_BATCH
    due = timezone.now() + timedelta(seconds=settings.SCHEDULE_DISPATCH_LEAD_S)
    trip_ids = list(
        Trip.objects.filter(status=Trip.Status.SCHEDULED, scheduled_for__lte=due)
        .order_by("scheduled_for")
        .values_list("pk", flat=True)[:batch]
    )
    return sum(trip_promote(trip_id=trip_id) is not None for trip_id in trip_ids)


def trips_expire_searches(*, batch: int | None = None) -> int:
    """Trips whose search ran out (`search_until`: DISPATCH_SEARCH_TIMEOUT_S
    after the request, the scheduled time or a driver's cancel) with no live
    offer become EXPIRED (`no_drivers`); a trip whose offer is still live
    waits for that answer. Bounded per run; safe to run twice."""
    batch = batch or settings.DISPATCH_SWEEP_BATCH
    live = Offer.objects.filter(trip=OuterRef("pk"), status=Offer.Status.PENDING)
    trip_ids = list(
        Trip.objects.filter(
            status__in=(Trip.Status.REQUESTED, Trip.Status.SCHEDULED),
            search_until__lte=timezone.now(),
        )
        .exclude(Exists(live))
        .order_by("search_until")
        .values_list("pk", flat=True)[:batch]
    )
    expired = sum(
        trip_expire(trip_id=trip_id, reason=Trip.Reason.NO_DRIVERS) is not None
        for trip_id in trip_ids
    )
    if expired:
        logger.info("dispatch.searches_expired", extra={"count": expired})
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
    by_user: User | None = None,
    **fields,
) -> Trip:
    """One conditional write: the trip moves only from the status and version
    it was read at, and the version grows by one; the move joins the trip's
    history in the same transaction. `trip.updated` follows the commit, to
    both participants (each seeing the trip as theirs: the PIN is the
    rider's); it is the result of the request, so the socket that asked (and
    gets the trip as its reply) is skipped."""
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
    from_status = trip.status
    trip.version += 1
    trip.status, trip.status_reason, trip.updated = to_status, reason, now
    for name, value in fields.items():
        setattr(trip, name, value)
    if by_user is None and actor != Actor.SERVICE:
        by_user = trip.rider if actor == Actor.RIDER else trip.driver
    _record(trip, from_status, to_status, actor, user=by_user, reason=reason, at=now)
    for viewer_id in events.trip_participants(trip):
        push_on_commit([viewer_id], events.trip_updated(trip, viewer_id=viewer_id), is_result=True)
    if actor != Actor.RIDER:
        # A rider whose app is not listening hears it as a push notification
        # (a change they made themselves they already know of).
        notify_rider_if_away_on_commit(trip)
    return trip


def _record(
    trip: Trip,
    from_status: str | None,
    to_status: str,
    actor: str,
    *,
    user: User | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> None:
    TripEvent.objects.create(
        trip=trip,
        at=at or trip.updated or timezone.now(),
        from_status=from_status,
        to_status=to_status,
        by=TripEvent.BY_ACTOR[actor],
        user=user,
        reason=reason,
    )


def _release_driver_on_commit(trip: Trip) -> None:
    if trip.driver_id is not None:
        presence.release_on_commit(trip.driver_id, trip_id=trip.pk)
