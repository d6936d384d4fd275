"""The dispatch loop end to end inside one process: real sockets (the ASGI app
through WebsocketCommunicator), a real Celery worker thread, real Redis and
database. Drivers go online over their sockets; riders request over theirs."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from dispatch import presence
from dispatch.models import Offer
from tests.dispatch.support import km_north, next_frame, trip_status, wait_until
from tests.trips.factories import TRIP_REQUEST
from trips.models import Trip
from workers.tasks import expire_stale_trips, sweep_dispatch

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("dispatch_worker", "close_sync_thread_connections"),
]

OFFER_TRIP_FIELDS = {
    "id",
    "pick_up_address",
    "pick_up_lat",
    "pick_up_lng",
    "drop_off_address",
    "drop_off_lat",
    "drop_off_lng",
    "distance_km",
    # PROTOCOL.md Part 2: the drive to the pick-up, and what the ride is.
    "pickup_eta_s",
    "product",
    "fare",
}


@pytest.fixture
def online_driver(make_user, ws_connect):
    """A driver's socket, online `km` north of the pick-up."""

    async def connect(km: float):
        driver = await database_sync_to_async(make_user)("driver")
        ws, connected, _ = await ws_connect(driver)
        assert connected
        lat, lng = km_north(km)
        await ws.send_json_to({"type": "driver.online", "data": {"lat": lat, "lng": lng}})
        assert (await ws.receive_json_from(timeout=5))["data"] == {"status": "online"}
        return driver, ws

    return connect


@pytest.fixture
def rider_socket(make_user, ws_connect):
    async def connect():
        rider = await database_sync_to_async(make_user)("rider")
        ws, connected, _ = await ws_connect(rider)
        assert connected
        return rider, ws

    return connect


async def wait_until_waiting(trip_id: str) -> None:
    """Until the dispatch worker has parked the trip to wait for supply."""
    await wait_until(lambda: presence.waiting([trip_id]) == {trip_id}, within=10)


async def request(ws, body=None) -> str:
    await ws.send_json_to({"type": "create.trip", "data": body or TRIP_REQUEST})
    return (await next_frame(ws, "trip.created"))["data"]["id"]


async def test_the_nearest_driver_is_offered_first_and_only_they_hear_of_it(
    online_driver, rider_socket
):
    far, far_ws = await online_driver(1.5)
    near, near_ws = await online_driver(0.4)
    _, rider_ws = await rider_socket()

    trip_id = await request(rider_ws)
    offer = await next_frame(near_ws, "trip.offer")

    data = offer["data"]
    assert set(data) == {"offer_id", "expires_at", "timeout_s", "trip"}
    assert set(data["trip"]) == OFFER_TRIP_FIELDS, "no rider identity before acceptance"
    assert data["trip"]["id"] == trip_id
    assert data["trip"]["distance_km"] == pytest.approx(0.4, abs=0.02)
    assert await far_ws.receive_nothing(timeout=0.5)
    assert await rider_ws.receive_nothing(timeout=0.1), "the rider hears nothing of offers"


async def test_a_decline_moves_the_trip_to_the_second_nearest(online_driver, rider_socket):
    near, near_ws = await online_driver(0.4)
    second, second_ws = await online_driver(1.2)
    third, third_ws = await online_driver(3.0)
    _, rider_ws = await rider_socket()
    trip_id = await request(rider_ws)
    await next_frame(near_ws, "trip.offer")

    await near_ws.send_json_to({"type": "decline.trip", "data": {"id": trip_id}})
    await next_frame(near_ws, "trip.offer.declined")
    offer = await next_frame(second_ws, "trip.offer")

    assert offer["data"]["trip"]["id"] == trip_id
    assert await third_ws.receive_nothing(timeout=0.3)
    assert await near_ws.receive_nothing(timeout=0.1), "no second offer for the decliner"


