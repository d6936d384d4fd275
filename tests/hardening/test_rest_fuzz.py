"""Bad input over REST, generated (Hypothesis): whatever a client sends, the
answer is a clear 4xx, never a 500, and nothing is written.

Bodies are valid ones with at least one field broken (NaN and infinities,
huge and out-of-range numbers, wrong types, missing fields, very long
strings, NUL and lone surrogates), plus unknown fields; raw bodies are bytes
sent as `application/json` (invalid UTF-8, truncated and deeply nested JSON,
non-standard literals, numbers of thousands of digits). The cases written out
one by one live with each endpoint's own tests (tests/trips, tests/taxi,
tests/dispatch); these look for the ones nobody wrote.
"""

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from notifications import tokens
from tests.conftest import PASSWORD
from tests.hardening.support import (
    EXAMPLES,
    TRIP_BREAKERS,
    bad_choice,
    bad_number,
    bad_text,
    broken,
    containers,
    encode,
    fuzz_settings,
    json_values,
    lat,
    lng,
    not_text,
    presence,
    repeated,
    row_counts,
)
from tests.trips.factories import TRIP_REQUEST, make_trip, snapshot
from trips.models import Trip

pytestmark = pytest.mark.django_db

S = Trip.Status
MOVES = ["IN_PROGRESS", "COMPLETED"]
# What the cancel reason, TextField(max_length=255, allow_null, allow_blank), refuses.
bad_reason = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(),
    containers,
    repeated(256, 10_000),
    st.text(max_size=10).map(lambda s: s + "\x00"),
    st.text(max_size=10).map(lambda s: s + "\ud800"),
)

TRIP_REQUIRED = {"pick_up_address", "pick_up_lat", "pick_up_lng", "drop_off_address"}

SIGN_UP = {
    "username": "new.rider@example.com",
    "password1": "a-Long-unusual-passphrase-42",
    "password2": "a-Long-unusual-passphrase-42",
    "first_name": "New",
    "last_name": "Rider",
    "group": "rider",
}
SIGN_UP_BREAKERS = {
    "username": bad_text(150),
    "password1": st.one_of(not_text, st.just(""), repeated(129, 2000)),
    "password2": st.one_of(
        not_text, st.text(max_size=40).filter(lambda s: s != SIGN_UP["password1"])
    ),
    "first_name": bad_text(150),
    "last_name": bad_text(150),
    "group": bad_choice(["rider", "driver"]),
    "photo": json_values.filter(lambda value: value is not None),
}
SIGN_UP_REQUIRED = {"username", "password1", "password2", "first_name", "last_name"}

# Bodies no parser should get past. (An empty body is no body: a cancel
# without a reason, which is allowed.)
RAW_BODIES = st.one_of(
    st.binary(min_size=1, max_size=300),
    st.binary(min_size=1, max_size=20).map(lambda b: b'{"pick_up_address": "\xff' + b + b'"}'),
    st.sampled_from(
        [
            b"{",
            b'{"pick_up_lat": NaN}',
            b'{"pick_up_lat": Infinity, "pick_up_lng": -Infinity}',
            b'{"username": "a" "b"}',
            b"\xef\xbb\xbf{}",  # a byte-order mark
            b'{"status": "IN_PROGRESS"',
        ]
    ),
    st.integers(4_400, 20_000).map(lambda n: b'{"pick_up_lat": ' + b"9" * n + b"}"),
    st.integers(2_000, 100_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(2_000, 50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, len(json.dumps(TRIP_REQUEST)) - 1).map(
        lambda n: json.dumps(TRIP_REQUEST).encode()[:n]
    ),
    json_values.filter(lambda v: not isinstance(v, dict)).map(encode),
)


def send(client: APIClient, path: str, body: bytes, content_type: str = "application/json"):
    return client.generic("POST", path, body, content_type=content_type)


def assert_clean_refusal(response, status: int | None = 400) -> None:
    """A 4xx with a JSON body: `{"detail", "code"}`, or field errors."""
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if status is not None:
        assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body, dict) and body
    if "code" in body:
        assert isinstance(body["code"], str) and isinstance(body["detail"], str)
    else:
        assert all(isinstance(messages, list | dict) for messages in body.values()), body


@pytest.fixture
def world(make_user, client_for, high_rates):
    """A rider free to request a trip, and a trip in progress between another
    rider and a driver (so status and cancel calls reach their validation)."""
    free_rider, rider, driver = make_user("rider"), make_user("rider"), make_user("driver")
    trip = make_trip(rider, status=S.STARTED, driver=driver)
    return {
        "free_rider": client_for(free_rider),
        "rider": client_for(rider),
        "driver": client_for(driver),
        "driver_id": driver.pk,
        "trip": trip,
        "username": rider.username,
    }


def nothing_stored_for(driver_id: int) -> bool:
    return presence(driver_id) == ({}, None)


# --- JSON bodies with a broken field --------------------------------------------


