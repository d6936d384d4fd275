"""Times of arrival on the wire (PROTOCOL.md Part 2, "Times of arrival"):
`trip.offer` carries the drive to the pick-up, the product and the fare;
accepting puts the offer's estimate on the trip, whose rider then sees the
driver's car; `driver.location` carries `eta_s` toward the pick-up, then
the drop-off. Real sockets, Redis and database; the offer's estimate also
through a routing engine (a real HTTP server answering like OSRM)."""

import pytest
from channels.db import database_sync_to_async

from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from tests.dispatch.support import PICK_UP, next_frame
from tests.pricing.support import (
    DETOUR_FACTOR,
    DROP_OFF,
    SPEED_KMH,
    close_to,
    closed_port,
    give_vehicle,
    go_online,
    straight_line_s,
)
from tests.pricing.test_eta import ENGINE_ROUTE
from tests.trips.test_consumer import open_socket, request
from trips.models import Trip
from trips.services import trip_accept, trip_create, trip_move

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("catalogue", "close_sync_thread_connections"),
]

PUBLIC_VEHICLE_KEYS = {"make", "model", "color", "plate", "capacity"}
# A driver put online 0.5 km north of the pick-up reports from here: a few
# tens of metres on, a move the speed check takes.
ON_THE_WAY = (PICK_UP[0] + 0.5 / 111.19 - 0.0004, PICK_UP[1])


def create(rider, *, product: str | None = None, drop_off: tuple | None = DROP_OFF) -> Trip:
    return trip_create(
        rider=rider,
        pick_up_address="1 Elm Street",
        pick_up_lat=PICK_UP[0],
        pick_up_lng=PICK_UP[1],
        drop_off_address="2 Oak Street",
        drop_off_lat=None if drop_off is None else drop_off[0],
        drop_off_lng=None if drop_off is None else drop_off[1],
        product=product,
    )


def assign(rider, driver, *, drop_off: tuple | None = DROP_OFF) -> Trip:
    go_online(driver, 0.5)
    trip = create(rider, drop_off=drop_off)
    trip_offer_next(trip_id=trip.pk)
    return trip_accept(trip_id=trip.pk, driver=driver)


# --- trip.offer and accept -----------------------------------------------------------


async def test_trip_offer_carries_the_pick_up_eta_the_product_and_the_fare(
    rider, driver, ws_connect
):
    await database_sync_to_async(give_vehicle)(driver, ["standard", "xl"])
    await database_sync_to_async(go_online)(driver, 1.2)
    driver_ws = await open_socket(ws_connect, driver)
    trip = await database_sync_to_async(create)(rider, product="xl")

    await database_sync_to_async(trip_offer_next)(trip_id=trip.pk)

    offered = (await next_frame(driver_ws, "trip.offer"))["data"]["trip"]
    assert offered["product"] == "xl"
    assert offered["fare"] == trip.fare and offered["fare"]["kind"] == "estimate"
    eta_s = offered["pickup_eta_s"]
    assert isinstance(eta_s, int)
    expected = offered["distance_km"] * DETOUR_FACTOR / SPEED_KMH * 3600
    assert close_to(eta_s, expected), (eta_s, expected)
    assert offered["distance_km"] == pytest.approx(1.2, abs=0.02)
    assert "rider" not in offered


async def test_accepting_puts_the_offer_s_eta_on_the_trip_and_shows_the_rider_the_car(
    rider, driver, ws_connect
):
    await database_sync_to_async(give_vehicle)(driver, ["standard"])
    await database_sync_to_async(go_online)(driver, 0.8)
    rider_ws = await open_socket(ws_connect, rider)
    driver_ws = await open_socket(ws_connect, driver)
    trip = await database_sync_to_async(create)(rider)
    await next_frame(rider_ws, "trip.created")
    await database_sync_to_async(trip_offer_next)(trip_id=trip.pk)
    offered = (await next_frame(driver_ws, "trip.offer"))["data"]["trip"]

    reply = await request(driver_ws, "accept.trip", {"id": str(trip.pk)})

    assert reply["type"] == "trip.updated", reply
    assert reply["data"]["pickup_eta_s"] == offered["pickup_eta_s"]
    pushed = (await next_frame(rider_ws, "trip.updated"))["data"]
    assert pushed["status"] == "STARTED"
    assert pushed["pickup_eta_s"] == offered["pickup_eta_s"]
    vehicle = pushed["driver"]["vehicle"]
    assert set(vehicle) == PUBLIC_VEHICLE_KEYS, "no products"
    assert (vehicle["make"], vehicle["capacity"]) == ("Toyota", 4)
    row = await database_sync_to_async(Trip.objects.get)(pk=trip.pk)
    assert row.pickup_eta_s == offered["pickup_eta_s"]


def test_the_rider_reads_the_driver_s_car_once_accepted(rider, driver, client_for):
    give_vehicle(driver, ["standard", "xl"])
    trip = assign(rider, driver)

    body = client_for(rider).get(f"/api/trip/{trip.pk}/").json()

    assert body["driver"]["id"] == driver.pk
    assert body["driver"]["vehicle"] == {
        "make": "Toyota",
        "model": "Sienna",
        "color": "Grey",
        "plate": f"XL{driver.pk:05d}",
        "capacity": 6,
    }
    listed = client_for(rider).get("/api/trip/").json()
    assert listed[0]["driver"]["vehicle"] == body["driver"]["vehicle"]