async def test_an_unanswered_offer_times_out_and_moves_on(online_driver, rider_socket, settings):
    settings.DISPATCH_OFFER_TIMEOUT_S = 1
    near, near_ws = await online_driver(0.4)
    second, second_ws = await online_driver(1.2)
    _, rider_ws = await rider_socket()
    trip_id = await request(rider_ws)
    first = await next_frame(near_ws, "trip.offer")
    assert first["data"]["timeout_s"] == 1

    revoked = await next_frame(near_ws, "trip.offer.revoked", within=10)
    offer = await next_frame(second_ws, "trip.offer", within=10)

    assert revoked["data"] == {
        "trip_id": trip_id,
        "offer_id": first["data"]["offer_id"],
        "reason": "expired",
    }
    assert offer["data"]["trip"]["id"] == trip_id
    statuses = await database_sync_to_async(
        lambda: list(Offer.objects.order_by("created").values_list("status", flat=True))
    )()
    assert statuses == [Offer.Status.EXPIRED, Offer.Status.PENDING]


async def test_when_everyone_declines_and_the_search_is_over_the_trip_expires(
    online_driver, rider_socket, settings
):
    # No time left to wait for supply (PROTOCOL.md Part 2): expiry at once.
    settings.DISPATCH_SEARCH_TIMEOUT_S = 0
    drivers = [await online_driver(km) for km in (0.4, 1.2)]
    _, rider_ws = await rider_socket()
    trip_id = await request(rider_ws)

    for _, ws in drivers:
        await next_frame(ws, "trip.offer")
        await ws.send_json_to({"type": "decline.trip", "data": {"id": trip_id}})
    updated = await next_frame(rider_ws, "trip.updated")

    assert updated["data"]["id"] == trip_id
    assert (updated["data"]["status"], updated["data"]["status_reason"]) == (
        "EXPIRED",
        "no_drivers",
    )
    assert updated["data"]["version"] == 2


async def test_with_nobody_in_range_and_no_search_time_the_trip_expires_at_once(
    online_driver, rider_socket, settings
):
    settings.DISPATCH_SEARCH_TIMEOUT_S = 0
    _, far_ws = await online_driver(40)
    _, rider_ws = await rider_socket()

    trip_id = await request(rider_ws)
    updated = await next_frame(rider_ws, "trip.updated", within=5)

    assert (updated["data"]["id"], updated["data"]["status"]) == (trip_id, "EXPIRED")
    assert updated["data"]["status_reason"] == "no_drivers"
    assert await far_ws.receive_nothing(timeout=0.3)


async def test_a_waiting_trip_goes_to_the_first_driver_who_comes_online_near_it(
    online_driver, rider_socket
):
    # Given a request with nobody in range: it waits for supply.
    _, far_ws = await online_driver(40)
    _, rider_ws = await rider_socket()
    trip_id = await request(rider_ws)
    await wait_until_waiting(trip_id)

    # When a driver comes online near the pick-up
    _, near_ws = await online_driver(0.5)

    # Then they are offered it at once, with no sweep or poll in between.
    offer = await next_frame(near_ws, "trip.offer", within=5)
    assert offer["data"]["trip"]["id"] == trip_id
    assert await far_ws.receive_nothing(timeout=0.3)


async def test_a_rider_cancel_during_an_offer_revokes_it(online_driver, rider_socket):
    near, near_ws = await online_driver(0.4)
    _, second_ws = await online_driver(1.2)
    _, rider_ws = await rider_socket()
    trip_id = await request(rider_ws)
    offer = await next_frame(near_ws, "trip.offer")

    await rider_ws.send_json_to({"type": "cancel.trip", "data": {"id": trip_id}})
    revoked = await next_frame(near_ws, "trip.offer.revoked")

    assert revoked["data"] == {
        "trip_id": trip_id,
        "offer_id": offer["data"]["offer_id"],
        "reason": "canceled",
    }
    assert await second_ws.receive_nothing(timeout=0.5), "a canceled trip is offered to no one"
    assert await database_sync_to_async(trip_status)(trip_id) == (
        Trip.Status.CANCELED,
        "canceled_by_rider",
    )


