"""The REST API against its own OpenAPI document (`/api/schema/`), with
Schemathesis, in-process through the WSGI app on the real database and Redis:

- generated calls to every operation, as a rider and as a driver: no server
  error, and every answer conforms to the document (status code documented,
  content type, headers, body schema), with Schemathesis' other checks on:
  schema-valid requests accepted, schema-invalid ones refused, auth not
  ignored;
- a trip's whole life walked call by call, so the success answers of calls a
  generator cannot reach (a trip that exists, an offer to accept, a 429) are
  held against the document too.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import PASSWORD
from tests.hardening.support import EXAMPLES
from tests.trips.factories import TRIP_REQUEST, make_offer
from trips.auth import tokens_for
from trips.models import Trip

pytestmark = pytest.mark.django_db(transaction=True)

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())

# Checks that cannot hold for one operation, and why. Everything else runs.
EXCLUDED = {
    # "Schema-valid requests are accepted" cannot hold where a rule is one
    # OpenAPI 3.0 cannot state; those requests get their documented 400.
    # The passwords must match and be strong, the username be free, the
    # photo be an image.
    ("POST", "/api/sign_up/"): [positive_data_acceptance],
    # Drop-off coordinates come both or neither.
    ("POST", "/api/trip/"): [positive_data_acceptance],
    # `refresh` must be a real refresh token.
    ("POST", "/api/log_out/"): [positive_data_acceptance],
    # Pick-up and drop-off must be two places, the product one in the catalogue.
    ("POST", "/api/quotes/"): [positive_data_acceptance],
    # Each product must be in the catalogue and fit the car.
    ("PUT", "/api/driver/vehicle/"): [positive_data_acceptance],
    # A tag of whitespace alone is blank, and Python reads more characters as
    # whitespace (U+0085, say) than the schema's pattern language does.
    ("POST", "/api/trip/{trip_id}/rating/"): [positive_data_acceptance],
    # A token's form depends on its platform, and a subscription's keys must
    # be a real P-256 point and its endpoint a known push service.
    ("POST", "/api/devices/"): [positive_data_acceptance],
}


@pytest.fixture(autouse=True)
def one_connection():
    """The app keeps the test's database connection across requests, as
    Django's test client does: the WSGI handler would otherwise close it
    after every request (CONN_MAX_AGE is 0 in tests) and open a new one."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {tokens_for(user)['access']}"}


def check(case, user) -> None:
    excluded = EXCLUDED.get((case.method.upper(), case.operation.path), [])
    case.call_and_validate(headers=bearer(user), excluded_checks=excluded)


