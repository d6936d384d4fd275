"""The dispatch loop (`dispatch.loop`), called directly (no worker): who is
offered, what is written, and that a second run, a late run or a concurrent
run changes nothing it should not."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from dispatch import keys, presence
from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from taxi.infra.redis import get_redis
from tests.dispatch.support import available, driver_state, put_online, queued_tasks, request_trip
from trips.models import Trip
from trips.services import trip_accept

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_nearest_available_driver_is_offered_the_trip(rider, driver_at):
    far, near, out_of_range = driver_at(1.5), driver_at(0.4), driver_at(30)
    trip = request_trip(rider)

    offer = trip_offer_next(trip_id=trip.pk)

    assert offer.driver_id == near.pk
    assert offer.status == Offer.Status.PENDING
    assert offer.distance_km == pytest.approx(0.4, abs=0.02)
    timeout = timedelta(seconds=settings.DISPATCH_OFFER_TIMEOUT_S)
    assert offer.expires_at - offer.created == pytest.approx(timeout, abs=timedelta(seconds=1))
    assert Offer.objects.filter(trip=trip).count() == 1
    # Reserved in Redis: out of the available set, the others still in it.
    assert available() == {far.pk, out_of_range.pk}
    assert driver_state(near.pk)["state"] == keys.STATE_OFFERED
    assert ("workers.expire_offer", [str(offer.pk)]) in queued_tasks()


def test_dispatching_twice_makes_one_offer(rider, driver_at):
    driver_at(0.4)
    driver_at(1.0)
    trip = request_trip(rider)

    first = trip_offer_next(trip_id=trip.pk)
    second = trip_offer_next(trip_id=trip.pk)

    assert first is not None and second is None
    assert Offer.objects.filter(trip=trip).count() == 1


def test_drivers_already_offered_the_trip_are_passed_over(rider, driver_at, make_user):
    near, second = driver_at(0.4), driver_at(1.0)
    trip = request_trip(rider)
    Offer.objects.create(
        trip=trip, driver=near, status=Offer.Status.DECLINED, expires_at=timezone.now()
    )

    offer = trip_offer_next(trip_id=trip.pk)

    assert offer.driver_id == second.pk


def test_a_trip_that_moved_on_is_left_alone(rider, driver_at):
    driver_at(0.4)
    trip = request_trip(rider)
    Trip.objects.filter(pk=trip.pk).update(status=Trip.Status.CANCELED)

    assert trip_offer_next(trip_id=trip.pk) is None
    assert not Offer.objects.exists()


def test_a_silent_driver_is_not_offered_trips(rider, driver):
    put_online(driver, 0.5)
    get_redis().zadd(keys.LAST_SEEN, {driver.pk: 1.0})  # last heard from long ago

    trip = request_trip(rider)

    assert trip_offer_next(trip_id=trip.pk) is None


def test_an_unknown_trip_is_left_alone():
    assert trip_offer_next(trip_id="00000000-0000-4000-8000-000000000000") is None


def test_nobody_in_range_leaves_the_trip_waiting_for_supply(rider, driver_at):
    # PROTOCOL.md Part 2 ("Waiting for supply") replaces Part 1's expiry at once.
    driver_at(25)
    trip = request_trip(rider)

    assert trip_offer_next(trip_id=trip.pk) is None

    trip.refresh_from_db()
    assert (trip.status, trip.version) == (Trip.Status.REQUESTED, 1)
    assert presence.waiting([trip.pk]) == {str(trip.pk)}
    assert not Offer.objects.exists()


def test_nobody_in_range_once_the_search_ran_out_expires_the_trip(rider, driver_at):
    driver_at(25)
    trip = request_trip(rider)
    Trip.objects.filter(pk=trip.pk).update(search_until=timezone.now())

    assert trip_offer_next(trip_id=trip.pk) is None

    trip.refresh_from_db()
    assert (trip.status, trip.status_reason) == (Trip.Status.EXPIRED, "no_drivers")
    assert trip.version == 2
    assert not Offer.objects.exists()


def test_after_the_last_allowed_offer_the_trip_expires(rider, driver_at, make_user):
    driver_at(0.4)
    trip = request_trip(rider)
    for _ in range(settings.DISPATCH_MAX_OFFERS):
        Offer.objects.create(
            trip=trip,
            driver=make_user("driver"),
            status=Offer.Status.DECLINED,
            expires_at=timezone.now(),
        )

    assert trip_offer_next(trip_id=trip.pk) is None

    trip.refresh_from_db()
    assert (trip.status, trip.status_reason) == (Trip.Status.EXPIRED, "no_drivers")
    assert Offer.objects.filter(status=Offer.Status.PENDING).count() == 0


def test_a_driver_redis_thinks_free_but_who_is_on_a_trip_is_skipped_and_corrected(
    rider, make_user, driver_at
):
    busy, free = driver_at(0.3), driver_at(1.0)
    first_trip = request_trip(rider)
    trip_offer_next(trip_id=first_trip.pk)
    trip_accept(trip_id=first_trip.pk, driver=busy)
    put_online(busy, 0.3)  # Redis out of step: says free again
    assert busy.pk in available()

    trip = request_trip(make_user("rider"))
    offer = trip_offer_next(trip_id=trip.pk)

    assert offer.driver_id == free.pk
    assert busy.pk not in available()
    assert driver_state(busy.pk)["trip"] == str(first_trip.pk)


def test_a_driver_holding_another_offer_is_skipped_and_corrected(rider, make_user, driver_at):
    held, free = driver_at(0.3), driver_at(1.0)
    first_trip = request_trip(rider)
    assert trip_offer_next(trip_id=first_trip.pk).driver_id == held.pk
    put_online(held, 0.3)  # a stale write put them back in the set

    offer = trip_offer_next(trip_id=request_trip(make_user("rider")).pk)

    assert offer.driver_id == free.pk
    assert held.pk not in available()
    assert Offer.objects.filter(driver=held, status=Offer.Status.PENDING).count() == 1


def test_two_trips_dispatched_at_once_never_offer_the_same_driver(make_user, driver_at):
    only = driver_at(0.5)
    trips = [request_trip(make_user("rider")) for _ in range(2)]
    barrier = threading.Barrier(len(trips))
    results = {}

    def run(trip):
        try:
            barrier.wait()
            results[trip.pk] = trip_offer_next(trip_id=trip.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(trip,)) for trip in trips]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    offers = list(Offer.objects.all())
    assert len(offers) == 1 and offers[0].driver_id == only.pk
    # The loser found nobody else free: its trip waits for supply.
    statuses = sorted(Trip.objects.values_list("status", flat=True))
    assert statuses == [Trip.Status.REQUESTED, Trip.Status.REQUESTED]
    waiting = [t.pk for t in trips if t.pk != offers[0].trip_id]
    assert presence.waiting([t.pk for t in trips]) == {str(t) for t in waiting}


def test_many_trips_at_once_give_each_driver_at_most_one_live_offer(make_user, driver_at):
    drivers = [driver_at(0.2 * (i + 1)) for i in range(4)]
    trips = [request_trip(make_user("rider")) for _ in range(6)]
    barrier = threading.Barrier(len(trips))

    def run(trip):
        try:
            barrier.wait()
            trip_offer_next(trip_id=trip.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(trip,)) for trip in trips]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    live = Offer.objects.filter(status=Offer.Status.PENDING).values_list("driver_id", "trip_id")
    assert sorted(d for d, _ in live) == sorted(d.pk for d in drivers)
    assert len({t for _, t in live}) == len(live), "one live offer per trip"
    offered = {t for _, t in live}
    assert presence.waiting([t.pk for t in trips]) == {
        str(t.pk) for t in trips if t.pk not in offered
    }
    assert not Trip.objects.filter(status=Trip.Status.EXPIRED).exists()
