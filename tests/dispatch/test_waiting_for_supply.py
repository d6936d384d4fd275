"""Waiting for supply (PROTOCOL.md Part 2, "Statuses, extended"): a request
with no eligible driver free in range waits, is offered to the first eligible
driver who becomes free near it (online, a finished trip, a decline), and
expires once its search runs out. The flows run through a real Celery worker
thread and real sockets (tests/workers/conftest.py's `dispatch_worker`)."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from dispatch import presence
from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from dispatch.repair import dispatch_repair
from pricing.models import Product, Vehicle
from tests.dispatch.support import (
    dispatch_tasks_for,
    km_north,
    next_frame,
    put_online,
    request_trip,
    trip_status,
    wait_until,
)
from tests.trips.factories import TRIP_REQUEST, make_trip
from tests.trips.whole_ride import S
from tests.workers.conftest import dispatch_worker
from trips.models import Trip
from trips.services import trip_create, trips_expire_searches

__all__ = ["dispatch_worker"]


def is_waiting(trip_id) -> bool:
    return presence.waiting([str(trip_id)]) == {str(trip_id)}


# --- the loop and the sweeps, step by step --------------------------------------------


@pytest.mark.django_db
def test_with_nobody_in_range_the_trip_waits(rider, driver_at):
    driver_at(40)
    trip = request_trip(rider)

    assert trip_offer_next(trip_id=trip.pk) is None

    assert trip_status(trip.pk) == (S.REQUESTED, None)
    assert is_waiting(trip.pk)
    assert not Offer.objects.exists()


@pytest.mark.django_db
def test_once_its_search_ran_out_the_sweep_expires_it_and_it_stops_waiting(
    rider, django_capture_on_commit_callbacks
):
    trip = request_trip(rider)
    trip_offer_next(trip_id=trip.pk)
    assert is_waiting(trip.pk)
    assert trips_expire_searches() == 0, "its search has time left"

    Trip.objects.filter(pk=trip.pk).update(search_until=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert trips_expire_searches() == 1
        assert trips_expire_searches() == 0

    assert trip_status(trip.pk) == (S.EXPIRED, "no_drivers")
    assert not is_waiting(trip.pk)


@pytest.mark.django_db
def test_the_repair_sweep_leaves_a_waiting_trip_to_its_drivers(
    rider, django_capture_on_commit_callbacks
):
    trip = request_trip(rider)
    trip_offer_next(trip_id=trip.pk)
    Trip.objects.filter(pk=trip.pk).update(updated=timezone.now() - timedelta(minutes=1))

    with django_capture_on_commit_callbacks(execute=True):
        result = dispatch_repair()

    assert result.trips_redispatched == 0
    assert dispatch_tasks_for(trip) == 0


@pytest.mark.django_db
def test_the_repair_sweep_redispatches_a_trip_whose_waiting_entry_was_lost(
    rider, django_capture_on_commit_callbacks
):
    trip = request_trip(rider)
    trip_offer_next(trip_id=trip.pk)
    Trip.objects.filter(pk=trip.pk).update(updated=timezone.now() - timedelta(minutes=1))
    presence.stop_waiting(trip.pk)  # as a Redis restart would lose it

    with django_capture_on_commit_callbacks(execute=True):
        result = dispatch_repair()

    assert result.trips_redispatched == 1
    assert dispatch_tasks_for(trip) == 1
    # and that dispatch puts it back to wait.
    assert trip_offer_next(trip_id=trip.pk) is None
    assert is_waiting(trip.pk)


# --- through the worker and the sockets -----------------------------------------------

flow = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dispatch_worker", "close_sync_thread_connections"),
]


def in_flow(test):
    for mark in flow:
        test = mark(test)
    return test


async def new_driver_socket(make_user, ws_connect):
    driver = await database_sync_to_async(make_user)("driver")
    ws, connected, _ = await ws_connect(driver)
    assert connected
    return driver, ws


async def online_over_socket(ws, km: float) -> None:
    lat, lng = km_north(km)
    await ws.send_json_to({"type": "driver.online", "data": {"lat": lat, "lng": lng}})
    assert (await next_frame(ws, "driver.status"))["data"] == {"status": "online"}


async def waiting_request(rider, **fields) -> Trip:
    trip = await database_sync_to_async(trip_create)(rider=rider, **{**TRIP_REQUEST, **fields})
    await wait_until(lambda: is_waiting(trip.pk), what="the trip waiting for supply")
    return trip


@pytest.mark.parametrize("how", ["rest", "socket"])
@in_flow
async def test_a_driver_coming_online_near_a_waiting_trip_is_offered_it_at_once(
    rider, make_user, ws_connect, client_for, how
):
    # Given a trip waiting, and a driver's socket open while they are offline
    trip = await waiting_request(rider)
    driver, ws = await new_driver_socket(make_user, ws_connect)

    # When the driver goes online near the pick-up
    if how == "socket":
        await online_over_socket(ws, 0.6)
    else:
        lat, lng = km_north(0.6)
        client = await database_sync_to_async(client_for)(driver)
        response = await database_sync_to_async(client.post)(
            "/api/driver/online/", {"lat": lat, "lng": lng}, format="json"
        )
        assert response.status_code == 200

    # Then the worker offers them the trip, with no sweep in between.
    offer = await next_frame(ws, "trip.offer", within=10)
    assert offer["data"]["trip"]["id"] == str(trip.pk)
    await wait_until(lambda: not is_waiting(trip.pk), what="the trip no longer waiting")


@in_flow
@pytest.mark.usefixtures("catalogue")
async def test_a_driver_too_far_or_not_eligible_does_not_wake_it(rider, make_user, ws_connect):
    # Given an xl trip waiting
    trip = await waiting_request(rider, product="xl")

    # When a driver comes online too far away, and a standard-only one near it
    _, far_ws = await new_driver_socket(make_user, ws_connect)
    await online_over_socket(far_ws, 40)
    _, standard_ws = await new_driver_socket(make_user, ws_connect)
    await online_over_socket(standard_ws, 0.3)
    # and then an xl driver, farther than the standard one
    xl, xl_ws = await new_driver_socket(make_user, ws_connect)

    def give_xl_vehicle() -> None:
        vehicle = Vehicle.objects.create(
            driver=xl, make="Ford", model="Transit", color="white", plate="XL1", capacity=6
        )
        vehicle.products.set(Product.objects.filter(code__in=["standard", "xl"]))

    await database_sync_to_async(give_xl_vehicle)()
    await online_over_socket(xl_ws, 1.5)

    # Then only the xl driver is offered it.
    offer = await next_frame(xl_ws, "trip.offer", within=10)
    assert offer["data"]["trip"]["id"] == str(trip.pk)
    assert await far_ws.receive_nothing(timeout=0.3)
    assert await standard_ws.receive_nothing(timeout=0.3)
    drivers = await database_sync_to_async(
        lambda: list(Offer.objects.filter(trip=trip).values_list("driver_id", flat=True))
    )()
    assert drivers == [xl.pk]


@in_flow
async def test_a_driver_finishing_a_trip_nearby_wakes_a_waiting_trip(
    rider, make_user, ws_connect, client_for
):
    # Given the only driver around busy with someone else's ride
    driver, ws = await new_driver_socket(make_user, ws_connect)
    other_rider = await database_sync_to_async(make_user)("rider")

    def on_a_ride() -> Trip:
        # (written directly: the worker would race a dispatch run by hand)
        put_online(driver, 0.5)
        trip = make_trip(other_rider, status=S.IN_PROGRESS, driver=driver)
        presence.on_driver_assigned(driver.pk, trip_id=trip.pk, rider_id=other_rider.pk)
        return trip

    busy = await database_sync_to_async(on_a_ride)()
    # and a trip that found nobody free
    trip = await waiting_request(rider)

    # When the driver drops their rider off
    client = await database_sync_to_async(client_for)(driver)
    done = await database_sync_to_async(client.post)(
        f"/api/trip/{busy.pk}/status/", {"status": S.COMPLETED}, format="json"
    )
    assert done.status_code == 200

    # Then they are offered the waiting trip.
    offer = await next_frame(ws, "trip.offer", within=10)
    assert offer["data"]["trip"]["id"] == str(trip.pk)


@in_flow
async def test_a_driver_declining_nearby_wakes_a_waiting_trip(rider, make_user, ws_connect):
    # Given the only driver around holding an offer of one trip
    driver, ws = await new_driver_socket(make_user, ws_connect)
    await online_over_socket(ws, 0.5)
    first_rider = await database_sync_to_async(make_user)("rider")
    first = await database_sync_to_async(request_trip)(first_rider)
    first_offer = await next_frame(ws, "trip.offer", within=10)
    assert first_offer["data"]["trip"]["id"] == str(first.pk)
    # and a second trip that found nobody free
    second = await waiting_request(rider)

    # When the driver declines the first
    await ws.send_json_to({"type": "decline.trip", "data": {"id": str(first.pk)}})

    # Then the second is offered to them (the first now waits, without them).
    offer = await next_frame(ws, "trip.offer", within=10)
    assert offer["data"]["trip"]["id"] == str(second.pk)
    await wait_until(lambda: is_waiting(first.pk), what="the declined trip waiting")
