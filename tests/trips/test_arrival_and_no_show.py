"""The driver at the pick-up (PROTOCOL.md Part 2, "Statuses, extended"):
STARTED -> ARRIVED by the assigned driver, over REST and the socket; then the
pick-up, or a no-show cancel once NO_SHOW_WAIT_S is over, with the product's
cancellation fee. The no-show racing the rider's cancel is in
test_whole_ride_races.py."""

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from tests.dispatch.support import close_sync_thread_connections, next_frame
from tests.trips.factories import snapshot
from tests.trips.rides import ride
from tests.trips.whole_ride import S, history, wait_passed
from trips.models import Trip, TripEvent

__all__ = ["close_sync_thread_connections"]

NO_SHOW = {"reason_code": "rider_no_show"}


def status_call(client, trip, status: str, **extra):
    return client.post(f"/api/trip/{trip.pk}/status/", {"status": status, **extra}, format="json")


def cancel_call(client, trip, **body):
    return client.post(f"/api/trip/{trip.pk}/cancel/", body, format="json")


@pytest.mark.django_db
def test_the_assigned_driver_arrives_over_rest(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)

    response = status_call(client_for(driver), trip, S.ARRIVED)

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["version"]) == (S.ARRIVED, trip.version + 1)
    row = Trip.objects.get(pk=trip.pk)
    assert row.arrived_at is not None and row.driver_id == driver.pk
    assert history(trip.pk)[-1] == (S.STARTED, S.ARRIVED, "driver")


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["rider", "stranger"])
def test_nobody_but_the_assigned_driver_arrives(rider, driver, make_user, client_for, who):
    trip = ride(rider, driver, until=S.STARTED)
    before = snapshot(trip)
    caller = rider if who == "rider" else make_user("driver")

    response = status_call(client_for(caller), trip, S.ARRIVED)

    assert response.status_code == (409 if who == "rider" else 404)
    assert snapshot(trip) == before


@pytest.mark.django_db
@pytest.mark.parametrize("until", [S.REQUESTED, S.ARRIVED, S.IN_PROGRESS])
def test_arriving_from_anywhere_but_started_is_refused(rider, driver, client_for, until):
    trip = ride(rider, driver, until=until)
    before = snapshot(trip)

    response = status_call(client_for(driver), trip, S.ARRIVED)

    assert response.status_code in (404, 409)
    assert snapshot(trip) == before


@pytest.mark.django_db
def test_from_arrived_the_driver_picks_the_rider_up_and_completes(rider, driver, client_for):
    trip = ride(rider, driver, until=S.ARRIVED)
    client = client_for(driver)

    picked_up = status_call(client, trip, S.IN_PROGRESS)
    completed = status_call(client, trip, S.COMPLETED)

    assert (picked_up.status_code, picked_up.json()["status"]) == (200, S.IN_PROGRESS)
    assert (completed.status_code, completed.json()["status"]) == (200, S.COMPLETED)
    assert [(f, t) for f, t, _ in history(trip.pk)][-2:] == [
        (S.ARRIVED, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.COMPLETED),
    ]


@pytest.mark.django_db(transaction=True)
async def test_arrival_over_the_socket_is_pushed_to_the_rider(
    rider, driver, ws_connect, close_sync_thread_connections
):
    # Given a trip on its way, both sides with a socket open
    trip = await database_sync_to_async(ride)(rider, driver, until=S.STARTED)
    rider_ws, ok_rider, _ = await ws_connect(rider)
    driver_ws, ok_driver, _ = await ws_connect(driver)
    assert ok_rider and ok_driver

    # When the driver says they are at the pick-up
    await driver_ws.send_json_to(
        {
            "type": "update.trip",
            "data": {"id": str(trip.pk), "status": S.ARRIVED},
            "request_id": "here",
        }
    )

    # Then the driver's reply and the rider's push both say ARRIVED.
    reply = await next_frame(driver_ws, "trip.updated")
    pushed = await next_frame(rider_ws, "trip.updated")
    assert reply.get("request_id") == "here"
    for frame in (reply, pushed):
        assert (frame["data"]["id"], frame["data"]["status"]) == (str(trip.pk), S.ARRIVED)
        assert frame["data"]["version"] == trip.version + 1
    row = await database_sync_to_async(Trip.objects.get)(pk=trip.pk)
    assert row.arrived_at is not None


@pytest.mark.django_db
def test_a_no_show_before_the_wait_is_over_is_too_early_and_changes_nothing(
    rider, driver, client_for
):
    trip = ride(rider, driver, until=S.ARRIVED)
    wait_passed(trip, "arrived_at", settings.NO_SHOW_WAIT_S - 10)
    before = snapshot(trip)

    response = cancel_call(client_for(driver), trip, **NO_SHOW)

    assert response.status_code == 409
    assert response.json()["code"] == "too_early"
    assert snapshot(trip) == before
    row = Trip.objects.get(pk=trip.pk)
    assert (row.cancellation_fee, row.cancel_reason_code) == (None, None)
    assert not TripEvent.objects.filter(trip=trip, to_status=S.CANCELED).exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("catalogue")
def test_a_no_show_after_the_wait_cancels_with_the_products_fee(
    rider, driver, client_for, django_capture_on_commit_callbacks
):
    trip = ride(rider, driver, until=S.ARRIVED)
    wait_passed(trip, "arrived_at", settings.NO_SHOW_WAIT_S + 1)

    with django_capture_on_commit_callbacks(execute=True):
        response = cancel_call(client_for(driver), trip, **NO_SHOW)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["cancellation_fee"]) == (S.CANCELED, "5.00")
    assert body["cancel_reason_code"] == "rider_no_show"
    assert "pin" not in body
    # The rider sees the same fee on their trip.
    mine = client_for(rider).get(f"/api/trip/{trip.pk}/").json()
    assert (mine["status"], mine["cancellation_fee"]) == (S.CANCELED, "5.00")
    assert history(trip.pk)[-1] == (S.ARRIVED, S.CANCELED, "driver")


@pytest.mark.django_db
def test_a_no_show_before_arriving_is_refused(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)
    wait_passed(trip, "accepted_at", settings.NO_SHOW_WAIT_S + 60)
    before = snapshot(trip)

    response = cancel_call(client_for(driver), trip, **NO_SHOW)

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert snapshot(trip) == before


@pytest.mark.django_db
def test_a_no_show_once_the_rider_is_in_is_refused(rider, driver, client_for):
    trip = ride(rider, driver, until=S.IN_PROGRESS)
    before = snapshot(trip)

    response = cancel_call(client_for(driver), trip, **NO_SHOW)

    assert response.status_code == 409
    assert snapshot(trip) == before
