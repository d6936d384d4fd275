"""Who may cancel with which reason code, what it costs, and the driver's
cancel that sends a trip back to dispatch (PROTOCOL.md Part 2, "Statuses,
extended"). The races are in test_whole_ride_races.py."""

import json
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from dispatch.drivers import driver_go_online
from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from dispatch.offers import offer_decline
from pricing.models import Product, Vehicle
from tests.dispatch.support import (
    available,
    close_sync_thread_connections,
    dispatch_tasks_for,
    km_north,
    next_frame,
    put_online,
    request_trip,
)
from tests.trips.factories import snapshot
from tests.trips.rides import ride
from tests.trips.whole_ride import S, history, wait_passed
from trips.models import Trip, TripEvent
from trips.services import trip_accept, trip_cancel, trip_create, trip_move

__all__ = ["close_sync_thread_connections"]


def cancel_call(client, trip, **body):
    return client.post(f"/api/trip/{trip.pk}/cancel/", body, format="json")


def give_back(trip, driver, reason_code="vehicle_issue") -> Trip:
    return trip_cancel(trip_id=trip.pk, user=driver, reason_code=reason_code)


# --- reason codes ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("side", "code"),
    [
        ("rider", "rider_no_show"),
        ("rider", "vehicle_issue"),
        ("rider", "unsafe"),
        ("rider", "made_up"),
        ("driver", "changed_mind"),
        ("driver", "driver_too_far"),
        ("driver", "wrong_pickup"),
        ("driver", "made_up"),
    ],
)
def test_a_reason_code_not_of_the_callers_side_is_a_400_and_writes_nothing(
    rider, driver, client_for, side, code
):
    trip = ride(rider, driver, until=S.ARRIVED)
    wait_passed(trip, "arrived_at", settings.NO_SHOW_WAIT_S + 1)
    before, events = snapshot(trip), TripEvent.objects.filter(trip=trip).count()
    caller = rider if side == "rider" else driver

    response = cancel_call(client_for(caller), trip, reason_code=code)

    assert response.status_code == 400, response.json()
    assert snapshot(trip) == before
    assert TripEvent.objects.filter(trip=trip).count() == events
    assert Trip.objects.get(pk=trip.pk).cancel_reason_code is None


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["changed_mind", "driver_too_far", "wrong_pickup", "other", None])
def test_every_riders_code_is_taken(rider, client_for, code):
    trip = request_trip(rider)
    body = {} if code is None else {"reason_code": code}

    response = cancel_call(client_for(rider), trip, **body)

    assert response.status_code == 200, response.json()
    assert response.json()["cancel_reason_code"] == code


# --- fees -------------------------------------------------------------------------------


@pytest.mark.usefixtures("catalogue")
def test_a_rider_cancel_before_acceptance_is_free(rider, client_for):
    trip = request_trip(rider)

    body = cancel_call(client_for(rider), trip).json()

    assert (body["status"], body["cancellation_fee"]) == (S.CANCELED, None)


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize("until", [S.STARTED, S.ARRIVED])
def test_a_rider_cancel_within_the_free_window_after_acceptance_is_free(
    rider, driver, client_for, until
):
    trip = ride(rider, driver, until=until)
    wait_passed(trip, "accepted_at", settings.RIDER_FREE_CANCEL_S - 10)

    body = cancel_call(client_for(rider), trip, reason_code="changed_mind").json()

    assert (body["status"], body["cancellation_fee"]) == (S.CANCELED, None)
    assert Trip.objects.get(pk=trip.pk).cancellation_fee is None


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize("until", [S.STARTED, S.ARRIVED])
def test_a_rider_cancel_after_the_free_window_is_charged(rider, driver, client_for, until):
    trip = ride(rider, driver, until=until)
    wait_passed(trip, "accepted_at", settings.RIDER_FREE_CANCEL_S + 1)

    body = cancel_call(client_for(rider), trip, reason_code="driver_too_far").json()

    assert (body["status"], body["cancellation_fee"]) == (S.CANCELED, "5.00")
    assert Trip.objects.get(pk=trip.pk).cancellation_fee == Decimal("5.00")
    # The driver sees the trip ended, and the same fee.
    assert history(trip.pk)[-1] == (until, S.CANCELED, "rider")


@pytest.mark.usefixtures("catalogue")
def test_the_fee_is_the_rate_card_the_trip_was_priced_with(rider, driver, client_for):
    # Given a trip priced at 5.00 to cancel, then the product's fee raised
    trip = ride(rider, driver, until=S.ARRIVED)
    product = Product.objects.get(code="standard")
    product.cancellation_fee = Decimal("9.00")
    product.save()
    assert product.current_rate_card().pk != trip.rate_card_id
    wait_passed(trip, "arrived_at", settings.NO_SHOW_WAIT_S + 1)

    body = cancel_call(client_for(driver), trip, reason_code="rider_no_show").json()

    assert body["cancellation_fee"] == "5.00"


