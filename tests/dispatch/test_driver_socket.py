"""Drivers over the socket: `driver.online`, `driver.offline`, `update.location`,
and positions streamed to the rider of the driver's trip (PROTOCOL.md)."""

import pytest
from channels.db import database_sync_to_async

from dispatch import keys
from dispatch.loop import trip_offer_next
from taxi.infra.redis import get_redis
from tests.dispatch.support import driver_state, next_frame, put_online, request_trip
from tests.dispatch.test_driver_rest import BAD_POSITIONS, available, nothing_stored
from trips.services import trip_accept, trip_move

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_sync_thread_connections"),
]


async def test_driver_online_over_the_socket_replies_with_the_status(driver, ws_connect):
    ws, connected, _ = await ws_connect(driver)
    assert connected

    await ws.send_json_to(
        {"type": "driver.online", "data": {"lat": 38.9, "lng": -77.03}, "request_id": 7}
    )
    reply = await ws.receive_json_from(timeout=5)

    assert reply == {"type": "driver.status", "data": {"status": "online"}, "request_id": 7}
    assert available() == {driver.pk}
    assert await ws.receive_nothing(timeout=0.3), "one reply, no second copy pushed"

    await ws.send_json_to({"type": "driver.offline", "data": {}})
    assert await ws.receive_json_from(timeout=5) == {
        "type": "driver.status",
        "data": {"status": "offline"},
    }
    assert available() == set()


async def test_the_drivers_other_sockets_hear_the_status_change(driver, ws_connect, client_for):
    phone, _, _ = await ws_connect(driver)
    client = await database_sync_to_async(client_for)(driver)

    response = await database_sync_to_async(client.post)(
        "/api/driver/online/", {"lat": 38.9, "lng": -77.03}, format="json"
    )

    assert response.status_code == 200
    assert (await next_frame(phone, "driver.status"))["data"] == {"status": "online"}


async def test_a_rider_cannot_go_online_and_the_socket_stays_open(rider, ws_connect):
    ws, _, _ = await ws_connect(rider)

    for type_, data in [
        ("driver.online", {"lat": 38.9, "lng": -77.03}),
        ("driver.offline", {}),
        ("update.location", {"lat": 38.9, "lng": -77.03}),
    ]:
        await ws.send_json_to({"type": type_, "data": data, "request_id": "r1"})
        error = await ws.receive_json_from(timeout=5)
        assert error["type"] == "error" and error["data"]["code"] == "forbidden"
        assert error["request_id"] == "r1"

    await ws.send_json_to({"type": "echo.message", "data": "still here"})
    assert (await ws.receive_json_from(timeout=5))["data"] == "still here"
    assert nothing_stored()


@pytest.mark.parametrize("type_", ["driver.online", "update.location"])
async def test_bad_positions_over_the_socket_get_an_invalid_error(driver, ws_connect, type_):
    ws, _, _ = await ws_connect(driver)

    for data in [*BAD_POSITIONS, "not an object", [1, 2]]:
        await ws.send_json_to({"type": type_, "data": data})
        error = await ws.receive_json_from(timeout=5)
        assert error["type"] == "error" and error["data"]["code"] == "invalid", data

    assert nothing_stored()


async def test_update_location_has_no_reply_and_moves_the_driver(driver, ws_connect):
    ws, _, _ = await ws_connect(driver)
    await ws.send_json_to({"type": "driver.online", "data": {"lat": 38.9, "lng": -77.03}})
    await ws.receive_json_from(timeout=5)

    await ws.send_json_to({"type": "update.location", "data": {"lat": 38.9005, "lng": -77.0305}})

    assert await ws.receive_nothing(timeout=0.3)
    lng, lat = get_redis().geopos(keys.AVAILABLE, driver.pk)[0]
    assert (lat, lng) == pytest.approx((38.9005, -77.0305), abs=1e-5)


# Where a driver put online 0.5 km from the pick-up reports next: a few tens
# of metres on, a move the speed check takes at once.
ON_THE_WAY = (38.9025, -77.0365)
FURTHER_ON = (38.903, -77.0365)


