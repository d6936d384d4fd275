"""Every read of trips, scoped to the user who asks."""

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from dispatch.models import Offer
from trips.errors import NotFound
from trips.models import Trip, TripEvent, User


def trips_visible_to(user: User) -> QuerySet[Trip]:
    """A rider's own trips; a driver's assigned trips and the trip currently
    offered to them."""
    trips = Trip.objects.select_related("rider", "driver", "driver__vehicle")
    if user.is_driver:
        # At most one live offer per driver (a constraint): look it up first,
        # so the trips query is two indexed conditions, not a subquery per row.
        offered = Offer.live().filter(driver=user).values_list("trip_id", flat=True).first()
        visible = Q(driver=user) if offered is None else Q(driver=user) | Q(pk=offered)
        return trips.filter(visible)
    return trips.filter(rider=user)


def trip_list_for_user(*, user: User, status: str | None = None) -> QuerySet[Trip]:
    trips = trips_visible_to(user)
    if status:
        trips = trips.filter(status=status)
    return trips.order_by("-created", "-pk")


def trip_get_for_user(*, trip_id: UUID | str, user: User) -> Trip:
    """The trip, or NotFound for anyone it is not visible to (never revealing
    that it exists)."""
    try:
        return trips_visible_to(user).get(pk=trip_id)
    except (Trip.DoesNotExist, ValidationError, ValueError, TypeError):
        # A malformed id (Django raises ValidationError for a bad UUID) is
        # just another trip the caller cannot see.
        raise NotFound() from None


def trip_events_for_user(*, trip_id: UUID | str, user: User) -> QuerySet[TripEvent]:
    """The trip's history, oldest first, for its participants: its rider and
    its assigned driver. A driver only offered the trip, or who gave it back
    to dispatch, is no longer one: NotFound, as for anyone else."""
    trip = trip_get_for_user(trip_id=trip_id, user=user)
    if trip.actor_for(user) is None:
        raise NotFound()
    return TripEvent.objects.filter(trip=trip).order_by("at", "pk")
