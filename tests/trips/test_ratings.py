"""Ratings after the ride (PROTOCOL.md Part 2, "After the ride"):
`POST /api/trip/<id>/rating/` and the `rating` on the user object."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from tests.trips.rides import ride
from tests.trips.test_races import run_together
from trips.models import Rating, Trip, User

S = Trip.Status
RATING_KEYS = {"stars", "comment", "tags", "created", "side"}


def rating_url(trip: Trip) -> str:
    return f"/api/trip/{trip.pk}/rating/"


def rating_of(user: User) -> dict | None:
    return User.objects.get(pk=user.pk).rating


def counts(user: User) -> tuple[int, int]:
    row = User.objects.get(pk=user.pk)
    return row.rating_count, row.rating_total


@pytest.fixture
def completed(rider, driver) -> Trip:
    return ride(rider, driver)


# --- who may rate ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("caller", "expected", "side"),
    [
        ("rider", 201, "rider"),
        ("driver", 201, "driver"),
        ("other_rider", 404, None),
        ("other_driver", 404, None),
        ("anonymous", 401, None),
    ],
)
def test_only_the_trips_rider_and_driver_may_rate_it(
    make_user, rider, driver, completed, client_for, caller, expected, side
):
    # Given a completed trip and five callers
    callers = {
        "rider": rider,
        "driver": driver,
        "other_rider": make_user("rider"),
        "other_driver": make_user("driver"),
    }
    client = APIClient() if caller == "anonymous" else client_for(callers[caller])

    # When each rates it
    response = client.post(rating_url(completed), {"stars": 4}, format="json")

    # Then only the participants are heard, each from their own side
    assert response.status_code == expected, response.content
    if expected == 201:
        assert set(response.json()) == RATING_KEYS
        assert response.json()["side"] == side
        assert response.json()["stars"] == 4
    else:
        assert Rating.objects.count() == 0
        assert counts(rider) == counts(driver) == (0, 0)
        assert response.json()["code"] == ("not_found" if expected == 404 else "not_authenticated")


@pytest.mark.django_db
def test_a_malformed_or_unknown_trip_id_is_not_found(rider, client_for):
    client = client_for(rider)
    for trip_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = client.post(f"/api/trip/{trip_id}/rating/", {"stars": 5}, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


# --- what a rating does ------------------------------------------------------------


@pytest.mark.django_db
def test_the_riders_rating_rates_the_driver_and_the_drivers_rates_the_rider(
    rider, driver, completed, client_for
):
    # When the rider gives 5 stars with a comment and tags, and the driver 3
    by_rider = client_for(rider).post(
        rating_url(completed),
        {"stars": 5, "comment": "Smooth ride", "tags": ["clean car", "polite"]},
        format="json",
    )
    by_driver = client_for(driver).post(rating_url(completed), {"stars": 3}, format="json")

    # Then each is stored as given, against the other side
    assert by_rider.status_code == by_driver.status_code == 201
    body = by_rider.json()
    assert (body["stars"], body["comment"], body["tags"], body["side"]) == (
        5,
        "Smooth ride",
        ["clean car", "polite"],
        "rider",
    )
    assert (by_driver.json()["comment"], by_driver.json()["tags"]) == ("", [])
    stored = {r.side: (r.rater_id, r.ratee_id, r.stars) for r in Rating.objects.all()}
    assert stored == {
        "rider": (rider.pk, driver.pk, 5),
        "driver": (driver.pk, rider.pk, 3),
    }
    # ... and each ratee's average counts it
    assert rating_of(driver) == {"average": 5.0, "count": 1}
    assert rating_of(rider) == {"average": 3.0, "count": 1}


@pytest.mark.django_db
def test_the_rider_sees_the_drivers_average_on_the_trip(make_user, driver, client_for):
    # Given a driver with no rating yet, then two rides rated 5 and 2
    first_rider, second_rider = make_user("rider"), make_user("rider")
    first = ride(first_rider, driver)
    before = client_for(first_rider).get(f"/api/trip/{first.pk}/").json()
    assert before["driver"]["rating"] is None
    assert before["rider"]["rating"] is None

    client_for(first_rider).post(rating_url(first), {"stars": 5}, format="json")
    second = ride(second_rider, driver)
    client_for(second_rider).post(rating_url(second), {"stars": 2}, format="json")

    # Then both riders see the driver's average over both ratings
    for rider_, trip in ((first_rider, first), (second_rider, second)):
        seen = client_for(rider_).get(f"/api/trip/{trip.pk}/").json()
        assert seen["driver"]["rating"] == {"average": 3.5, "count": 2}
        assert seen["rider"]["rating"] is None
    # ... as the driver does on their own view of the trip
    as_driver = client_for(driver).get(f"/api/trip/{second.pk}/").json()
    assert as_driver["driver"]["rating"] == {"average": 3.5, "count": 2}


@pytest.mark.django_db
def test_the_average_is_rounded_to_two_places(make_user, driver, client_for):
    for stars in (5, 4, 4):
        rider_ = make_user("rider")
        trip = ride(rider_, driver)
        response = client_for(rider_).post(rating_url(trip), {"stars": stars}, format="json")
        assert response.status_code == 201
    assert rating_of(driver) == {"average": 4.33, "count": 3}


# --- one rating per side -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("side", ["rider", "driver"])
def test_a_second_rating_from_the_same_side_is_already_rated(
    rider, driver, completed, client_for, side
):
    rater, ratee = (rider, driver) if side == "rider" else (driver, rider)
    client = client_for(rater)
    assert client.post(rating_url(completed), {"stars": 2}, format="json").status_code == 201

    again = client.post(
        rating_url(completed), {"stars": 5, "comment": "changed my mind"}, format="json"
    )

    assert (again.status_code, again.json()["code"]) == (409, "already_rated")
    # The first rating stands, counted once.
    assert list(Rating.objects.values_list("side", "stars", "comment")) == [(side, 2, "")]
    assert counts(ratee) == (1, 2)


# --- when a trip may be rated -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", [S.REQUESTED, S.STARTED, S.ARRIVED, S.IN_PROGRESS])
def test_a_trip_still_running_is_not_rateable(rider, driver, client_for, status):
    trip = ride(rider, driver, until=status)
    rater = rider if status == S.REQUESTED else driver

    response = client_for(rater).post(rating_url(trip), {"stars": 5}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "not_rateable")
    assert Rating.objects.count() == 0


@pytest.mark.django_db
def test_a_canceled_trip_is_not_rateable(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)
    assert client_for(rider).post(f"/api/trip/{trip.pk}/cancel/").status_code == 200

    for rater in (rider, driver):
        response = client_for(rater).post(rating_url(trip), {"stars": 1}, format="json")
        assert (response.status_code, response.json()["code"]) == (409, "not_rateable")
    assert Rating.objects.count() == 0
    assert counts(rider) == counts(driver) == (0, 0)


@pytest.mark.django_db
def test_the_rating_window_closes_rating_window_s_after_the_trip_ended(
    rider, driver, completed, client_for
):
    window = timedelta(seconds=settings.RATING_WINDOW_S)
    now = timezone.now()
    # Given a trip that ended just inside the window: the driver's rating is taken
    Trip.objects.filter(pk=completed.pk).update(ended_at=now - window + timedelta(minutes=5))
    taken = client_for(driver).post(rating_url(completed), {"stars": 4}, format="json")
    assert taken.status_code == 201

    # When it ended longer ago than the window
    Trip.objects.filter(pk=completed.pk).update(ended_at=now - window - timedelta(seconds=1))
    late = client_for(rider).post(rating_url(completed), {"stars": 4}, format="json")

    # Then the rider's rating is refused and nothing is counted
    assert (late.status_code, late.json()["code"]) == (409, "not_rateable")
    assert list(Rating.objects.values_list("side", flat=True)) == ["driver"]
    assert counts(driver) == (0, 0)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"stars": 0},
        {"stars": 6},
        {"stars": -1},
        {"stars": "5"},
        {"stars": 4.5},
        {"stars": True},
        {"stars": None},
        {"stars": 5, "comment": "x" * 1001},
        {"stars": 5, "comment": 7},
        {"stars": 5, "tags": "clean car"},
        {"stars": 5, "tags": [f"tag{i}" for i in range(11)]},
        {"stars": 5, "tags": ["x" * 33]},
        {"stars": 5, "tags": [""]},
        {"stars": 5, "tags": [3]},
        {"stars": 5, "tags": ["a\x00b"]},
        ["stars", 5],
    ],
)
def test_bad_input_is_a_400_and_writes_nothing(rider, driver, completed, client_for, body):
    response = client_for(rider).post(rating_url(completed), body, format="json")

    assert response.status_code == 400, response.content
    assert Rating.objects.count() == 0
    assert counts(driver) == (0, 0)


@pytest.mark.django_db
def test_a_bad_tag_is_named_in_the_fields_list_of_messages(completed, rider, client_for):
    body = {"stars": 5, "tags": ["polite", "x" * 33]}

    response = client_for(rider).post(rating_url(completed), body, format="json")

    # Like every field error: {field: [messages]}.
    assert response.json() == {
        "tags": ["Item 2: Ensure this field has no more than 32 characters."]
    }


@pytest.mark.django_db
def test_the_longest_input_allowed_is_taken(rider, driver, completed, client_for):
    body = {"stars": 1, "comment": "x" * 1000, "tags": [f"{i}".ljust(32, "t") for i in range(10)]}

    response = client_for(rider).post(rating_url(completed), body, format="json")

    assert response.status_code == 201, response.content
    assert (response.json()["comment"], response.json()["tags"]) == (body["comment"], body["tags"])


# --- at the same moment ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_two_ratings_from_one_side_at_once_count_once(rider, driver, client_for, round_):
    # Given a completed trip, and the rider's app posting its rating twice at once
    trip = ride(rider, driver)
    clients = [client_for(rider), client_for(rider)]

    responses = run_together(
        [
            lambda client=client, stars=stars: client.post(
                rating_url(trip), {"stars": stars}, format="json"
            )
            for client, stars in zip(clients, (4, 2), strict=True)
        ]
    )

    # Then exactly one is taken and the other is already_rated
    assert sorted(r.status_code for r in responses) == [201, 409], responses
    loser = next(r for r in responses if r.status_code == 409)
    assert loser.json()["code"] == "already_rated"
    winner = next(r for r in responses if r.status_code == 201)
    # ... and the driver's average counts the winner once
    assert Rating.objects.count() == 1
    assert counts(driver) == (1, winner.json()["stars"])


@pytest.mark.django_db(transaction=True)
def test_ratings_of_one_driver_at_once_are_all_counted(make_user, driver, client_for):
    # Given three riders whose trips with one driver have ended
    trips = {}
    for _ in range(3):
        rider_ = make_user("rider")
        trips[rider_.pk] = (client_for(rider_), ride(rider_, driver))

    # When all three rate the driver at the same moment
    responses = run_together(
        [
            lambda client=client, trip=trip, stars=stars: client.post(
                rating_url(trip), {"stars": stars}, format="json"
            )
            for (client, trip), stars in zip(trips.values(), (5, 4, 3), strict=True)
        ]
    )

    # Then no increment is lost
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert counts(driver) == (3, 12)
    assert rating_of(driver) == {"average": 4.0, "count": 3}
