"""Trips walked through the real services, step by step, for the tests of
what follows a ride (ratings, share links, a trip's history)."""

from dispatch.loop import trip_offer_next
from tests.dispatch.support import put_online, request_trip
from trips.models import Trip, User
from trips.services import trip_accept, trip_move

S = Trip.Status
# The assigned driver's moves, in order.
DRIVER_STEPS = (S.ARRIVED, S.IN_PROGRESS, S.COMPLETED)


def ride(rider: User, driver: User, *, until: str = S.COMPLETED) -> Trip:
    """A trip `rider` requests, dispatch offers to `driver` (online nearby),
    the driver accepts, then moves on until the trip is `until`."""
    put_online(driver, 0.4)
    trip = request_trip(rider)
    if until == S.REQUESTED:
        return trip
    offer = trip_offer_next(trip_id=trip.pk)
    assert offer is not None and offer.driver_id == driver.pk
    trip = trip_accept(trip_id=trip.pk, driver=driver)
    for step in DRIVER_STEPS:
        if trip.status == until:
            break
        trip = trip_move(trip_id=trip.pk, user=driver, status=step)
    assert trip.status == until
    return trip