# Function-scoped fixtures are shared by a test's examples on purpose: the
# generated calls run against one evolving world (trips get created, offers
# declined), as a client's calls would. No deadline: each example is a real
# request.
generated = settings(
    max_examples=max(EXAMPLES // 2, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@schema.parametrize()
@generated
def test_generated_calls_as_a_rider(case, rider, high_rates):
    check(case, rider)


@schema.parametrize()
@generated
def test_generated_calls_as_a_driver(case, driver, high_rates):
    check(case, driver)


# --- a trip's whole life, every answer held against the document --------------


def call(method: str, path: str, user=None, *, expect: int, **parts):
    """One call through the document's operation; the answer validated."""
    case = schema[path][method].Case(**parts)
    headers = bearer(user) if user is not None else {}
    response = case.call_and_validate(headers=headers)
    assert response.status_code == expect, (method, path, response.status_code, response.text)
    return response.json() if response.content else None


def test_every_answer_of_a_trips_life_matches_the_document(rider, driver, high_rates, settings):
    # Accounts.
    call(
        "POST",
        "/api/sign_up/",
        expect=201,
        body={
            "username": "new@example.com",
            "password1": "a-Long-unusual-passphrase-42",
            "password2": "a-Long-unusual-passphrase-42",
            "first_name": "New",
            "last_name": "Rider",
        },
        media_type="application/json",
    )
    tokens = call(
        "POST", "/api/log_in/", expect=200, body={"username": rider.username, "password": PASSWORD}
    )
    call("POST", "/api/token/refresh/", expect=200, body={"refresh": tokens["refresh"]})
    call("POST", "/api/log_in/", expect=401, body={"username": rider.username, "password": "no"})

    # The driver comes online and is seen on the map.
    call("POST", "/api/driver/online/", driver, expect=200, body={"lat": 38.9, "lng": -77.04})
    call("POST", "/api/driver/location/", driver, expect=204, body={"lat": 38.9, "lng": -77.04})
    nearby = call(
        "GET", "/api/driver/nearby/", rider, expect=200, query={"lat": 38.9, "lng": -77.04}
    )
    assert nearby["count"] == 1

    # A trip is requested, offered (as dispatch would), accepted and driven.
    trip = call("POST", "/api/trip/", rider, expect=201, body=TRIP_REQUEST)
    make_offer(Trip.objects.get(pk=trip["id"]), driver)
    ids = {"trip_id": trip["id"]}
    offered = call("GET", "/api/trip/{trip_id}/", driver, expect=200, path_parameters=ids)
    assert offered["rider"] is None and offered["driver"] is None
    assert call("GET", "/api/trip/", driver, expect=200)[0]["id"] == trip["id"]
    call("POST", "/api/trip/{trip_id}/accept/", driver, expect=200, path_parameters=ids)
    call("POST", "/api/trip/{trip_id}/accept/", driver, expect=409, path_parameters=ids)
    for status in ("IN_PROGRESS", "COMPLETED"):
        call(
            "POST",
            "/api/trip/{trip_id}/status/",
            driver,
            expect=200,
            path_parameters=ids,
            body={"status": status},
        )
    page = call("GET", "/api/trip/", rider, expect=200, query={"limit": 1})
    assert page["count"] == 1 and page["results"][0]["status"] == "COMPLETED"

    # Another trip, canceled; a third; a fourth while it is active; a fifth
    # refused by the throttle.
    second = call("POST", "/api/trip/", rider, expect=201, body=TRIP_REQUEST)
    call(
        "POST",
        "/api/trip/{trip_id}/cancel/",
        rider,
        expect=200,
        path_parameters={"trip_id": second["id"]},
        body={"reason": "plans changed"},
    )
    call("POST", "/api/trip/", rider, expect=201, body=TRIP_REQUEST)
    call("POST", "/api/trip/", rider, expect=409, body=TRIP_REQUEST)
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "trip_create": "1/hour",
        },
    }
    call("POST", "/api/trip/", rider, expect=429, body=TRIP_REQUEST)

    # A phone registered for push notifications, registered again, removed.
    phone = {"platform": "apns", "token": "ab" * 32}
    device = call("POST", "/api/devices/", rider, expect=201, body=phone)
    assert call("POST", "/api/devices/", rider, expect=201, body=phone)["id"] == device["id"]
    call("POST", "/api/devices/", rider, expect=400, body={"platform": "apns", "token": "x"})
    mine = {"device_id": device["id"]}
    call("DELETE", "/api/devices/{device_id}/", driver, expect=404, path_parameters=mine)
    call("DELETE", "/api/devices/{device_id}/", rider, expect=204, path_parameters=mine)

    # Refusals.
    unknown = {"trip_id": "00000000-0000-0000-0000-000000000000"}
    call("GET", "/api/trip/{trip_id}/", rider, expect=404, path_parameters=unknown)
    call("POST", "/api/trip/{trip_id}/decline/", driver, expect=409, path_parameters=unknown)
    call("POST", "/api/driver/online/", rider, expect=403, body={"lat": 1, "lng": 1})
    call("GET", "/api/trip/", expect=401)
    call("POST", "/api/driver/offline/", driver, expect=200)
    call("POST", "/api/log_out/", rider, expect=204)
