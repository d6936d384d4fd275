"""The ride PIN (PROTOCOL.md Part 2): the rider's to show once a driver
accepted, never in anything the driver receives; with RIDE_PIN_REQUIRED every
move to IN_PROGRESS carries it, wrong tries are counted (and kept though the
call fails), and the RIDE_PIN_MAX_ATTEMPTS-th locks the trip, which can then
only be canceled."""

import json

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings

from dispatch.loop import trip_offer_next
from tests.dispatch.support import close_sync_thread_connections, next_frame, put_online
from tests.trips.rides import ride
from tests.trips.whole_ride import S
from trips.models import Trip
from trips.services import trip_accept

__all__ = ["close_sync_thread_connections"]

# A PIN no frame could hold by chance (digits turn up in ids and timestamps),
# so "the text of the driver's frames does not contain it" means something.
MARKED_PIN = "Q7ZX"


@pytest.fixture(autouse=True)
def pin_required(settings):
    settings.RIDE_PIN_REQUIRED = True


def status_call(client, trip, status: str, **extra):
    return client.post(f"/api/trip/{trip.pk}/status/", {"status": status, **extra}, format="json")


def wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 10_000:04d}"


@pytest.mark.django_db
def test_the_rider_sees_the_pin_once_accepted_never_before(rider, driver, client_for):
    trip = ride(rider, driver, until=S.REQUESTED)
    client = client_for(rider)
    assert "pin" not in client.get(f"/api/trip/{trip.pk}/").json()

    trip_offer_next(trip_id=trip.pk)
    trip_accept(trip_id=trip.pk, driver=driver)
    mine = client.get(f"/api/trip/{trip.pk}/").json()

    assert mine["pin"] == Trip.objects.get(pk=trip.pk).pin
    assert len(mine["pin"]) == 4 and mine["pin"].isdigit()
    listed = client.get("/api/trip/").json()
    assert [t.get("pin") for t in listed] == [mine["pin"]]


@pytest.mark.django_db
@pytest.mark.parametrize("until", [S.STARTED, S.ARRIVED, S.IN_PROGRESS])
def test_the_drivers_reads_never_hold_the_pin(rider, driver, client_for, until):
    trip = ride(rider, driver, until=S.STARTED)
    Trip.objects.filter(pk=trip.pk).update(pin=MARKED_PIN)
    client = client_for(driver)
    if until != S.STARTED:
        for step in (S.ARRIVED, S.IN_PROGRESS)[: 1 if until == S.ARRIVED else 2]:
            body = {"pin": MARKED_PIN} if step == S.IN_PROGRESS else {}
            answer = status_call(client, trip, step, **body)
            assert answer.status_code == 200, answer.json()
            assert MARKED_PIN not in answer.content.decode()

    one = client.get(f"/api/trip/{trip.pk}/")
    listed = client.get("/api/trip/")

    for response in (one, listed):
        assert response.status_code == 200
        assert MARKED_PIN not in response.content.decode()
    assert "pin" not in one.json()


@pytest.mark.django_db(transaction=True)
async def test_nothing_pushed_to_the_driver_holds_the_pin(
    rider, driver, ws_connect, close_sync_thread_connections
):
    # Given a requested trip with a PIN, and the driver's socket open
    def requested() -> Trip:
        trip = ride(rider, driver, until=S.REQUESTED)
        Trip.objects.filter(pk=trip.pk).update(pin=MARKED_PIN)
        return trip

    trip = await database_sync_to_async(requested)()
    driver_ws, connected, _ = await ws_connect(driver)
    rider_ws, _, _ = await ws_connect(rider)
    assert connected

    # When it is offered to the driver, who accepts, arrives and picks up over the socket
    await database_sync_to_async(put_online)(driver, 0.4)
    await database_sync_to_async(trip_offer_next)(trip_id=trip.pk)
    frames = [await next_frame(driver_ws, "trip.offer")]
    for status, extra in ((S.STARTED, {}), (S.ARRIVED, {}), (S.IN_PROGRESS, {"pin": MARKED_PIN})):
        await driver_ws.send_json_to(
            {"type": "update.trip", "data": {"id": str(trip.pk), "status": status, **extra}}
        )
        reply = await next_frame(driver_ws, "trip.updated")
        assert reply["data"]["status"] == status, reply
        frames.append(reply)
    # (the rider, meanwhile, is pushed the trip with the PIN)
    started = await next_frame(rider_ws, "trip.updated")
    assert started["data"]["pin"] == MARKED_PIN

    # Then no frame the driver received holds it.
    for frame in frames:
        assert MARKED_PIN not in json.dumps(frame), frame["type"]
        assert "pin" not in frame["data"] and "pin" not in frame["data"].get("trip", {})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("until", [S.STARTED, S.ARRIVED])