def test_a_driver_without_a_vehicle_shows_none(rider, driver, client_for):
    trip = assign(rider, driver)

    body = client_for(rider).get(f"/api/trip/{trip.pk}/").json()

    assert body["driver"]["vehicle"] is None
    assert isinstance(body["pickup_eta_s"], int)


def test_a_requested_trip_has_no_driver_and_no_pick_up_eta(rider, client_for):
    trip = create(rider)

    body = client_for(rider).get(f"/api/trip/{trip.pk}/").json()

    assert (body["driver"], body["pickup_eta_s"]) == (None, None)


# --- driver.location's eta_s -----------------------------------------------------------


async def send_position(driver_ws, at: tuple[float, float]) -> None:
    await driver_ws.send_json_to({"type": "update.location", "data": {"lat": at[0], "lng": at[1]}})


async def test_driver_location_counts_down_to_the_pick_up_then_the_drop_off(
    rider, driver, ws_connect, presence_clock
):
    trip = await database_sync_to_async(assign)(rider, driver)
    rider_ws = await open_socket(ws_connect, rider)
    driver_ws = await open_socket(ws_connect, driver)
    presence_clock.advance(5)

    await send_position(driver_ws, ON_THE_WAY)
    heading_in = (await next_frame(rider_ws, "driver.location"))["data"]

    assert heading_in["trip_id"] == str(trip.pk)
    assert isinstance(heading_in["eta_s"], int)
    assert close_to(heading_in["eta_s"], straight_line_s(ON_THE_WAY, PICK_UP))

    await database_sync_to_async(trip_move)(trip_id=trip.pk, user=driver, status="IN_PROGRESS")
    presence_clock.advance(60)
    await send_position(driver_ws, PICK_UP)
    riding = (await next_frame(rider_ws, "driver.location"))["data"]

    assert close_to(riding["eta_s"], straight_line_s(PICK_UP, DROP_OFF))
    assert riding["eta_s"] > heading_in["eta_s"]


async def test_without_a_drop_off_the_eta_is_null_once_the_rider_is_in(
    rider, driver, ws_connect, presence_clock
):
    trip = await database_sync_to_async(assign)(rider, driver, drop_off=None)
    rider_ws = await open_socket(ws_connect, rider)
    driver_ws = await open_socket(ws_connect, driver)
    presence_clock.advance(5)

    await send_position(driver_ws, ON_THE_WAY)
    heading_in = (await next_frame(rider_ws, "driver.location"))["data"]
    await database_sync_to_async(trip_move)(trip_id=trip.pk, user=driver, status="IN_PROGRESS")
    presence_clock.advance(60)
    await send_position(driver_ws, PICK_UP)
    riding = (await next_frame(rider_ws, "driver.location"))["data"]

    assert close_to(heading_in["eta_s"], straight_line_s(ON_THE_WAY, PICK_UP))
    assert "eta_s" in riding and riding["eta_s"] is None


async def test_a_driver_back_online_mid_trip_keeps_counting_down_to_the_drop_off(
    rider, driver, ws_connect, presence_clock
):
    trip = await database_sync_to_async(assign)(rider, driver)
    await database_sync_to_async(trip_move)(trip_id=trip.pk, user=driver, status="IN_PROGRESS")
    rider_ws = await open_socket(ws_connect, rider)
    driver_ws = await open_socket(ws_connect, driver)
    presence_clock.advance(60)
    await driver_ws.send_json_to(
        {"type": "driver.online", "data": {"lat": PICK_UP[0], "lng": PICK_UP[1]}}
    )
    await next_frame(driver_ws, "driver.status")
    presence_clock.advance(5)

    await send_position(driver_ws, PICK_UP)
    riding = (await next_frame(rider_ws, "driver.location"))["data"]

    assert close_to(riding["eta_s"], straight_line_s(PICK_UP, DROP_OFF))


# --- a routing engine in dispatch ----------------------------------------------------------


def test_an_offer_s_pick_up_eta_comes_from_the_routing_engine(rider, driver, settings, engine):
    settings.ETA_PROVIDER, settings.OSRM_URL = "osrm", engine.url
    go_online(driver, 1.0)
    trip = create(rider)

    offer = trip_offer_next(trip_id=trip.pk)

    assert offer.pickup_eta_s == round(ENGINE_ROUTE["duration"])
    assert Trip.objects.get(pk=trip.pk).distance_m == round(ENGINE_ROUTE["distance"])


def test_with_the_engine_down_offers_still_go_out_with_the_straight_line(rider, driver, settings):
    settings.ETA_PROVIDER = "osrm"
    settings.OSRM_URL = f"http://127.0.0.1:{closed_port()}"
    go_online(driver, 1.0)
    trip = create(rider)

    offer = trip_offer_next(trip_id=trip.pk)

    assert offer is not None
    assert close_to(offer.pickup_eta_s, offer.distance_km * DETOUR_FACTOR / SPEED_KMH * 3600)
    assert Offer.objects.filter(trip=trip).count() == 1
