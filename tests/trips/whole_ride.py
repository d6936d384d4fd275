"""Helpers for the tests of PROTOCOL.md Part 2's "Statuses, extended": the
catalogue (which a transactional test's flush empties), scheduled bookings,
rides walked through the real services, and clocks moved back in the database
instead of slept through."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from pricing.models import Product
from tests.trips.factories import TRIP_REQUEST
from tests.trips.rides import ride
from trips.models import Trip, User
from trips.services import trip_create

S = Trip.Status
# The catalogue a new installation starts with (pricing 0002_default_products).
CANCELLATION_FEES = {"standard": Decimal("5.00"), "xl": Decimal("7.50")}


def ensure_catalogue() -> None:
    """`standard` and `xl` with their rate cards, as migrations left them
    (a transactional test's flush removes them)."""
    for position, (code, fee) in enumerate(CANCELLATION_FEES.items()):
        if Product.objects.filter(code=code).exists():
            continue
        Product.objects.create(
            code=code,
            name=code.title(),
            capacity=4 + 2 * position,
            position=position,
            currency="USD",
            base=Decimal("2.50"),
            per_km=Decimal("1.20"),
            per_min=Decimal("0.30"),
            minimum=Decimal("7.00"),
            booking_fee=Decimal("1.50"),
            cancellation_fee=fee,
        )


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
