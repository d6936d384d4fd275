"""Who is sent a push notification, and when (PROTOCOL.md Part 2, "Devices
and push notifications"): `trip.updated` to a rider with no open socket;
nothing to a rider who is listening, for a change the rider made, or to a
rider with no device. Asserted on the broker: the task queued, or not."""

import pytest
from channels.db import database_sync_to_async

from notifications import tokens
from notifications.services import device_register
from tests.dispatch.support import queued_tasks
from tests.notifications.support import fcm_token
from tests.trips.factories import make_offer, make_trip
from trips.models import Trip
from trips.services import trip_accept, trip_cancel, trip_expire, trip_move
from workers import queue

S = Trip.Status


def pushes() -> list[list]:
    """The push_notification tasks queued, oldest first (the broker's list
    takes new messages at its head)."""
    return [args for name, args in reversed(queued_tasks()) if name == queue.PUSH_NOTIFICATION]


def with_device(user):
    return device_register(user=user, token=tokens.parse("fcm", fcm_token()))


@pytest.mark.django_db(transaction=True)
def test_a_rider_without_a_socket_is_notified_of_each_change_they_did_not_make(rider, driver):
    # Given a rider with a phone registered and no socket open
    with_device(rider)
    trip = make_trip(rider)
    make_offer(trip, driver)

    # When the driver accepts, arrives, and the rider cancels
    trip_accept(trip_id=trip.pk, driver=driver)
    trip_move(trip_id=trip.pk, user=driver, status=S.ARRIVED)
    trip_cancel(trip_id=trip.pk, user=rider)

    # Then the rider is sent the driver's two changes, not their own cancel
    sent = pushes()
    assert [(user_id, n["data"]["status"], n["data"]["version"]) for user_id, n in sent] == [
        (rider.pk, "STARTED", "2"),
        (rider.pk, "ARRIVED", "3"),
    ]
    notification = sent[0][1]
    assert notification["kind"] == "trip.updated"
    assert notification["data"]["trip_id"] == str(trip.pk)
    assert notification["collapse_key"] == f"trip-{trip.pk}"
    # no address or name travels through a provider
    assert trip.pick_up_address not in str(sent)
    assert rider.first_name not in str(sent) and driver.first_name not in str(sent)


@pytest.mark.django_db(transaction=True)
def test_the_service_s_changes_are_sent_too(rider):
    with_device(rider)
    trip = make_trip(rider)

    trip_expire(trip_id=trip.pk, reason=Trip.Reason.NO_DRIVERS)

    ((user_id, notification),) = pushes()
    assert (user_id, notification["data"]["status"]) == (rider.pk, "EXPIRED")
    assert notification["title"] == "No driver available"


@pytest.mark.django_db(transaction=True)
def test_a_rider_with_no_device_queues_nothing(rider, driver):
    trip = make_trip(rider)
    make_offer(trip, driver)

    trip_accept(trip_id=trip.pk, driver=driver)

    assert pushes() == []


@pytest.mark.django_db(transaction=True)
def test_drivers_are_not_sent_trip_updates(rider, driver):
    # The driver's notifications are offers their sockets missed (the ack
    # machinery's); a change of their trip they made themselves.
    with_device(driver)
    trip = make_trip(rider, status=S.STARTED, driver=driver)

    trip_cancel(trip_id=trip.pk, user=rider)

    assert pushes() == []


@pytest.mark.django_db(transaction=True)
async def test_a_rider_with_an_open_socket_is_not_sent_a_notification(ws_connect, rider, driver):
    # Given a rider with a phone registered and the app open on a socket
    await database_sync_to_async(with_device)(rider)
    trip = await database_sync_to_async(make_trip)(rider)
    await database_sync_to_async(make_offer)(trip, driver)
    socket, connected, _ = await ws_connect(rider)
    assert connected

    # When the driver accepts
    await database_sync_to_async(trip_accept)(trip_id=trip.pk, driver=driver)

    # Then the socket hears it and no notification is queued
    frame = await socket.receive_json_from(timeout=5)
    assert (frame["type"], frame["data"]["status"]) == ("trip.updated", "STARTED")
    assert await database_sync_to_async(pushes)() == []

    # and once the app closes its socket, the next change is sent
    await socket.disconnect()
    await database_sync_to_async(trip_move)(trip_id=trip.pk, user=driver, status=S.ARRIVED)
    sent = await database_sync_to_async(pushes)()
    assert [n["data"]["status"] for _, n in sent] == ["ARRIVED"]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_sends_nothing(rider, driver):
    with_device(rider)
    trip = make_trip(rider)  # no offer for this driver

    with pytest.raises(Exception):  # noqa: B017 - whichever refusal, nothing is sent
        trip_accept(trip_id=trip.pk, driver=driver)

    assert pushes() == []
