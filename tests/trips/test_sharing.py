"""Share links (PROTOCOL.md Part 2, "After the ride"): the rider's
`POST /api/trip/<id>/share/` and the public `GET /api/shared/<token>/`."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from dispatch.loop import trip_offer_next
from pricing.models import Vehicle
from tests.dispatch.support import km_north
from tests.trips.rides import ride
from trips.models import ShareLink, Trip
from trips.sharing import share_expires_at

S = Trip.Status
SHARED_KEYS = {"status", "driver", "position", "eta_s"}
# The rider and driver as the tests name them: distinctive enough that any
# trace of them in a public answer shows.
RIDER_NAMES = {"first_name": "Zenobia", "last_name": "Quillfeather"}
DRIVER_NAMES = {"first_name": "Oswin", "last_name": "Marchbanks"}


@pytest.fixture
def rider(make_user):
    return make_user("rider", username="zenobia.q@example.com", **RIDER_NAMES)


@pytest.fixture
def driver(make_user):
    return make_user("driver", username="oswin.m@example.com", **DRIVER_NAMES)


def share(client: APIClient, trip: Trip):
    return client.post(f"/api/trip/{trip.pk}/share/", format="json")


def shared(token: str, **extra):
    """The public view, as someone with the link and no account sees it."""
    return APIClient().get(f"/api/shared/{token}/", **extra)


def token_of(client: APIClient, trip: Trip) -> str:
    response = share(client, trip)
    assert response.status_code == 201, response.content
    return response.json()["token"]


def keys_anywhere(value: object) -> set[str]:
    """Every key of every object in a JSON value, however deep."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()


# --- who may share -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("caller", "expected", "code"),
    [
        ("rider", 201, None),
        ("driver", 403, "forbidden"),
        ("other_rider", 404, "not_found"),
        ("other_driver", 404, "not_found"),
        ("anonymous", 401, "not_authenticated"),
    ],
)
def test_only_the_rider_may_share_the_trip(
    make_user, rider, driver, client_for, caller, expected, code
):
    trip = ride(rider, driver, until=S.STARTED)
    callers = {
        "rider": rider,
        "driver": driver,
        "other_rider": make_user("rider"),
        "other_driver": make_user("driver"),
    }
    client = APIClient() if caller == "anonymous" else client_for(callers[caller])

    response = share(client, trip)

    assert response.status_code == expected, response.content
    if code is None:
        assert set(response.json()) == {"token", "url", "expires_at"}
    else:
        assert response.json()["code"] == code
        assert not ShareLink.objects.exists()


@pytest.mark.django_db
def test_a_driver_only_offered_the_trip_may_not_share_it(rider, driver, client_for):
    trip = ride(rider, driver, until=S.REQUESTED)
    assert trip_offer_next(trip_id=trip.pk).driver_id == driver.pk

    response = share(client_for(driver), trip)

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize("status", [S.REQUESTED, S.STARTED, S.ARRIVED, S.IN_PROGRESS])
def test_a_running_trip_can_be_shared(rider, driver, client_for, status):
    trip = ride(rider, driver, until=status)

    response = share(client_for(rider), trip)

    assert response.status_code == 201
    body = response.json()
    # 32 random bytes: 43 URL-safe characters.
    assert len(body["token"]) >= 43
    assert body["url"] == f"http://testserver/api/shared/{body['token']}/"
    assert body["expires_at"] is None


@pytest.mark.django_db
def test_a_scheduled_trip_can_be_shared(rider, client_for):
    scheduled_for = timezone.now() + timedelta(hours=2)
    created = client_for(rider).post(
        "/api/trip/",
        {
            "pick_up_address": "123 Main Street",
            "pick_up_lat": 38.8977,
            "pick_up_lng": -77.0365,
            "drop_off_address": "456 Piney Road",
            "scheduled_for": scheduled_for.isoformat(),
        },
        format="json",
    )
    assert created.json()["status"] == S.SCHEDULED
    trip = Trip.objects.get(pk=created.json()["id"])

    token = token_of(client_for(rider), trip)

    assert shared(token).json() == {
        "status": S.SCHEDULED,
        "driver": None,
        "position": None,
        "eta_s": None,
    }