async def test_a_driver_going_offline_during_an_offer_moves_it_on(online_driver, rider_socket):
    near, near_ws = await online_driver(0.4)
    _, second_ws = await online_driver(1.2)
    _, rider_ws = await rider_socket()
    trip_id = await request(rider_ws)
    offer = await next_frame(near_ws, "trip.offer")

    await near_ws.send_json_to({"type": "driver.offline", "data": {}})
    revoked = await next_frame(near_ws, "trip.offer.revoked")
    moved = await next_frame(second_ws, "trip.offer")

    assert revoked["data"]["offer_id"] == offer["data"]["offer_id"]
    assert revoked["data"]["reason"] == "canceled"
    assert moved["data"]["trip"]["id"] == trip_id
    assert await near_ws.receive_nothing(timeout=0.3), "offline: no further offers"


async def test_two_trips_at_once_never_offer_the_same_driver(online_driver, rider_socket):
    drivers = [await online_driver(km) for km in (0.4, 0.6)]
    riders = [await rider_socket() for _ in range(2)]

    trip_ids = await asyncio.gather(*(request(ws) for _, ws in riders))
    offers = [await next_frame(ws, "trip.offer") for _, ws in drivers]

    assert sorted(o["data"]["trip"]["id"] for o in offers) == sorted(trip_ids)
    for _, ws in drivers:
        assert await ws.receive_nothing(timeout=0.3), "one offer per driver"


async def test_an_accepted_trip_streams_the_drivers_positions_to_the_rider(
    online_driver, rider_socket
):
    driver, driver_ws = await online_driver(0.4)
    _, rider_ws = await rider_socket()
    trip_id = await request(rider_ws)
    await next_frame(driver_ws, "trip.offer")

    await driver_ws.send_json_to({"type": "accept.trip", "data": {"id": trip_id}})
    started = await next_frame(rider_ws, "trip.updated")
    # 50 m on from where the driver went online: on the way to the pick-up
    lat, lng = km_north(0.35)
    await driver_ws.send_json_to({"type": "update.location", "data": {"lat": lat, "lng": lng}})
    location = await next_frame(rider_ws, "driver.location")

    assert (started["data"]["status"], started["data"]["driver"]["id"]) == ("STARTED", driver.pk)
    assert location["data"]["trip_id"] == trip_id


async def test_the_sweeper_rescues_an_offer_whose_expire_task_was_lost(online_driver, rider_socket):
    near, near_ws = await online_driver(0.4)
    _, second_ws = await online_driver(1.2)
    rider, rider_ws = await rider_socket()

    def lost_offer() -> Offer:
        # A trip whose offer was written but whose expire task never ran.
        trip = Trip.objects.create(rider=rider, **TRIP_REQUEST)
        return Offer.objects.create(
            trip=trip, driver=near, expires_at=timezone.now() - timedelta(seconds=30)
        )

    offer = await database_sync_to_async(lost_offer)()

    sweep_dispatch.delay()
    revoked = await next_frame(near_ws, "trip.offer.revoked")
    moved = await next_frame(second_ws, "trip.offer")

    assert revoked["data"] == {
        "trip_id": str(offer.trip_id),
        "offer_id": str(offer.pk),
        "reason": "expired",
    }
    assert moved["data"]["trip"]["id"] == str(offer.trip_id)


async def test_a_stale_trip_is_cleaned_up(online_driver, rider_socket, settings):
    near, near_ws = await online_driver(0.4)
    _, rider_ws = await rider_socket()
    trip_id = await request(rider_ws)
    await next_frame(near_ws, "trip.offer")
    age = timedelta(seconds=settings.TRIP_STALE_AFTER_S + 1)
    await database_sync_to_async(
        lambda: Trip.objects.filter(pk=trip_id).update(
            created=timezone.now() - age, updated=timezone.now() - age
        )
    )()

    expire_stale_trips.delay()
    updated = await next_frame(rider_ws, "trip.updated")
    revoked = await next_frame(near_ws, "trip.offer.revoked")

    assert (updated["data"]["status"], updated["data"]["status_reason"]) == ("EXPIRED", "stale")
    assert revoked["data"]["trip_id"] == trip_id
    await wait_until(
        lambda: not Offer.objects.filter(status=Offer.Status.PENDING).exists(),
        what="no live offer left",
    )