@pytest.mark.usefixtures("catalogue")
def test_an_xl_no_show_charges_the_xl_fee(rider, make_user, client_for):
    driver = make_user("driver")
    vehicle = Vehicle.objects.create(
        driver=driver, make="Ford", model="Transit", color="white", plate="XL1", capacity=6
    )
    vehicle.products.set(Product.objects.filter(code__in=["standard", "xl"]))
    trip = trip_create(
        rider=rider,
        product="xl",
        pick_up_address="a",
        pick_up_lat=38.8977,
        pick_up_lng=-77.0365,
        drop_off_address="b",
        drop_off_lat=38.91,
        drop_off_lng=-77.05,
    )
    driver_go_online(driver=driver, lat=km_north(0.3)[0], lng=km_north(0.3)[1])
    assert trip_offer_next(trip_id=trip.pk).driver_id == driver.pk
    trip_accept(trip_id=trip.pk, driver=driver)
    trip_move(trip_id=trip.pk, user=driver, status=S.ARRIVED)
    wait_passed(trip, "arrived_at", settings.NO_SHOW_WAIT_S + 1)

    body = cancel_call(client_for(driver), trip, reason_code="rider_no_show").json()

    assert body["cancellation_fee"] == "7.50"


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize("code", ["vehicle_issue", "unsafe", "other", None])
def test_a_drivers_give_back_costs_the_rider_nothing(rider, driver, client_for, code):
    trip = ride(rider, driver, until=S.ARRIVED)
    wait_passed(trip, "accepted_at", settings.RIDER_FREE_CANCEL_S + 60)
    body = {} if code is None else {"reason_code": code}

    response = cancel_call(client_for(driver), trip, **body)

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["cancellation_fee"]) == (S.REQUESTED, None)


# --- the driver's cancel: back to dispatch ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("until", [S.STARTED, S.ARRIVED])
def test_a_drivers_cancel_sends_the_trip_back_to_dispatch(
    rider, driver, client_for, django_capture_on_commit_callbacks, until
):
    trip = ride(rider, driver, until=until)

    with django_capture_on_commit_callbacks(execute=True):
        response = cancel_call(client_for(driver), trip, reason_code="vehicle_issue")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["status_reason"], body["driver"]) == (
        S.REQUESTED,
        "driver_canceled",
        None,
    )
    # The driver's answer is a trip they are no longer on: no rider identity.
    assert body["rider"] is None and "pin" not in body
    row = Trip.objects.get(pk=trip.pk)
    assert (row.accepted_at, row.arrived_at, row.cancel_reason_code) == (
        None,
        None,
        "vehicle_issue",
    )
    assert row.version == trip.version + 1
    assert dispatch_tasks_for(trip) == 1
    assert driver.pk in available(), "the driver is free for other trips"
    assert history(trip.pk)[-1] == (until, S.REQUESTED, "driver")
    # The trip is no longer theirs to read.
    assert client_for(driver).get(f"/api/trip/{trip.pk}/").status_code == 404


@pytest.mark.django_db
def test_a_trip_given_back_goes_to_another_driver_never_to_the_one_who_left(
    rider, driver, make_user, django_capture_on_commit_callbacks
):
    # Given a driver who gave a trip back and is still the nearest free one
    trip = ride(rider, driver, until=S.STARTED)
    with django_capture_on_commit_callbacks(execute=True):
        give_back(trip, driver)
    other = make_user("driver")
    put_online(other, 1.5)
    put_online(driver, 0.1)

    # When dispatch runs: the other driver is offered it
    offer = trip_offer_next(trip_id=trip.pk)
    assert offer is not None and offer.driver_id == other.pk
    # and when they decline, dispatch has nobody left to ask: the trip waits,
    # and the driver who left is never asked again.
    with django_capture_on_commit_callbacks(execute=True):
        offer_decline(trip_id=trip.pk, driver=other)
    assert trip_offer_next(trip_id=trip.pk) is None

    assert Trip.objects.get(pk=trip.pk).status == S.REQUESTED
    assert list(
        Offer.objects.filter(trip=trip, driver=driver).values_list("status", flat=True)
    ) == [Offer.Status.ACCEPTED]


@pytest.mark.django_db
def test_the_drivers_gives_back_are_counted(rider, make_user, driver):
    first = ride(rider, driver, until=S.STARTED)
    give_back(first, driver, "unsafe")
    trip_cancel(trip_id=first.pk, user=rider)
    second = ride(make_user("rider"), driver, until=S.ARRIVED)
    give_back(second, driver, None)

    given_back = TripEvent.objects.filter(
        user=driver, by="driver", to_status=S.REQUESTED, reason="driver_canceled"
    )
    assert given_back.count() == 2
    assert set(given_back.values_list("from_status", flat=True)) == {S.STARTED, S.ARRIVED}


@pytest.mark.django_db(transaction=True)
async def test_a_drivers_cancel_tells_the_rider_and_the_driver(
    rider, driver, ws_connect, close_sync_thread_connections
):
    # Given a trip on its way, both sides with a socket open
    trip = await database_sync_to_async(ride)(rider, driver, until=S.ARRIVED)
    rider_ws, ok_rider, _ = await ws_connect(rider)
    driver_ws, ok_driver, _ = await ws_connect(driver)
    other_ws, _, _ = await ws_connect(driver)
    assert ok_rider and ok_driver

    # When the driver gives it back over the socket
    await driver_ws.send_json_to(
        {"type": "cancel.trip", "data": {"id": str(trip.pk), "reason_code": "vehicle_issue"}}
    )

    # Then the rider hears it is back in dispatch
    pushed = await next_frame(rider_ws, "trip.updated")
    assert (pushed["data"]["status"], pushed["data"]["status_reason"]) == (
        S.REQUESTED,
        "driver_canceled",
    )
    assert pushed["data"]["driver"] is None
    # and the driver's sockets get the trip without the rider's identity.
    reply = await next_frame(driver_ws, "trip.updated")
    elsewhere = await next_frame(other_ws, "trip.updated")
    for frame in (reply, elsewhere):
        assert frame["data"]["status"] == S.REQUESTED
        assert frame["data"]["rider"] is None
        assert "pin" not in frame["data"]
        assert rider.username not in json.dumps(frame)