@pytest.mark.django_db
def test_sharing_again_gives_the_same_link(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)
    first = share(client_for(rider), trip)

    again = share(client_for(rider), trip)

    assert again.status_code == 201
    assert again.json() == first.json()
    assert ShareLink.objects.filter(trip=trip).count() == 1


@pytest.mark.django_db
def test_tokens_differ_from_trip_to_trip(make_user, driver, client_for):
    tokens = set()
    for _ in range(3):
        rider_ = make_user("rider")
        tokens.add(token_of(client_for(rider_), ride(rider_, driver, until=S.REQUESTED)))
    assert len(tokens) == 3


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["completed", "canceled"])
def test_an_ended_trip_cannot_be_shared(rider, driver, client_for, how):
    if how == "completed":
        trip = ride(rider, driver)
    else:
        trip = ride(rider, driver, until=S.STARTED)
        client_for(rider).post(f"/api/trip/{trip.pk}/cancel/", format="json")

    response = share(client_for(rider), trip)

    assert (response.status_code, response.json()["code"]) == (409, "not_shareable")
    assert not ShareLink.objects.exists()


# --- what the link shows -----------------------------------------------------------


@pytest.mark.django_db
def test_the_public_view_carries_no_rider_identity_and_only_the_drivers_first_name(
    rider, driver, client_for
):
    trip = ride(rider, driver, until=S.STARTED)
    # (Recorded after the ride began: a car serving no product is offered nothing.)
    Vehicle.objects.create(
        driver=driver, make="Toyota", model="Prius", color="Blue", plate="ABC123", capacity=4
    )
    token = token_of(client_for(rider), trip)

    response = shared(token)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == SHARED_KEYS
    assert body["status"] == S.STARTED
    assert body["driver"] == {
        "first_name": "Oswin",
        "vehicle": {
            "make": "Toyota",
            "model": "Prius",
            "color": "Blue",
            "plate": "ABC123",
            "capacity": 4,
        },
    }
    text = response.content.decode()
    for trace in (rider.username, *RIDER_NAMES.values(), driver.username, "Marchbanks"):
        assert trace not in text
    # No ids or account fields, at any depth.
    assert not keys_anywhere(body) & {"id", "rider", "username", "last_name", "photo", "pin"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_the_public_view_needs_no_login_and_ignores_a_bad_token(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)
    token = token_of(client_for(rider), trip)

    response = shared(token, HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 200


@pytest.mark.django_db
def test_a_requested_trip_shows_its_status_and_nothing_else(rider, driver, client_for):
    trip = ride(rider, driver, until=S.REQUESTED)
    token = token_of(client_for(rider), trip)

    assert shared(token).json() == {
        "status": S.REQUESTED,
        "driver": None,
        "position": None,
        "eta_s": None,
    }


@pytest.mark.django_db
def test_the_drivers_position_shows_once_they_ping(rider, driver, client_for):
    # Given a shared trip a driver accepted
    trip = ride(rider, driver, until=S.STARTED)
    token = token_of(client_for(rider), trip)

    # When the driver reports a new position (a few metres on, as a car moves)
    here = km_north(0.35)
    before = timezone.now()
    reported = client_for(driver).post(
        "/api/driver/location/", {"lat": here[0], "lng": here[1]}, format="json"
    )
    assert reported.status_code == 204

    # Then the link shows it, when it was heard, and the time to the pick-up
    body = shared(token).json()
    assert (body["position"]["lat"], body["position"]["lng"]) == pytest.approx(here)
    assert parse_datetime(body["position"]["at"]) >= before - timedelta(seconds=1)
    assert 30 <= body["eta_s"] <= 120  # 350 m, times 1.3, at 25 km/h: about 66 s


@pytest.mark.django_db
def test_the_eta_heads_for_the_drop_off_once_the_rider_is_in(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)
    token = token_of(client_for(rider), trip)
    to_pick_up = shared(token).json()["eta_s"]

    client_for(driver).post(
        f"/api/trip/{trip.pk}/status/", {"status": S.IN_PROGRESS}, format="json"
    )
    body = shared(token).json()

    # The drop-off is about 2.4 km from the pick-up; the driver is 400 m from it.
    assert body["status"] == S.IN_PROGRESS
    assert body["position"] is not None
    assert body["eta_s"] > to_pick_up


@pytest.mark.django_db
def test_a_driver_who_gives_the_trip_back_disappears_from_the_link(rider, driver, client_for):
    trip = ride(rider, driver, until=S.ARRIVED)
    token = token_of(client_for(rider), trip)
    assert shared(token).json()["position"] is not None

    canceled = client_for(driver).post(f"/api/trip/{trip.pk}/cancel/", format="json")
    assert canceled.json()["status"] == S.REQUESTED

    assert shared(token).json() == {
        "status": S.REQUESTED,
        "driver": None,
        "position": None,
        "eta_s": None,
    }


@pytest.mark.django_db
def test_an_ended_trip_shows_no_position_and_the_link_expires_30_minutes_later(
    rider, driver, client_for
):
    # Given a shared trip that then completes
    trip = ride(rider, driver, until=S.IN_PROGRESS)
    token = token_of(client_for(rider), trip)
    client_for(driver).post(f"/api/trip/{trip.pk}/status/", {"status": S.COMPLETED}, format="json")

    # Then the link still answers, without a position, and sharing again is refused
    body = shared(token).json()
    assert (body["status"], body["position"], body["eta_s"]) == (S.COMPLETED, None, None)
    assert body["driver"]["first_name"] == "Oswin"

    # ... until SHARE_LINK_AFTER_END_S after the end
    after = timedelta(seconds=settings.SHARE_LINK_AFTER_END_S)
    now = timezone.now()
    Trip.objects.filter(pk=trip.pk).update(ended_at=now - after + timedelta(minutes=1))
    assert shared(token).status_code == 200
    Trip.objects.filter(pk=trip.pk).update(ended_at=now - after - timedelta(seconds=1))
    gone = shared(token)
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")


@pytest.mark.django_db
def test_the_share_answer_says_when_an_ended_trips_link_expires(rider, driver, client_for):
    # Sharing is refused once the trip ends, so read the expiry the view
    # computes from the stored link.
    trip = ride(rider, driver, until=S.IN_PROGRESS)
    token_of(client_for(rider), trip)
    client_for(driver).post(f"/api/trip/{trip.pk}/status/", {"status": S.COMPLETED}, format="json")
    trip.refresh_from_db()

    assert share_expires_at(trip) == trip.ended_at + timedelta(
        seconds=settings.SHARE_LINK_AFTER_END_S
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token",
    ["x" * 43, "unknown", "a" * 200, "%00", "bad%20token", "..", "%E2%9C%93"],
)
def test_an_unknown_or_malformed_token_is_not_found(token):
    response = shared(token)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.django_db
def test_a_near_miss_of_a_real_token_is_not_found(rider, driver, client_for):
    trip = ride(rider, driver, until=S.STARTED)
    token = token_of(client_for(rider), trip)
    flipped = ("A" if token[0] != "A" else "B") + token[1:]

    assert shared(flipped).status_code == 404
    assert shared(token[:-1]).status_code == 404
    assert shared(token.upper() if token != token.upper() else token.lower()).status_code == 404


# --- throttled per address ------------------------------------------------------------


@pytest.mark.django_db
def test_the_public_view_is_throttled_per_client_address(rider, driver, client_for, settings):
    trip = ride(rider, driver, until=S.STARTED)
    token = token_of(client_for(rider), trip)
    rest = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **rest,
        "DEFAULT_THROTTLE_RATES": {**rest["DEFAULT_THROTTLE_RATES"], "shared": "2/min"},
    }

    answers = [shared(token, REMOTE_ADDR="198.51.100.7").status_code for _ in range(3)]
    # Unknown tokens spend the same budget: guessing is throttled too.
    guess = shared("x" * 43, REMOTE_ADDR="198.51.100.7")
    elsewhere = shared(token, REMOTE_ADDR="203.0.113.9")

    assert answers == [200, 200, 429]
    assert (guess.status_code, guess.json()["code"]) == (429, "rate_limited")
    assert "Retry-After" in guess
    assert elsewhere.status_code == 200
    assert json.loads(elsewhere.content)["status"] == S.STARTED
