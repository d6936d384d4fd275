"""The window of `DISPATCH_POLICY=batch` (`dispatch.loop.trips_offer_window`)
and the matcher that runs it (`dispatch.matcher`), against real Redis and the
real database: who is offered what, what waits, what expires, the lease, and
that concurrent windows never offer a trip twice."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from dispatch import keys
from dispatch.lease import Lease, holder
from dispatch.loop import trip_offer_next, trips_offer_window
from dispatch.matcher import run_matcher
from dispatch.models import Offer
from dispatch.offers import offer_decline
from dispatch.repair import dispatch_repair
from taxi.infra.redis import get_redis
from tests.dispatch.support import dispatch_tasks_for, km_north, put_online, request_trip
from trips.models import Trip

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def batch(settings):
    settings.DISPATCH_POLICY = "batch"
    settings.DISPATCH_BATCH_WINDOW_MS = 100
    get_redis().delete(keys.matcher_lease(keys.MATCHER_AREA_ALL))
    yield
    get_redis().delete(keys.matcher_lease(keys.MATCHER_AREA_ALL))


def live_offers() -> dict:
    """trip id -> driver id of every live offer."""
    return dict(
        Offer.objects.filter(status=Offer.Status.PENDING).values_list("trip_id", "driver_id")
    )


def test_a_dispatch_task_offers_nothing_under_batch_the_window_does(rider, driver_at):
    driver = driver_at(0.4)
    trip = request_trip(rider)

    assert trip_offer_next(trip_id=trip.pk) is None
    assert not Offer.objects.exists()

    result = trips_offer_window()

    assert live_offers() == {trip.pk: driver.pk}
    assert (result.waiting, result.offered, result.expired) == (1, 1, 0)


def test_the_crossing_case_gets_the_optimal_pairs(make_user):
    # Given two requests 1 km apart, a driver between them and one behind the first
    middle, behind = make_user("driver"), make_user("driver")
    put_online(middle, 0.55)  # 0.55 km from A, 0.45 km from B
    put_online(behind, -0.9)  # 0.9 km from A, 1.9 km from B
    a = request_trip(make_user("rider"))
    b = request_trip(make_user("rider"), at=km_north(1.0))

    # When one window assigns them together
    trips_offer_window()

    # Then B, whom only the middle driver serves well, gets them, and A the
    # one behind: 1.35 km in all, where nearest-first (A first) pays 2.45 km
    assert live_offers() == {a.pk: behind.pk, b.pk: middle.pk}
    total = sum(Offer.objects.values_list("distance_km", flat=True))
    assert total == pytest.approx(1.35, abs=0.02)


def test_a_second_window_changes_nothing(rider, driver_at):
    driver_at(0.4)
    trip = request_trip(rider)
    trips_offer_window()

    again = trips_offer_window()

    assert again.offered == 0
    assert Offer.objects.filter(trip=trip).count() == 1


def test_a_declined_trip_goes_back_into_the_next_window_without_that_driver(rider, driver_at):
    first, second = driver_at(0.3), driver_at(0.8)
    trip = request_trip(rider)
    trips_offer_window()
    assert live_offers() == {trip.pk: first.pk}

    offer_decline(trip_id=trip.pk, driver=first)
    trips_offer_window()

    assert live_offers() == {trip.pk: second.pk}
    assert Offer.objects.filter(trip=trip, driver=first).count() == 1, "not offered again"


def test_an_expired_offer_goes_back_into_the_next_window(rider, driver_at):
    first, second = driver_at(0.3), driver_at(0.8)
    trip = request_trip(rider)
    trips_offer_window()
    Offer.objects.filter(trip=trip).update(status=Offer.Status.EXPIRED, closed_at=timezone.now())

    trips_offer_window()

    assert live_offers() == {trip.pk: second.pk}
    assert first.pk != second.pk


def test_a_trip_with_nobody_in_range_waits_then_expires_at_the_search_timeout(
    settings, rider, driver_at
):
    driver_at(40)  # out of every ring
    trip = request_trip(rider)

    for _ in range(5):
        trips_offer_window()

    assert Trip.objects.get(pk=trip.pk).status == Trip.Status.REQUESTED
    # When its search ran out (DISPATCH_SEARCH_TIMEOUT_S after the request)
    Trip.objects.filter(pk=trip.pk).update(search_until=timezone.now() - timedelta(seconds=1))
    result = trips_offer_window()

    trip.refresh_from_db()
    assert (trip.status, trip.status_reason) == (Trip.Status.EXPIRED, Trip.Reason.NO_DRIVERS)
    assert result.expired == 1


def test_a_trip_that_had_its_last_offer_expires(settings, rider, driver_at):
    settings.DISPATCH_MAX_OFFERS = 1
    driver = driver_at(0.3)
    driver_at(0.6)
    trip = request_trip(rider)
    trips_offer_window()
    offer_decline(trip_id=trip.pk, driver=driver)

    trips_offer_window()

    assert Trip.objects.get(pk=trip.pk).status == Trip.Status.EXPIRED
    assert Offer.objects.filter(trip=trip).count() == 1


def test_a_driver_beyond_the_ceiling_is_offered_once_the_trip_waited_two_windows(rider, driver_at):
    far = driver_at(7.0)  # inside the rings, beyond the 5 km ceiling
    trip = request_trip(rider)
    trips_offer_window()
    assert not live_offers(), "a fresh trip waits for someone nearer"

    # When it has waited two windows
    Trip.objects.filter(pk=trip.pk).update(created=timezone.now() - timedelta(seconds=0.25))
    trips_offer_window()

    assert live_offers() == {trip.pk: far.pk}


def test_a_raised_ceiling_offers_the_far_driver_in_the_first_window(settings, rider, driver_at):
    settings.DISPATCH_BATCH_MAX_PICKUP_KM = 8.0
    far = driver_at(7.0)
    trip = request_trip(rider)

    trips_offer_window()

    assert live_offers() == {trip.pk: far.pk}


def test_concurrent_windows_never_offer_a_trip_twice_or_a_driver_two_trips(make_user):
    # Given more trips than drivers, around the same place
    drivers = [make_user("driver") for _ in range(6)]
    for n, driver in enumerate(drivers):
        put_online(driver, 0.1 * (n + 1))
    trips = [request_trip(make_user("rider"), at=km_north(0.05 * n)) for n in range(8)]
    barrier = threading.Barrier(3)

    def window():
        try:
            barrier.wait()
            trips_offer_window()
        finally:
            connections.close_all()

    # When three windows run at once (as if two matchers both thought they held the lease)
    threads = [threading.Thread(target=window) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each trip holds at most one offer and each driver at most one
    offers = list(Offer.objects.values_list("trip_id", "driver_id"))
    assert len(offers) == len(drivers)
    assert len({t for t, _ in offers}) == len(offers)
    assert len({d for _, d in offers}) == len(offers)
    assert {t for t, _ in offers} <= {t.pk for t in trips}


def test_a_lease_has_one_holder_and_a_released_one_is_taken_at_once():
    key = keys.matcher_lease("test")
    first, second = Lease(key, ttl_ms=5000), Lease(key, ttl_ms=5000)
    try:
        assert first.acquire()
        assert not second.acquire()
        assert first.acquire(), "the holder renews"
        assert holder(key) == first.token

        first.release()

        assert second.acquire()
        assert not first.acquire()
    finally:
        second.release()
        first.release()


def test_a_lease_whose_holder_went_silent_runs_out():
    key = keys.matcher_lease("test")
    silent, standby = Lease(key, ttl_ms=50), Lease(key, ttl_ms=5000)
    try:
        assert silent.acquire()
        deadline = timezone.now() + timedelta(seconds=5)
        while not standby.acquire():
            assert timezone.now() < deadline, "the lease never ran out"
        assert not silent.acquire(), "the old holder cannot renew its successor's lease"
        assert holder(key) == standby.token
    finally:
        standby.release()


def test_two_matchers_at_once_only_one_holds_the_lease_and_works(make_user):
    drivers = [make_user("driver") for _ in range(3)]
    for n, driver in enumerate(drivers):
        put_online(driver, 0.2 * (n + 1))
    windows: dict[str, int] = {"a": 0, "b": 0}
    stop = threading.Event()
    offered = threading.Event()

    def matcher(name):
        def counted(result):
            windows[name] += 1
            if result.offered:
                offered.set()

        try:
            run_matcher(stop, on_window=counted)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=matcher, args=(n,)) for n in windows]
    for thread in threads:
        thread.start()
    try:
        trips = [request_trip(make_user("rider")) for _ in range(3)]
        assert offered.wait(20), "no window offered anything"
        deadline = timezone.now() + timedelta(seconds=20)
        while len(live_offers()) < len(trips):
            assert timezone.now() < deadline, "not every trip got its offer"
            offered.clear()
            offered.wait(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)

    assert sorted(windows.values())[0] == 0, f"both matchers ran windows: {windows}"
    assert sorted(live_offers().values()) == sorted(d.pk for d in drivers)
    assert holder(keys.matcher_lease(keys.MATCHER_AREA_ALL)) is None, "released on the way out"


def test_under_nearest_a_matcher_idles(settings, rider, driver_at):
    settings.DISPATCH_POLICY = "nearest"
    driver_at(0.4)
    request_trip(rider)
    stop = threading.Event()
    ran = []
    thread = threading.Thread(target=run_matcher, args=(stop,), kwargs={"on_window": ran.append})
    thread.start()
    try:
        assert not stop.wait(0.5)
    finally:
        stop.set()
        thread.join(10)

    assert ran == []
    assert holder(keys.matcher_lease(keys.MATCHER_AREA_ALL)) is None


def test_the_sweeper_leaves_waiting_trips_to_the_matcher_under_batch(rider):
    trip = request_trip(rider)
    Trip.objects.filter(pk=trip.pk).update(created=timezone.now() - timedelta(minutes=1))

    result = dispatch_repair()

    assert result.trips_redispatched == 0
    assert dispatch_tasks_for(trip) <= 1, "no re-dispatch beyond the one queued at its request"
