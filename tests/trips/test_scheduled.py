"""Scheduled rides (PROTOCOL.md Part 2, "Statuses, extended"): booked over
REST, promoted to dispatch by the sweep at SCHEDULE_DISPATCH_LEAD_S before
their time, canceled free, and expired when nobody took them. The races are in
test_whole_ride_races.py."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dispatch.models import Offer
from tests.dispatch.support import dispatch_tasks_for, put_online, queued_tasks
from tests.trips.factories import TRIP_REQUEST
from tests.trips.whole_ride import S, ahead, book, bookable_time, history, make_due
from trips.errors import TooManyScheduled
from trips.models import Trip
from trips.services import (
    trip_cancel,
    trip_create,
    trips_expire_searches,
    trips_promote_due,
)

pytestmark = pytest.mark.django_db

DISPATCH = "workers.dispatch_trip"


def book_over_rest(client, when) -> object:
    return client.post(
        "/api/trip/", {**TRIP_REQUEST, "scheduled_for": when.isoformat()}, format="json"
    )


def test_a_booking_is_scheduled_and_nothing_is_dispatched(
    rider, driver, client_for, django_capture_on_commit_callbacks
):
    # Given a driver free right at the pick-up
    put_online(driver, 0.2)
    when = bookable_time()

    # When the rider books a ride for later
    with django_capture_on_commit_callbacks(execute=True):
        response = book_over_rest(client_for(rider), when)

    # Then the trip is SCHEDULED for that time, and no dispatch or offer follows.
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == S.SCHEDULED
    assert parse_datetime(body["scheduled_for"]) == when
    assert body["driver"] is None and "pin" not in body
    assert [name for name, _ in queued_tasks() if name == DISPATCH] == []
    assert not Offer.objects.exists()
    assert history(body["id"]) == [(None, S.SCHEDULED, "rider")]


@pytest.mark.parametrize(
    "seconds_ahead",
    [
        pytest.param(-60, id="in the past"),
        pytest.param(60, id="a minute ahead"),
        pytest.param(settings.SCHEDULE_MIN_AHEAD_S - 30, id="just short of the minimum"),
        pytest.param(7 * 24 * 3600 + 3600, id="more than 7 days ahead"),
    ],
)
def test_a_booking_outside_the_window_is_a_400_and_writes_nothing(rider, client_for, seconds_ahead):
    response = book_over_rest(client_for(rider), ahead(seconds_ahead))

    assert response.status_code == 400, response.json()
    assert not Trip.objects.exists()


def test_a_booking_just_inside_the_window_is_taken(rider, client_for):
    near = book_over_rest(client_for(rider), ahead(settings.SCHEDULE_MIN_AHEAD_S + 60))
    far = book_over_rest(client_for(rider), ahead(7 * 24 * 3600 - 60))

    assert (near.status_code, far.status_code) == (201, 201)


def test_a_sixth_scheduled_trip_is_refused(rider, client_for):
    client = client_for(rider)
    for hour in range(settings.SCHEDULE_MAX_PER_RIDER):
        assert book_over_rest(client, bookable_time(3600 * (hour + 1))).status_code == 201

    response = book_over_rest(client, bookable_time(3600 * 10))

    assert response.status_code == 409
    assert response.json()["code"] == "too_many_scheduled"
    assert Trip.objects.filter(rider=rider).count() == settings.SCHEDULE_MAX_PER_RIDER


def test_a_canceled_booking_frees_its_place(rider):
    trips = [book(rider, bookable_time(3600 * (n + 1))) for n in range(5)]
    with pytest.raises(TooManyScheduled):
        book(rider)

    trip_cancel(trip_id=trips[0].pk, user=rider)

    assert book(rider).status == S.SCHEDULED


def test_a_rider_on_an_active_trip_may_still_book(rider, client_for):
    client = client_for(rider)
    now = client.post("/api/trip/", TRIP_REQUEST, format="json")

    later = book_over_rest(client, bookable_time())

    assert (now.status_code, later.status_code) == (201, 201)
    assert later.json()["status"] == S.SCHEDULED


def test_a_booking_does_not_block_a_ride_now(rider, client_for):
    book(rider)

    response = client_for(rider).post("/api/trip/", TRIP_REQUEST, format="json")

    assert response.status_code == 201
    assert response.json()["status"] == S.REQUESTED


def test_the_rider_cancels_a_booking_free(rider, client_for):
    trip = book(rider)

    response = client_for(rider).post(
        f"/api/trip/{trip.pk}/cancel/", {"reason_code": "changed_mind"}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["cancellation_fee"]) == (S.CANCELED, None)
    row = Trip.objects.get(pk=trip.pk)
    assert (row.cancellation_fee, row.cancel_reason_code) == (None, "changed_mind")
    assert history(trip.pk)[-1] == (S.SCHEDULED, S.CANCELED, "rider")


def test_a_due_booking_is_promoted_and_dispatched_others_are_left_alone(
    make_user, django_capture_on_commit_callbacks
):
    due, later = make_user("rider"), make_user("rider")
    due_trip, later_trip = book(due), book(later)
    make_due(due_trip, seconds_ahead=settings.SCHEDULE_DISPATCH_LEAD_S - 30)

    with django_capture_on_commit_callbacks(execute=True):
        promoted = trips_promote_due()

    assert promoted == 1
    row = Trip.objects.get(pk=due_trip.pk)
    assert (row.status, row.version) == (S.REQUESTED, 2)
    assert row.search_until == row.scheduled_for + timedelta(
        seconds=settings.DISPATCH_SEARCH_TIMEOUT_S
    )
    assert dispatch_tasks_for(due_trip) == 1
    assert history(due_trip.pk)[-1] == (S.SCHEDULED, S.REQUESTED, "service")
    assert Trip.objects.get(pk=later_trip.pk).status == S.SCHEDULED
    assert dispatch_tasks_for(later_trip) == 0


def test_promoting_twice_dispatches_once(rider, django_capture_on_commit_callbacks):
    trip = book(rider)
    make_due(trip)

    with django_capture_on_commit_callbacks(execute=True):
        first = trips_promote_due()
    with django_capture_on_commit_callbacks(execute=True):
        second = trips_promote_due()

    assert (first, second) == (1, 0)
    assert dispatch_tasks_for(trip) == 1
    assert Trip.objects.get(pk=trip.pk).version == 2


def test_a_due_booking_waits_while_its_rider_rides_then_expires(
    rider, django_capture_on_commit_callbacks
):
    # Given a booking that is due while its rider is still on another trip
    booking = book(rider)
    ongoing = trip_create(rider=rider, **TRIP_REQUEST)
    make_due(booking)

    # When the sweep runs: the booking stays SCHEDULED (tried again next sweep)
    with django_capture_on_commit_callbacks(execute=True):
        assert trips_promote_due() == 0
    row = Trip.objects.get(pk=booking.pk)
    assert (row.status, row.version) == (S.SCHEDULED, 1)
    assert dispatch_tasks_for(booking) == 0
    assert trips_expire_searches() == 0, "its search has not run out yet"

    # and once its time plus DISPATCH_SEARCH_TIMEOUT_S has passed, it expires.
    Trip.objects.filter(pk=booking.pk).update(
        scheduled_for=timezone.now() - timedelta(seconds=settings.DISPATCH_SEARCH_TIMEOUT_S + 5),
        search_until=timezone.now() - timedelta(seconds=5),
    )
    # (the rider's ride, REQUESTED a moment ago, has time left)
    with django_capture_on_commit_callbacks(execute=True):
        assert trips_expire_searches() == 1
        assert trips_expire_searches() == 0

    row = Trip.objects.get(pk=booking.pk)
    assert (row.status, row.status_reason) == (S.EXPIRED, "no_drivers")
    assert history(booking.pk)[-1] == (S.SCHEDULED, S.EXPIRED, "service")
    assert Trip.objects.get(pk=ongoing.pk).status == S.REQUESTED


def test_a_booking_promoted_once_the_rider_is_free(rider, django_capture_on_commit_callbacks):
    booking = book(rider)
    ongoing = trip_create(rider=rider, **TRIP_REQUEST)
    make_due(booking)
    assert trips_promote_due() == 0

    trip_cancel(trip_id=ongoing.pk, user=rider)
    with django_capture_on_commit_callbacks(execute=True):
        assert trips_promote_due() == 1

    assert Trip.objects.get(pk=booking.pk).status == S.REQUESTED
    assert dispatch_tasks_for(booking) == 1
