"""Ratings after the ride (PROTOCOL.md Part 2, "After the ride").

The rider of a COMPLETED trip rates its driver and the driver rates the
rider, once each, within RATING_WINDOW_S of the trip's end. The rating and
the ratee's running sum and count (`User.rating_total`, `rating_count`) are
written in one transaction, so an average never costs a query and never
counts a rating that was not stored.
"""

import logging
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from trips.errors import AlreadyRated, InvalidInput, NotFound, NotRateable
from trips.models import Actor, Rating, Trip, User
from trips.selectors import trip_get_for_user

logger = logging.getLogger(__name__)

STARS = range(1, 6)
# Which side a participant rates from; the other participant is the ratee.
SIDE_OF = {Actor.RIDER: Rating.Side.RIDER, Actor.ASSIGNED_DRIVER: Rating.Side.DRIVER}


def rating_create(
    *,
    trip_id: UUID | str,
    user: User,
    stars: int,
    comment: str = "",
    tags: list[str] | None = None,
) -> Rating:
    """`user`'s rating of the other participant of a completed trip.

    NotFound for anyone but the trip's rider and its assigned driver;
    NotRateable for a trip not COMPLETED or past its window; AlreadyRated
    when that side has rated the trip already (the database's
    one-rating-per-side constraint decides between two at once)."""
    if isinstance(stars, bool) or stars not in STARS:
        raise InvalidInput("stars must be a whole number from 1 to 5.")
    trip = trip_get_for_user(trip_id=trip_id, user=user)
    side = SIDE_OF.get(trip.actor_for(user))
    if side is None:
        # A driver who is only offered the trip may read it but did not drive it.
        raise NotFound()
    _check_rateable(trip, timezone.now())
    ratee_id = trip.driver_id if side == Rating.Side.RIDER else trip.rider_id
    try:
        with transaction.atomic():
            rating = Rating.objects.create(
                trip=trip,
                side=side,
                rater=user,
                ratee_id=ratee_id,
                stars=stars,
                comment=comment,
                tags=list(tags or ()),
            )
            User.objects.filter(pk=ratee_id).update(
                rating_total=F("rating_total") + stars, rating_count=F("rating_count") + 1
            )
    except IntegrityError:
        # A retry, or two ratings from one side at once: the first stands.
        raise AlreadyRated() from None
    logger.info(
        "trip.rated",
        extra={"trip_id": str(trip.pk), "side": side, "ratee_id": ratee_id, "stars": stars},
    )
    return rating


def rating_window_closes(trip: Trip) -> datetime:
    # A trip completed before `ended_at` was kept ended at its last change.
    return (trip.ended_at or trip.updated) + timedelta(seconds=settings.RATING_WINDOW_S)


def _check_rateable(trip: Trip, now: datetime) -> None:
    if trip.status != Trip.Status.COMPLETED:
        raise NotRateable(f"Only a completed trip can be rated; this one is {trip.status}.")
    if now > rating_window_closes(trip):
        raise NotRateable("The time to rate this trip is over.")
