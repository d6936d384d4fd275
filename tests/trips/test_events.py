"""A trip's history (PROTOCOL.md Part 2, "After the ride"):
`GET /api/trip/<id>/events/`, written by the services in the transaction of
each status change; and the history in the admin."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from dispatch import presence
from dispatch.loop import trip_offer_next
from tests.trips.factories import make_offer
from tests.trips.rides import ride
from trips.errors import InvalidTransition, OfferNotAvailable
from trips.models import Rating, Trip, TripEvent, User
from trips.services import trip_accept, trip_cancel, trip_expire, trip_move

S = Trip.Status
EVENT_KEYS = {"at", "from", "to", "by", "reason"}


def events_url(trip: Trip) -> str:
    return f"/api/trip/{trip.pk}/events/"


def history(client: APIClient, trip: Trip) -> list[tuple]:
    """(from, to, by, reason) of each event the API lists, in its order."""
    response = client.get(events_url(trip))
    assert response.status_code == 200, response.content
    body = response.json()
    assert all(set(event) == EVENT_KEYS for event in body)
    times = [parse_datetime(event["at"]) for event in body]
    assert times == sorted(times), "not oldest first"
    return [(e["from"], e["to"], e["by"], e["reason"]) for e in body]


def event_count(trip: Trip) -> int:
    return TripEvent.objects.filter(trip=trip).count()


# --- every change, in order ------------------------------------------------------------


@pytest.mark.django_db
def test_a_whole_ride_is_recorded_in_order(rider, driver, client_for):
    trip = ride(rider, driver)

    expected = [
        (None, S.REQUESTED, "rider", None),
        (S.REQUESTED, S.STARTED, "driver", None),
        (S.STARTED, S.ARRIVED, "driver", None),
        (S.ARRIVED, S.IN_PROGRESS, "driver", None),
        (S.IN_PROGRESS, S.COMPLETED, "driver", None),
    ]
    # Both participants read the same history.
    assert history(client_for(rider), trip) == expected
    assert history(client_for(driver), trip) == expected
    # ... which names who made each change.
    users = list(TripEvent.objects.filter(trip=trip).values_list("user_id", flat=True))
    assert users == [rider.pk, driver.pk, driver.pk, driver.pk, driver.pk]


@pytest.mark.django_db
def test_a_pick_up_straight_from_started_is_recorded_too(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)
    trip_move(trip_id=trip.pk, user=driver, status=S.IN_PROGRESS)

    assert history(client_for(rider), trip)[-1] == (S.STARTED, S.IN_PROGRESS, "driver", None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reason", "recorded"), [(None, "canceled_by_rider"), ("plans changed", "plans changed")]
)
def test_a_riders_cancel_is_recorded_with_its_reason(rider, driver, client_for, reason, recorded):
    trip = ride(rider, driver, until=S.STARTED)

    response = client_for(rider).post(
        f"/api/trip/{trip.pk}/cancel/", {"reason": reason}, format="json"
    )

    assert response.status_code == 200
    assert history(client_for(rider), trip)[-1] == (S.STARTED, S.CANCELED, "rider", recorded)
    assert history(client_for(driver), trip)[-1] == (S.STARTED, S.CANCELED, "rider", recorded)


@pytest.mark.django_db
def test_an_expiry_is_recorded_as_the_services(rider, driver, client_for):
    trip = ride(rider, driver, until=S.REQUESTED)

    trip_expire(trip_id=trip.pk, reason=Trip.Reason.NO_DRIVERS)

    assert history(client_for(rider), trip) == [
        (None, S.REQUESTED, "rider", None),
        (S.REQUESTED, S.EXPIRED, "service", "no_drivers"),
    ]
    assert TripEvent.objects.filter(trip=trip, by="service").get().user_id is None


@pytest.mark.django_db
def test_a_driver_who_gives_the_trip_back_is_recorded_and_then_sees_it_no_more(
    rider, driver, client_for
):
    trip = ride(rider, driver, until=S.STARTED)

    trip_cancel(trip_id=trip.pk, user=driver, reason_code="vehicle_issue")

    assert history(client_for(rider), trip)[-1] == (
        S.STARTED,
        S.REQUESTED,
        "driver",
        "driver_canceled",
    )
    assert TripEvent.objects.filter(trip=trip).last().user_id == driver.pk
    # No longer a participant: like anyone else.
    response = client_for(driver).get(events_url(trip))
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.django_db
def test_a_scheduled_trip_starts_its_history_as_scheduled(rider, client_for):
    created = client_for(rider).post(
        "/api/trip/",
        {
            "pick_up_address": "123 Main Street",
            "pick_up_lat": 38.8977,
            "pick_up_lng": -77.0365,
            "drop_off_address": "456 Piney Road",
            "scheduled_for": (timezone.now() + timedelta(hours=2)).isoformat(),
        },
        format="json",
    )
    trip = Trip.objects.get(pk=created.json()["id"])

    assert history(client_for(rider), trip) == [(None, S.SCHEDULED, "rider", None)]


# --- in the same transaction --------------------------------------------------------------


@pytest.mark.django_db
def test_a_refused_move_writes_no_event(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)
    before = event_count(trip)

    with pytest.raises(InvalidTransition):
        trip_move(trip_id=trip.pk, user=driver, status=S.COMPLETED)
    refused = client_for(driver).post(
        f"/api/trip/{trip.pk}/status/", {"status": S.COMPLETED}, format="json"
    )

    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_transition")
    assert event_count(trip) == before


@pytest.mark.django_db
def test_a_cancel_of_an_ended_trip_writes_no_event(rider, driver, client_for):
    trip = ride(rider, driver)
    before = event_count(trip)

    refused = client_for(rider).post(f"/api/trip/{trip.pk}/cancel/", format="json")

    assert refused.status_code == 409
    assert event_count(trip) == before


@pytest.mark.django_db
def test_an_accept_the_database_refuses_leaves_no_event(make_user, driver):
    # Given a driver on one trip who also holds an offer for another
    ride(make_user("rider"), driver, until=S.STARTED)
    second = ride(make_user("rider"), make_user("driver"), until=S.REQUESTED)
    make_offer(second, driver)
    before = event_count(second)

    # When they accept it, the move to STARTED breaks one-active-trip-per-driver
    with pytest.raises(OfferNotAvailable):
        trip_accept(trip_id=second.pk, driver=driver)

    # Then the trip's history is as it was: the event went with the move
    second.refresh_from_db()
    assert second.status == S.REQUESTED
    assert event_count(second) == before


# --- who may read it -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("rider", 200),
        ("driver", 200),
        ("other_rider", 404),
        ("other_driver", 404),
        ("anonymous", 401),
    ],
)
def test_only_the_participants_may_read_the_history(
    make_user, rider, driver, client_for, caller, expected
):
    trip = ride(rider, driver, until=S.IN_PROGRESS)
    callers = {
        "rider": rider,
        "driver": driver,
        "other_rider": make_user("rider"),
        "other_driver": make_user("driver"),
    }
    client = APIClient() if caller == "anonymous" else client_for(callers[caller])

    response = client.get(events_url(trip))

    assert response.status_code == expected
    if expected != 200:
        assert response.json()["code"] == ("not_found" if expected == 404 else "not_authenticated")


@pytest.mark.django_db
def test_a_driver_only_offered_the_trip_may_not_read_its_history(rider, driver, client_for):
    trip = ride(rider, driver, until=S.REQUESTED)
    assert trip_offer_next(trip_id=trip.pk).driver_id == driver.pk
    # The offered driver may read the trip itself ...
    assert client_for(driver).get(f"/api/trip/{trip.pk}/").status_code == 200

    # ... but not its history.
    response = client_for(driver).get(events_url(trip))
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize("trip_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_or_malformed_trip_id_is_not_found(rider, client_for, trip_id):
    response = client_for(rider).get(f"/api/trip/{trip_id}/events/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


# --- the admin -----------------------------------------------------------------------------


@pytest.fixture
def staff(make_user) -> User:
    return make_user("rider", is_staff=True, is_superuser=True)


def give_back(trip: Trip, driver: User) -> None:
    trip_cancel(trip_id=trip.pk, user=driver, reason_code="other")


@pytest.mark.django_db
def test_the_user_admin_counts_each_drivers_cancels(make_user, staff, settings):
    # Given a driver who gives back two accepted trips and cancels a no-show ...
    quitter, steady = make_user("driver"), make_user("driver")
    give_back(ride(make_user("rider"), quitter, until=S.STARTED), quitter)
    give_back(ride(make_user("rider"), quitter, until=S.ARRIVED), quitter)
    no_show = ride(make_user("rider"), quitter, until=S.ARRIVED)
    Trip.objects.filter(pk=no_show.pk).update(
        arrived_at=timezone.now() - timedelta(seconds=settings.NO_SHOW_WAIT_S + 1)
    )
    trip_cancel(trip_id=no_show.pk, user=quitter, reason_code="rider_no_show")
    # ... and a driver whose rider canceled on them, after a completed ride
    presence.set_offline(quitter.pk)
    ride(make_user("rider"), steady)
    canceled_on = ride(make_user("rider"), steady, until=S.STARTED)
    trip_cancel(trip_id=canceled_on.pk, user=canceled_on.rider)

    # When staff list the users
    request = RequestFactory().get("/admin/trips/user/")
    request.user = staff
    listed = admin.site._registry[User].get_queryset(request)

    # Then only the driver's own cancels count
    cancels = dict(listed.values_list("pk", "driver_cancels"))
    assert cancels[quitter.pk] == 3
    assert cancels[steady.pk] == 0
    assert cancels[canceled_on.rider_id] == 0


@pytest.mark.django_db
def test_the_admin_pages_show_the_history_ratings_and_cancels(rider, driver, staff, client_for):
    trip = ride(rider, driver)
    client_for(rider).post(f"/api/trip/{trip.pk}/rating/", {"stars": 4}, format="json")
    browser = Client()
    browser.force_login(staff)

    users = browser.get("/admin/trips/user/")
    trip_page = browser.get(f"/admin/trips/trip/{trip.pk}/change/")
    ratings = browser.get("/admin/trips/rating/")
    rating_page = browser.get(f"/admin/trips/rating/{Rating.objects.get().pk}/change/")

    assert users.status_code == 200
    assert "Cancels as driver" in users.content.decode()
    assert trip_page.status_code == 200
    page = trip_page.content.decode()
    for status in (S.REQUESTED, S.STARTED, S.ARRIVED, S.IN_PROGRESS, S.COMPLETED):
        assert status in page
    assert ratings.status_code == 200
    # Read only: staff see a rating but cannot change it or add one.
    assert rating_page.status_code == 200
    assert "Save" not in rating_page.content.decode()
    assert browser.get("/admin/trips/rating/add/").status_code == 403
