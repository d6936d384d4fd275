"""The dispatch loop's services, called directly (no worker): who is offered,
what is written, and that a second run, a late run or a concurrent run
changes nothing it should not."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from dispatch import keys, presence, services
from dispatch.models import Offer
from taxi.infra.redis import get_redis
from tests.dispatch.support import km_north, put_online, queued_tasks, request_trip
from trips.models import Trip
from trips.services import trip_accept

pytestmark = pytest.mark.django_db(transaction=True)


def available() -> set[int]:
    return {int(m) for m in get_redis().zrange(keys.AVAILABLE, 0, -1)}


def dispatch_tasks_for(trip) -> int:
    return queued_tasks().count(("workers.dispatch_trip", [str(trip.pk)]))


def test_the_nearest_available_driver_is_offered_the_trip(rider, driver_at):
    far, near, out_of_range = driver_at(1.5), driver_at(0.4), driver_at(30)
    trip = request_trip(rider)

    offer = services.trip_dispatch(trip_id=trip.pk)

    assert offer.driver_id == near.pk
    assert offer.status == Offer.Status.PENDING
    assert offer.distance_km == pytest.approx(0.4, abs=0.02)
    timeout = timedelta(seconds=settings.DISPATCH_OFFER_TIMEOUT_S)
    assert offer.expires_at - offer.created == pytest.approx(timeout, abs=timedelta(seconds=1))
    assert Offer.objects.filter(trip=trip).count() == 1
    # Reserved in Redis: out of the available set, the others still in it.
    assert available() == {far.pk, out_of_range.pk}
    assert presence.driver_state(near.pk)["state"] == keys.STATE_OFFERED
    assert ("workers.expire_offer", [str(offer.pk)]) in queued_tasks()


def test_dispatching_twice_makes_one_offer(rider, driver_at):
    driver_at(0.4)
    driver_at(1.0)
    trip = request_trip(rider)

    first = services.trip_dispatch(trip_id=trip.pk)
    second = services.trip_dispatch(trip_id=trip.pk)

    assert first is not None and second is None
    assert Offer.objects.filter(trip=trip).count() == 1


def test_drivers_already_offered_the_trip_are_passed_over(rider, driver_at, make_user):
    near, second = driver_at(0.4), driver_at(1.0)
    trip = request_trip(rider)
    Offer.objects.create(
        trip=trip, driver=near, status=Offer.Status.DECLINED, expires_at=timezone.now()
    )

    offer = services.trip_dispatch(trip_id=trip.pk)

    assert offer.driver_id == second.pk


def test_a_trip_that_moved_on_is_left_alone(rider, driver_at):
    driver_at(0.4)
    trip = request_trip(rider)
    Trip.objects.filter(pk=trip.pk).update(status=Trip.Status.CANCELED)

    assert services.trip_dispatch(trip_id=trip.pk) is None
    assert not Offer.objects.exists()


def test_a_silent_driver_is_not_offered_trips(rider, driver):
    put_online(driver, 0.5)
    get_redis().zadd(keys.LAST_SEEN, {driver.pk: 1.0})  # last heard from long ago

    trip = request_trip(rider)

    assert services.trip_dispatch(trip_id=trip.pk) is None


def test_an_unknown_trip_is_left_alone():
    assert services.trip_dispatch(trip_id="00000000-0000-4000-8000-000000000000") is None


def test_nobody_in_range_expires_the_trip_at_once(rider, driver_at):
    driver_at(25)
    trip = request_trip(rider)

    assert services.trip_dispatch(trip_id=trip.pk) is None

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

    assert services.trip_dispatch(trip_id=trip.pk) is None

    trip.refresh_from_db()
    assert (trip.status, trip.status_reason) == (Trip.Status.EXPIRED, "no_drivers")
    assert Offer.objects.filter(status=Offer.Status.PENDING).count() == 0


def test_a_driver_redis_thinks_free_but_who_is_on_a_trip_is_skipped_and_corrected(
    rider, make_user, driver_at
):
    busy, free = driver_at(0.3), driver_at(1.0)
    first_trip = request_trip(rider)
    services.trip_dispatch(trip_id=first_trip.pk)
    trip_accept(trip_id=first_trip.pk, driver=busy)
    put_online(busy, 0.3)  # Redis out of step: says free again
    assert busy.pk in available()

    trip = request_trip(make_user("rider"))
    offer = services.trip_dispatch(trip_id=trip.pk)

    assert offer.driver_id == free.pk
    assert busy.pk not in available()
    assert presence.driver_state(busy.pk)["trip"] == str(first_trip.pk)


def test_a_driver_holding_another_offer_is_skipped_and_corrected(rider, make_user, driver_at):
    held, free = driver_at(0.3), driver_at(1.0)
    first_trip = request_trip(rider)
    assert services.trip_dispatch(trip_id=first_trip.pk).driver_id == held.pk
    put_online(held, 0.3)  # a stale write put them back in the set

    offer = services.trip_dispatch(trip_id=request_trip(make_user("rider")).pk)

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
            results[trip.pk] = services.trip_dispatch(trip_id=trip.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(trip,)) for trip in trips]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    offers = list(Offer.objects.all())
    assert len(offers) == 1 and offers[0].driver_id == only.pk
    # The loser found nobody else free and gave up on its trip.
    statuses = sorted(Trip.objects.values_list("status", flat=True))
    assert statuses == [Trip.Status.EXPIRED, Trip.Status.REQUESTED]


def test_many_trips_at_once_give_each_driver_at_most_one_live_offer(make_user, driver_at):
    drivers = [driver_at(0.2 * (i + 1)) for i in range(4)]
    trips = [request_trip(make_user("rider")) for _ in range(6)]
    barrier = threading.Barrier(len(trips))

    def run(trip):
        try:
            barrier.wait()
            services.trip_dispatch(trip_id=trip.pk)
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
    assert Trip.objects.filter(status=Trip.Status.EXPIRED).count() == len(trips) - len(drivers)


# --- expiry ----------------------------------------------------------------------


def test_an_offer_expires_only_after_its_deadline(rider, driver_at):
    driver_at(0.4)
    trip = request_trip(rider)
    offer = services.trip_dispatch(trip_id=trip.pk)

    early = services.offer_expire(offer_id=offer.pk)

    assert not early.expired
    assert 0 < early.retry_in_s <= settings.DISPATCH_OFFER_TIMEOUT_S
    offer.refresh_from_db()
    assert offer.status == Offer.Status.PENDING


def test_an_overdue_offer_expires_frees_the_driver_and_queues_the_next_dispatch(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)
    offer = services.trip_dispatch(trip_id=trip.pk)
    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = dispatch_tasks_for(trip)

    result = services.offer_expire(offer_id=offer.pk)
    again = services.offer_expire(offer_id=offer.pk)

    assert result.expired and not again.expired and again.retry_in_s is None
    offer.refresh_from_db()
    assert offer.status == Offer.Status.EXPIRED and offer.closed_at is not None
    assert near.pk in available(), "the driver is free again"
    assert dispatch_tasks_for(trip) == before + 1, "the next dispatch queued once"
    trip.refresh_from_db()
    assert trip.status == Trip.Status.REQUESTED


def test_an_accepted_offer_is_not_expired(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)
    offer = services.trip_dispatch(trip_id=trip.pk)
    trip_accept(trip_id=trip.pk, driver=near)
    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert not services.offer_expire(offer_id=offer.pk).expired

    offer.refresh_from_db()
    assert offer.status == Offer.Status.ACCEPTED
    assert presence.driver_state(near.pk)["state"] == keys.STATE_ON_TRIP


# --- sweeps ----------------------------------------------------------------------


def test_the_sweeper_expires_an_offer_whose_task_was_lost(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)
    lost = Offer.objects.create(
        trip=trip, driver=near, expires_at=timezone.now() - timedelta(seconds=10)
    )
    presence.mark_offered(near.pk)

    first = services.dispatch_sweep()
    second = services.dispatch_sweep()

    assert first.offers_expired == 1 and second.offers_expired == 0
    lost.refresh_from_db()
    assert lost.status == Offer.Status.EXPIRED
    assert near.pk in available()
    assert dispatch_tasks_for(trip) >= 1


def test_two_sweepers_at_once_expire_a_lost_offer_once(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)
    Offer.objects.create(trip=trip, driver=near, expires_at=timezone.now() - timedelta(seconds=10))
    get_redis().delete("celery")
    barrier = threading.Barrier(2)
    results = []

    def sweep():
        try:
            barrier.wait()
            results.append(services.dispatch_sweep())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.offers_expired for r in results) == [0, 1]
    assert dispatch_tasks_for(trip) == 1, "one next dispatch, not two"


def test_the_sweeper_requeues_a_trip_left_without_an_offer_but_not_a_fresh_one(rider, make_user):
    stranded = request_trip(rider)
    Trip.objects.filter(pk=stranded.pk).update(created=timezone.now() - timedelta(seconds=30))
    fresh = request_trip(make_user("rider"))
    get_redis().delete("celery")

    result = services.dispatch_sweep()

    assert result.trips_redispatched == 1
    assert queued_tasks() == [("workers.dispatch_trip", [str(stranded.pk)])]
    assert dispatch_tasks_for(fresh) == 0


def test_the_sweeper_leaves_a_trip_with_a_live_offer_alone(rider, driver_at):
    driver_at(0.4)
    trip = request_trip(rider)
    services.trip_dispatch(trip_id=trip.pk)
    Trip.objects.filter(pk=trip.pk).update(created=timezone.now() - timedelta(seconds=30))
    get_redis().delete("celery")

    result = services.dispatch_sweep()

    assert result == services.SweepResult()
    assert queued_tasks() == []


def test_stale_trips_expire_and_their_offers_are_withdrawn(rider, make_user, driver_at):
    near = driver_at(0.4)
    old = request_trip(rider)
    offer = services.trip_dispatch(trip_id=old.pk)
    age = timedelta(seconds=settings.TRIP_STALE_AFTER_S + 5)
    Trip.objects.filter(pk=old.pk).update(created=timezone.now() - age)
    young = request_trip(make_user("rider"))

    assert services.trips_expire_stale() == 1
    assert services.trips_expire_stale() == 0

    old.refresh_from_db()
    assert (old.status, old.status_reason) == (Trip.Status.EXPIRED, "stale")
    offer.refresh_from_db()
    assert offer.status == Offer.Status.REVOKED
    assert near.pk in available()
    young.refresh_from_db()
    assert young.status == Trip.Status.REQUESTED


def test_the_silent_driver_sweep_keeps_fresh_drivers(make_user, driver_at):
    fresh = driver_at(0.4)
    silent = make_user("driver")
    lat, lng = km_north(0.5)
    presence.set_online(silent.pk, lat=lat, lng=lng)
    get_redis().zadd(keys.LAST_SEEN, {silent.pk: 1.0})

    assert services.drivers_sweep_silent() == [silent.pk]
    assert available() == {fresh.pk}