@fuzz_settings()
@given(body=broken(TRIP_REQUEST, TRIP_BREAKERS, TRIP_REQUIRED))
def test_a_broken_trip_request_is_a_400_and_writes_nothing(world, body):
    before = row_counts()

    response = send(world["free_rider"], "/api/trip/", encode(body))

    assert_clean_refusal(response)
    assert row_counts() == before


@fuzz_settings()
@given(body=broken(SIGN_UP, SIGN_UP_BREAKERS, SIGN_UP_REQUIRED))
def test_a_broken_sign_up_is_a_400_and_writes_nothing(world, api, body):
    before = row_counts()

    response = send(api, "/api/sign_up/", encode(body))

    assert_clean_refusal(response)
    assert row_counts() == before


ACCOUNT = "someone@example.com"


@pytest.fixture
def account(make_user):
    return make_user("rider", username=ACCOUNT)


@fuzz_settings()
@given(
    body=broken(
        # A real account, the right password: only the broken field stands
        # between this body and a session.
        {"username": ACCOUNT, "password": PASSWORD},
        {
            "username": bad_text(150),
            "password": st.one_of(not_text, st.just(""), repeated(129, 999)),
        },
        {"username", "password"},
    ),
)
def test_a_broken_log_in_is_a_400_and_starts_no_session(world, account, api, body):
    before = row_counts()

    response = send(api, "/api/log_in/", encode(body))

    assert_clean_refusal(response)
    assert "sessionid" not in response.cookies
    assert "access" not in response.json()
    assert row_counts() == before


@fuzz_settings()
@given(refresh=st.one_of(not_text, repeated(4097, 20_000), st.text(max_size=300)))
def test_a_bad_refresh_token_is_refused(world, api, refresh):
    before = row_counts()

    refreshed = send(api, "/api/token/refresh/", encode({"refresh": refresh}))
    logged_out = send(world["rider"], "/api/log_out/", encode({"refresh": refresh}))

    # 401 for a string that is no valid token, 400 for what is no string.
    assert_clean_refusal(refreshed, status=None)
    assert refreshed.status_code in (400, 401)
    assert_clean_refusal(logged_out)
    assert row_counts() == before


@fuzz_settings()
@given(body=broken({"status": "IN_PROGRESS"}, {"status": bad_choice(MOVES)}, set()))
def test_a_broken_move_is_a_400_and_leaves_the_trip_alone(world, body):
    trip = world["trip"]
    before = snapshot(trip)

    response = send(world["driver"], f"/api/trip/{trip.pk}/status/", encode(body))

    assert_clean_refusal(response)
    assert snapshot(trip) == before


@fuzz_settings()
@given(body=broken({"reason": "changed my mind"}, {"reason": bad_reason}, set()))
def test_a_broken_cancel_is_a_400_and_leaves_the_trip_alone(world, body):
    trip = world["trip"]
    before = snapshot(trip)

    response = send(world["rider"], f"/api/trip/{trip.pk}/cancel/", encode(body))

    assert_clean_refusal(response)
    assert snapshot(trip) == before


@fuzz_settings()
@given(body=broken({"lat": 38.9, "lng": -77.03}, {"lat": lat, "lng": lng}, {"lat", "lng"}))
def test_a_broken_position_going_online_is_a_400_and_stores_nothing(world, body):
    before = row_counts()

    response = send(world["driver"], "/api/driver/online/", encode(body))

    assert_clean_refusal(response)
    assert nothing_stored_for(world["driver_id"])
    assert row_counts() == before


@fuzz_settings()
@given(
    body=broken(
        {"lat": 38.9, "lng": -77.03, "heading": 90, "speed": 12.5},
        {
            "lat": lat,
            "lng": lng,
            "heading": bad_number(0, 360, nullable=True),
            "speed": bad_number(0, 1000, nullable=True),
        },
        {"lat", "lng"},
    )
)
def test_a_broken_location_is_a_400_and_stores_nothing(world, body):
    before = row_counts()

    response = send(world["driver"], "/api/driver/location/", encode(body))

    assert_clean_refusal(response)
    assert nothing_stored_for(world["driver_id"])
    assert row_counts() == before


SUBSCRIPTION = {
    "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/x",
    "keys": {"p256dh": "BA" + "A" * 85, "auth": "A" * 22},
}


@fuzz_settings()
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "platform": st.sampled_from(["fcm", "apns", "webpush"]) | json_values,
            "token": json_values
            | st.text(max_size=300)
            | st.fixed_dictionaries(
                {},
                optional={
                    "endpoint": st.sampled_from([SUBSCRIPTION["endpoint"]]) | json_values,
                    "keys": st.sampled_from([SUBSCRIPTION["keys"]]) | json_values,
                },
            ),
        },
    )
)
def test_a_broken_device_registration_is_a_400_and_writes_nothing(world, body):
    # A generated text may happen to be a valid FCM token: such a body is
    # no broken one (a generated subscription's key is never on the curve).
    with contextlib.suppress(tokens.TokenInvalid, TypeError):
        tokens.parse(body.get("platform"), body.get("token"))
        return
    before = row_counts()

    response = send(world["rider"], "/api/devices/", encode(body))

    assert_clean_refusal(response)
    assert row_counts() == before


