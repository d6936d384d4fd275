"""Trip reads, scoped to whoever asks."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.models import Offer
from tests.trips.factories import make_offer, make_trip
from trips.errors import NotFound
from trips.models import Trip
from trips.selectors import trip_get_for_user, trip_list_for_user, trips_visible_to

pytestmark = pytest.mark.django_db

S = Trip.Status


def aged(trip: Trip, minutes: int) -> Trip:
    """Backdate a trip so list order does not hang on clock resolution."""
    Trip.objects.filter(pk=trip.pk).update(created=timezone.now() - timedelta(minutes=minutes))
    return trip


def test_a_rider_sees_only_their_own_trips(make_user):
    rider, other = make_user("rider"), make_user("rider")
    mine = make_trip(rider)
    make_trip(other)

    assert list(trips_visible_to(rider)) == [mine]


def test_a_driver_sees_assigned_trips_and_the_one_offered_now(make_user, driver):
    assigned = make_trip(make_user("rider"), status=S.COMPLETED, driver=driver)
    offered_now = make_trip(make_user("rider"))
    make_offer(offered_now, driver)
    overdue = make_trip(make_user("rider"))
    make_offer(overdue, driver, expires_in_s=-1, status=Offer.Status.EXPIRED)
    declined = make_trip(make_user("rider"))
    make_offer(declined, driver, status=Offer.Status.DECLINED)
    make_trip(make_user("rider"))  # never offered to them

    assert set(trips_visible_to(driver)) == {assigned, offered_now}


def test_the_list_is_newest_first(rider, driver):
    old = aged(make_trip(rider, status=S.COMPLETED, driver=driver), 30)
    middle = aged(make_trip(rider, status=S.CANCELED), 20)
    new = aged(make_trip(rider), 10)

    assert list(trip_list_for_user(user=rider)) == [new, middle, old]


def test_the_list_filters_by_status(rider, driver):
    make_trip(rider, status=S.COMPLETED, driver=driver)
    canceled = make_trip(rider, status=S.CANCELED)
    make_trip(rider)

    assert list(trip_list_for_user(user=rider, status=S.CANCELED)) == [canceled]
    assert list(trip_list_for_user(user=rider, status=S.EXPIRED)) == []


def test_a_rider_reads_their_trip(rider):
    trip = make_trip(rider)

    assert trip_get_for_user(trip_id=trip.pk, user=rider) == trip
    assert trip_get_for_user(trip_id=str(trip.pk), user=rider) == trip


def test_another_rider_cannot_read_it(make_user, rider):
    trip = make_trip(rider)

    with pytest.raises(NotFound):
        trip_get_for_user(trip_id=trip.pk, user=make_user("rider"))


def test_a_driver_reads_a_trip_only_while_it_is_offered_to_them(rider, driver):
    trip = make_trip(rider)
    # Never offered: invisible.
    with pytest.raises(NotFound):
        trip_get_for_user(trip_id=trip.pk, user=driver)

    # Offered now: visible.
    offer = make_offer(trip, driver)
    assert trip_get_for_user(trip_id=trip.pk, user=driver) == trip

    # Past the deadline, even before anything closes the offer: invisible again.
    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(NotFound):
        trip_get_for_user(trip_id=trip.pk, user=driver)


def test_the_assigned_driver_keeps_reading_the_trip_after_it_ends(rider, driver):
    trip = make_trip(rider, status=S.COMPLETED, driver=driver)

    assert trip_get_for_user(trip_id=trip.pk, user=driver) == trip


@pytest.mark.parametrize("trip_id", [uuid.uuid4(), "not-a-uuid", "", None, 12.5, ["x"]])
def test_unknown_or_malformed_ids_are_not_found(rider, trip_id):
    make_trip(rider)

    with pytest.raises(NotFound):
        trip_get_for_user(trip_id=trip_id, user=rider)
