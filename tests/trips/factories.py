"""Trips and offers written straight to the database, in any state, for tests
that need a world the services would take several steps to build; and the
status table as a grid of (status, action, role) cases, shared by the service
and REST tests."""

from datetime import timedelta

from django.utils import timezone

from dispatch.models import Offer
from taxi.infra.redis import get_redis
from trips.errors import InvalidTransition, NotFound, OfferNotAvailable
from trips.models import Trip, User

S = Trip.Status

# The trip object's keys, as PROTOCOL.md shows it (written out here, not read
# from the serializer, so a change to the wire shape fails the tests).
TRIP_KEYS = {
    "id",
    "created",
    "updated",
    "status",
    "status_reason",
    "version",
    "pick_up_address",
    "pick_up_lat",
    "pick_up_lng",
    "drop_off_address",
    "drop_off_lat",
    "drop_off_lng",
    "rider",
    "driver",
    # PROTOCOL.md Part 2, "Products, vehicles and prices".
    "product",
    "fare",
    "pickup_eta_s",
    # Ours: the route as estimated at the request.
    "distance_m",
    "duration_s",
    # PROTOCOL.md Part 2, "Statuses, extended" (and ours: the cancel's code).
    "scheduled_for",
    "cancellation_fee",
    "cancel_reason_code",
}
# A valid trip request body (REST `POST /api/trip/`, WS `create.trip`).
TRIP_REQUEST = {
    "pick_up_address": "123 Main Street",
    "pick_up_lat": 38.8977,
    "pick_up_lng": -77.0365,
    "drop_off_address": "456 Piney Road",
    "drop_off_lat": 38.9,
    "drop_off_lng": -77.04,
}


def make_trip(rider: User, *, status: str = S.REQUESTED, driver=None, **fields) -> Trip:
    fields.setdefault("pick_up_address", "123 Main Street")
    fields.setdefault("pick_up_lat", 38.8977)
    fields.setdefault("pick_up_lng", -77.0365)
    fields.setdefault("drop_off_address", "456 Piney Road")
    return Trip.objects.create(rider=rider, driver=driver, status=status, **fields)


def make_offer(
    trip: Trip, driver: User, *, status: str = Offer.Status.PENDING, expires_in_s: float = 15
) -> Offer:
    """An offer closing `expires_in_s` from now (negative: already overdue)."""
    return Offer.objects.create(
        trip=trip,
        driver=driver,
        status=status,
        expires_at=timezone.now() + timedelta(seconds=expires_in_s),
    )


def snapshot(trip: Trip) -> tuple:
    """What a refused call must leave alone, read fresh from the database."""
    row = Trip.objects.get(pk=trip.pk)
    return (row.status, row.version, row.driver_id, row.status_reason, row.updated)


def offer_states(trip: Trip) -> dict:
    return dict(Offer.objects.filter(trip=trip).values_list("driver_id", "status"))


def queued_dispatches() -> int:
    """`dispatch_trip` messages waiting on the (test) Celery broker."""
    return get_redis().llen("celery")


# The status table as cases. Roles are relative to one trip: its rider, its
# assigned driver, the driver it is (or was) offered to, and two strangers.

ROLES = ("rider", "assigned", "offered", "stranger_driver", "stranger_rider")
ACTIONS = ("accept", "arrived", "in_progress", "completed", "cancel")
# (status, action, role) -> the status it moves to. PROTOCOL.md Part 2
# replaces Part 1's driver cancel: it sends the trip back to dispatch.
ALLOWED = {
    (S.SCHEDULED, "cancel", "rider"): S.CANCELED,
    (S.REQUESTED, "accept", "offered"): S.STARTED,
    (S.REQUESTED, "cancel", "rider"): S.CANCELED,
    (S.STARTED, "arrived", "assigned"): S.ARRIVED,
    (S.STARTED, "in_progress", "assigned"): S.IN_PROGRESS,
    (S.STARTED, "cancel", "rider"): S.CANCELED,
    (S.STARTED, "cancel", "assigned"): S.REQUESTED,
    (S.ARRIVED, "in_progress", "assigned"): S.IN_PROGRESS,
    (S.ARRIVED, "cancel", "rider"): S.CANCELED,
    (S.ARRIVED, "cancel", "assigned"): S.REQUESTED,
    (S.IN_PROGRESS, "completed", "assigned"): S.COMPLETED,
}
ALLOWED_CASES = sorted(ALLOWED)
REFUSED_CASES = [
    (status, action, role)
    for status in S.values
    for action in ACTIONS
    for role in ROLES
    if (status, action, role) not in ALLOWED
]
# The trip each status is tested in: whether it has a driver, and how the
# `offered` driver's offer stands.
SETUPS = {
    S.SCHEDULED: (False, Offer.Status.REVOKED),
    S.REQUESTED: (False, Offer.Status.PENDING),
    S.STARTED: (True, Offer.Status.EXPIRED),
    S.ARRIVED: (True, Offer.Status.EXPIRED),
    S.IN_PROGRESS: (True, Offer.Status.EXPIRED),
    S.COMPLETED: (True, Offer.Status.EXPIRED),
    S.CANCELED: (True, Offer.Status.REVOKED),
    S.EXPIRED: (False, Offer.Status.REVOKED),
}


def make_world(make_user) -> dict[str, User]:
    return {
        "rider": make_user("rider"),
        "assigned": make_user("driver"),
        "offered": make_user("driver"),
        "stranger_driver": make_user("driver"),
        "stranger_rider": make_user("rider"),
    }


def build(world: dict[str, User], status: str) -> Trip:
    has_driver, offer_status = SETUPS[status]
    scheduled_for = timezone.now() + timedelta(hours=2) if status == S.SCHEDULED else None
    trip = make_trip(
        world["rider"],
        status=status,
        driver=world["assigned"] if has_driver else None,
        scheduled_for=scheduled_for,
    )
    make_offer(trip, world["offered"], status=offer_status)
    return trip


def refusal(status: str, action: str, role: str) -> type[Exception]:
    """The error a refused case gets. Accept never tells a trip exists (no live
    offer is no live offer); other moves say `invalid_transition` to those who
    can read the trip and `not_found` to everyone else."""
    if action == "accept":
        return OfferNotAvailable
    has_driver, _ = SETUPS[status]
    participant = role == "rider" or (role == "assigned" and has_driver)
    offered_now = role == "offered" and status == S.REQUESTED
    return InvalidTransition if participant or offered_now else NotFound
