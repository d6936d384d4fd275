"""Helpers for the tests of PROTOCOL.md Part 2's "Statuses, extended":
scheduled bookings, rides walked through the real services, and clocks moved
back in the database instead of slept through. The catalogue is the
`catalogue` fixture's (tests/conftest.py)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from tests.trips.factories import TRIP_REQUEST
from tests.trips.rides import ride
from trips.models import Trip, User
from trips.services import trip_create

S = Trip.Status


def ahead(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def bookable_time(extra_s: float = 3600) -> datetime:
    """A time a ride may be booked for: past SCHEDULE_MIN_AHEAD_S."""
    return ahead(settings.SCHEDULE_MIN_AHEAD_S + extra_s)


def book(rider: User, when: datetime | None = None, **fields) -> Trip:
    """A SCHEDULED trip for `rider`, through the service."""
    return trip_create(
        rider=rider, scheduled_for=when or bookable_time(), **{**TRIP_REQUEST, **fields}
    )


def make_due(trip: Trip, *, seconds_ahead: float = 60) -> None:
    """Move a booked trip's time to within SCHEDULE_DISPATCH_LEAD_S of now,
    and its search end with it, as the clock would have."""
    when = ahead(seconds_ahead)
    Trip.objects.filter(pk=trip.pk).update(
        scheduled_for=when,
        search_until=when + timedelta(seconds=settings.DISPATCH_SEARCH_TIMEOUT_S),
    )


def arrived(rider: User, driver: User) -> Trip:
    return ride(rider, driver, until=S.ARRIVED)


def wait_passed(trip: Trip, field: str, seconds: float) -> Trip:
    """`field` (arrived_at, accepted_at) moved `seconds` into the past."""
    Trip.objects.filter(pk=trip.pk).update(**{field: timezone.now() - timedelta(seconds=seconds)})
    return Trip.objects.get(pk=trip.pk)


def history(trip_id) -> list[tuple[str | None, str, str]]:
    """(from, to, by) of every recorded status change, oldest first."""
    return list(
        Trip.objects.get(pk=trip_id)
        .events.order_by("at", "pk")
        .values_list("from_status", "to_status", "by")
    )