def _assign(rider, driver):
    put_online(driver, 0.5)
    trip = request_trip(rider)
    trip_offer_next(trip_id=trip.pk)
    return trip_accept(trip_id=trip.pk, driver=driver)


async def test_positions_of_a_driver_on_a_trip_stream_to_its_rider_throttled(
    rider, driver, make_user, ws_connect
):
    trip = await database_sync_to_async(_assign)(rider, driver)
    other_rider = await database_sync_to_async(make_user)("rider")
    rider_ws, _, _ = await ws_connect(rider)
    bystander_ws, _, _ = await ws_connect(other_rider)
    driver_ws, _, _ = await ws_connect(driver)

    await driver_ws.send_json_to(
        {
            "type": "update.location",
            "data": {"lat": ON_THE_WAY[0], "lng": ON_THE_WAY[1], "heading": 45},
        }
    )
    frame = await next_frame(rider_ws, "driver.location")
    # Within the same quarter second: the rider is not sent a second position.
    await driver_ws.send_json_to(
        {"type": "update.location", "data": {"lat": FURTHER_ON[0], "lng": FURTHER_ON[1]}}
    )

    data = frame["data"]
    assert set(data) == {"trip_id", "lat", "lng", "heading", "eta_s", "at"}
    assert (data["trip_id"], data["lat"], data["lng"], data["heading"]) == (
        str(trip.pk),
        *ON_THE_WAY,
        45,
    )
    assert await rider_ws.receive_nothing(timeout=0.15)
    assert await bystander_ws.receive_nothing(timeout=0.1)
    assert await driver_ws.receive_nothing(timeout=0.1)


async def test_a_position_over_rest_reaches_the_rider_too(rider, driver, ws_connect, client_for):
    trip = await database_sync_to_async(_assign)(rider, driver)
    rider_ws, _, _ = await ws_connect(rider)
    client = await database_sync_to_async(client_for)(driver)

    response = await database_sync_to_async(client.post)(
        "/api/driver/location/", {"lat": ON_THE_WAY[0], "lng": ON_THE_WAY[1]}, format="json"
    )

    assert response.status_code == 204
    data = (await next_frame(rider_ws, "driver.location"))["data"]
    assert (data["trip_id"], data["heading"]) == (str(trip.pk), None)


async def test_positions_stop_streaming_when_the_trip_is_over(rider, driver, ws_connect):
    trip = await database_sync_to_async(_assign)(rider, driver)
    for status in ("IN_PROGRESS", "COMPLETED"):
        await database_sync_to_async(trip_move)(trip_id=trip.pk, user=driver, status=status)
    rider_ws, _, _ = await ws_connect(rider)
    driver_ws, _, _ = await ws_connect(driver)

    await driver_ws.send_json_to(
        {"type": "update.location", "data": {"lat": ON_THE_WAY[0], "lng": ON_THE_WAY[1]}}
    )

    assert await rider_ws.receive_nothing(timeout=0.4)
    assert driver.pk in available(), "free again after the trip"


async def test_going_online_during_a_trip_does_not_make_the_driver_available(
    rider, driver, ws_connect
):
    await database_sync_to_async(_assign)(rider, driver)
    ws, _, _ = await ws_connect(driver)
    lat, lng = ON_THE_WAY

    await ws.send_json_to({"type": "driver.online", "data": {"lat": lat, "lng": lng}})

    assert (await ws.receive_json_from(timeout=5))["data"] == {"status": "online"}
    assert available() == set()
    assert driver_state(driver.pk)["state"] == keys.STATE_ON_TRIP


async def test_with_presence_unreachable_the_socket_gets_an_error_and_stays_open(
    driver, ws_connect, settings
):
    ws, _, _ = await ws_connect(driver)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # presence only; the channel layer is unchanged

    await ws.send_json_to({"type": "update.location", "data": {"lat": 38.9, "lng": -77.03}})
    error = await ws.receive_json_from(timeout=10)

    assert error["type"] == "error" and error["data"]["code"] == "unavailable"
    await ws.send_json_to({"type": "echo.message", "data": "still here"})
    assert (await ws.receive_json_from(timeout=5))["data"] == "still here"