# --- bodies that are not JSON objects -----------------------------------------------

JSON_CALLS = [
    ("free_rider", "/api/trip/"),
    ("anonymous", "/api/sign_up/"),
    ("anonymous", "/api/log_in/"),
    ("anonymous", "/api/token/refresh/"),
    ("rider", "/api/log_out/"),
    ("driver", "/api/trip/{trip}/status/"),
    ("rider", "/api/trip/{trip}/cancel/"),
    ("driver", "/api/driver/online/"),
    ("driver", "/api/driver/location/"),
    ("rider", "/api/devices/"),
]


@fuzz_settings(max_examples=EXAMPLES * 2)
@given(call=st.sampled_from(JSON_CALLS), raw=RAW_BODIES)
def test_a_body_that_does_not_parse_is_a_400_and_writes_nothing(world, api, call, raw):
    who, path = call
    client = api if who == "anonymous" else world[who]
    trip = world["trip"]
    before, trip_before = row_counts(), snapshot(trip)

    response = send(client, path.format(trip=trip.pk), raw)

    assert_clean_refusal(response)
    assert row_counts() == before
    assert snapshot(trip) == trip_before
    assert nothing_stored_for(world["driver_id"])


@fuzz_settings()
@given(raw=st.binary(max_size=400), boundary=st.sampled_from(["x", "----b", ""]))
def test_a_broken_multipart_sign_up_is_a_400(world, api, raw, boundary):
    before = row_counts()

    response = send(api, "/api/sign_up/", raw, f"multipart/form-data; boundary={boundary}")

    assert_clean_refusal(response)
    assert row_counts() == before


@fuzz_settings()
@given(
    call=st.sampled_from([c for c in JSON_CALLS if c[1] != "/api/sign_up/"]),
    content_type=st.sampled_from(
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    ),
    raw=st.binary(min_size=1, max_size=100),
)
def test_a_body_that_is_not_json_is_refused(world, api, call, content_type, raw):
    who, path = call
    client = api if who == "anonymous" else world[who]
    before = row_counts()

    response = send(client, path.format(trip=world["trip"].pk), raw, content_type)

    assert_clean_refusal(response, status=415)
    assert response.json()["code"] == "invalid"
    assert row_counts() == before


# --- query strings and headers --------------------------------------------------------

query_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e400", "1_0", "0x10", " 5", "5\x00"]),
    # A URL carries UTF-8: a lone surrogate cannot be sent in one at all.
    repeated(1000, 5000).filter(lambda text: not "\ud800" <= text[0] <= "\udfff"),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
)


@fuzz_settings()
@given(params=st.dictionaries(st.sampled_from(["lat", "lng", "radius_km"]), query_text))
def test_nearby_answers_any_query_with_200_or_400(world, params):
    response = world["rider"].get("/api/driver/nearby/", params)

    assert response.status_code in (200, 400), (response.status_code, response.content[:300])
    if response.status_code == 400:
        assert_clean_refusal(response)


@fuzz_settings()
@given(params=st.dictionaries(st.sampled_from(["status", "limit", "offset"]), query_text))
def test_the_trip_list_answers_any_query_with_200_or_400(world, params):
    response = world["rider"].get("/api/trip/", params)

    assert response.status_code in (200, 400), (response.status_code, response.content[:300])
    if response.status_code == 400:
        assert_clean_refusal(response)


# Header values arrive as ISO-8859-1 text: nothing above U+00FF can be sent.
header_text = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=300)


@fuzz_settings()
@given(
    credential=st.one_of(
        header_text,
        header_text.map(lambda s: "Bearer " + s),
        st.sampled_from(["Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "Bearer a.b.c"]),
    ),
    path=st.sampled_from(["/api/trip/", "/api/driver/nearby/?lat=1&lng=1", "/api/log_out/"]),
)
def test_a_bad_authorization_header_is_a_401(world, api, credential, path):
    before = row_counts()

    if path == "/api/log_out/":
        response = api.post(path, HTTP_AUTHORIZATION=credential)
    else:
        response = api.get(path, HTTP_AUTHORIZATION=credential)

    assert_clean_refusal(response, status=401)
    assert response.json()["code"] == "not_authenticated"
    assert row_counts() == before


@fuzz_settings()
@given(key=st.one_of(header_text, header_text.map(lambda s: s * 20)))
def test_an_idempotency_key_never_breaks_a_refused_request(world, key):
    # A broken body with any key: a 400 either way, and nothing written.
    before = row_counts()

    response = world["free_rider"].post(
        "/api/trip/", {"pick_up_lat": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert_clean_refusal(response)
    assert row_counts() == before