def test_wrong_pins_are_counted_and_the_fifth_locks_the_trip(rider, driver, client_for, until):
    # Given a driver at (or on the way to) the pick-up
    trip = ride(rider, driver, until=until)
    pin = Trip.objects.get(pk=trip.pk).pin
    client = client_for(driver)
    tries = django_settings.RIDE_PIN_MAX_ATTEMPTS

    # When they try to start the ride without the PIN, then with wrong ones
    answers = [status_call(client, trip, S.IN_PROGRESS)]
    answers += [status_call(client, trip, S.IN_PROGRESS, pin=wrong(pin)) for _ in range(tries - 1)]

    # Then each try is refused and counted (committed though the call failed),
    # and the last one locks the trip
    codes = [(a.status_code, a.json()["code"]) for a in answers]
    assert codes == [(409, "invalid_pin")] * (tries - 1) + [(409, "pin_locked")]
    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.pin_attempts, row.version) == (until, tries, trip.version)

    # so that even the right PIN is refused, and counts no further
    right = status_call(client, trip, S.IN_PROGRESS, pin=pin)
    assert (right.status_code, right.json()["code"]) == (409, "pin_locked")
    assert Trip.objects.get(pk=trip.pk).pin_attempts == tries

    # but the rider can still cancel.
    canceled = client_for(rider).post(f"/api/trip/{trip.pk}/cancel/", {}, format="json")
    assert (canceled.status_code, canceled.json()["status"]) == (200, S.CANCELED)


@pytest.mark.django_db
def test_the_right_pin_after_a_wrong_one_starts_the_ride(rider, driver, client_for):
    trip = ride(rider, driver, until=S.ARRIVED)
    pin = Trip.objects.get(pk=trip.pk).pin
    client = client_for(driver)

    first = status_call(client, trip, S.IN_PROGRESS, pin=wrong(pin))
    second = status_call(client, trip, S.IN_PROGRESS, pin=pin)

    assert (first.status_code, first.json()["code"]) == (409, "invalid_pin")
    assert (second.status_code, second.json()["status"]) == (200, S.IN_PROGRESS)
    assert "pin" not in second.json()


@pytest.mark.django_db(transaction=True)
async def test_a_wrong_pin_over_the_socket_is_an_error_frame_and_counted(
    rider, driver, ws_connect, close_sync_thread_connections
):
    trip = await database_sync_to_async(ride)(rider, driver, until=S.ARRIVED)
    driver_ws, connected, _ = await ws_connect(driver)
    assert connected

    await driver_ws.send_json_to(
        {
            "type": "update.trip",
            "data": {"id": str(trip.pk), "status": S.IN_PROGRESS, "pin": "no"},
            "request_id": "go",
        }
    )
    error = await next_frame(driver_ws, "error")

    assert (error["data"]["code"], error.get("request_id")) == ("invalid_pin", "go")
    row = await database_sync_to_async(Trip.objects.get)(pk=trip.pk)
    assert (row.status, row.pin_attempts) == (S.ARRIVED, 1)


@pytest.mark.django_db
def test_without_ride_pin_required_no_pin_is_needed(rider, driver, client_for, settings):
    settings.RIDE_PIN_REQUIRED = False
    trip = ride(rider, driver, until=S.ARRIVED)

    response = status_call(client_for(driver), trip, S.IN_PROGRESS)

    assert (response.status_code, response.json()["status"]) == (200, S.IN_PROGRESS)
    assert Trip.objects.get(pk=trip.pk).pin_attempts == 0
