"""Integers too big for a float, in every numeric field (issue 10, item 4).

JSON puts no bound on an integer's digits, and Python's parser reads one of
hundreds of digits exactly; turning it into a float then overflows. Every
numeric field must answer it as what it is, a value out of range: a 400 field
error over REST, an `invalid` error frame over the socket, nothing stored.
(Past 4,300 digits the parser itself refuses the body: `bad_json`, or a 400
parse error, covered by the fuzz tests.)
"""

import json

import pytest
from channels.db import database_sync_to_async

from tests.dispatch.support import close_sync_thread_connections
from tests.hardening.support import presence, row_counts
from tests.trips.factories import TRIP_REQUEST

__all__ = ["close_sync_thread_connections"]

# One followed by 400 zeros, as a JSON integer (no decimal point, no exponent);
# its negative; and the longest integer Python's JSON parser reads.
HUGE = [10**400, -(10**400), int("9" * 4300)]
POSITION = {"lat": 38.9, "lng": -77.03}
LOCATION = {**POSITION, "heading": 90, "speed": 12.5}

REST_FIELDS = [
    ("driver", "/api/driver/online/", POSITION, "lat"),
    ("driver", "/api/driver/online/", POSITION, "lng"),
    ("driver", "/api/driver/location/", LOCATION, "lat"),
    ("driver", "/api/driver/location/", LOCATION, "lng"),
    ("driver", "/api/driver/location/", LOCATION, "heading"),
    ("driver", "/api/driver/location/", LOCATION, "speed"),
    ("rider", "/api/trip/", TRIP_REQUEST, "pick_up_lat"),
    ("rider", "/api/trip/", TRIP_REQUEST, "pick_up_lng"),
    ("rider", "/api/trip/", TRIP_REQUEST, "drop_off_lat"),
    ("rider", "/api/trip/", TRIP_REQUEST, "drop_off_lng"),
]
WS_FIELDS = [
    ("driver", "driver.online", POSITION, "lat"),
    ("driver", "driver.online", POSITION, "lng"),
    ("driver", "update.location", LOCATION, "lat"),
    ("driver", "update.location", LOCATION, "lng"),
    ("driver", "update.location", LOCATION, "heading"),
    ("driver", "update.location", LOCATION, "speed"),
    ("rider", "create.trip", TRIP_REQUEST, "pick_up_lat"),
    ("rider", "create.trip", TRIP_REQUEST, "pick_up_lng"),
    ("rider", "create.trip", TRIP_REQUEST, "drop_off_lat"),
    ("rider", "create.trip", TRIP_REQUEST, "drop_off_lng"),
]


def with_huge(body: dict, field: str, huge: int) -> str:
    text = json.dumps({**body, field: huge})
    assert f'"{field}": {huge}' in text, "an integer, digit by digit"
    return text


def huge_id(huge: int) -> str:
    return "digits" + str(len(str(abs(huge)))) + ("-neg" if huge < 0 else "")


@pytest.mark.django_db
@pytest.mark.parametrize("huge", HUGE, ids=huge_id)
@pytest.mark.parametrize(("who", "path", "body", "field"), REST_FIELDS)
def test_a_huge_integer_over_rest_is_a_400_field_error(
    make_user, client_for, high_rates, who, path, body, field, huge
):
    user = make_user(who)
    before = row_counts()

    response = client_for(user).generic(
        "POST", path, with_huge(body, field, huge), content_type="application/json"
    )

    assert response.status_code == 400, (response.status_code, response.content[:300])
    errors = response.json()
    assert list(errors) == [field] and errors[field], errors
    assert row_counts() == before
    assert presence(user.pk) == ({}, None)


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["lat", "lng", "radius_km"])
def test_a_huge_integer_in_the_nearby_query_is_a_400_field_error(
    rider, client_for, high_rates, field
):
    query = {"lat": "38.9", "lng": "-77.03", field: "1" + "0" * 400}

    response = client_for(rider).get("/api/driver/nearby/", query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_sync_thread_connections")
@pytest.mark.parametrize("huge", HUGE, ids=huge_id)
@pytest.mark.parametrize(("who", "type_", "body", "field"), WS_FIELDS)
async def test_a_huge_integer_over_the_socket_is_an_invalid_error(
    make_user, ws_connect, high_rates, who, type_, body, field, huge
):
    user = await database_sync_to_async(make_user)(who)
    ws, connected, _ = await ws_connect(user)
    assert connected
    before = await database_sync_to_async(row_counts)()
    frame = f'{{"type": "{type_}", "request_id": "r1", "data": {with_huge(body, field, huge)}}}'

    await ws.send_to(text_data=frame)
    reply = await ws.receive_json_from(timeout=5)

    assert reply["type"] == "error", reply
    assert reply["data"]["code"] == "invalid", reply
    assert list(reply["data"]["errors"]) == [field], reply
    assert reply["request_id"] == "r1"
    # and the socket still serves, with nothing stored
    await ws.send_json_to({"type": "echo.message", "data": "still here"})
    assert (await ws.receive_json_from(timeout=5))["data"] == "still here"
    assert await database_sync_to_async(row_counts)() == before
    assert await database_sync_to_async(presence)(user.pk) == ({}, None)
