"""Bad frames on the `/taxi/` socket, generated (Hypothesis), against the real
ASGI app, database and Redis: every bad frame gets exactly one `error` frame
(never `internal`), the socket stays open (an echo right after still
answers), and nothing is written.

One socket per test takes every example, as an app's one socket would take
a stream of bad frames; its flood limit is raised so that the frames are
judged on what they hold, not on how fast they come (the limit has its own
tests in tests/trips/test_ws_limits.py).

The in-process communicator hands the consumer Python strings, so text
frames here can hold lone surrogates, which no real client can send: a real
server (autobahn) refuses a text frame that is not UTF-8 at the protocol
level (close 1007), before the application sees it.
"""

import json
import uuid

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.hardening.support import (
    TRIP_BREAKERS,
    bad_choice,
    bad_number,
    broken,
    containers,
    encode,
    fuzz_settings,
    json_values,
    lat,
    lng,
    not_text,
    presence,
    row_counts,
)
from tests.trips.factories import TRIP_REQUEST, make_trip, snapshot
from trips.consumers import MAX_REQUEST_ID_CHARS, FrameError, TaxiConsumer, _handlers
from trips.models import Trip

pytestmark = pytest.mark.django_db(transaction=True)

S = Trip.Status
ERROR_CODES = {
    "bad_json",
    "unknown_type",
    "invalid",
    "not_found",
    "offer_not_available",
    "forbidden",
    "invalid_transition",
    "active_trip_exists",
    "not_authenticated",
}

# Not a trip id: the API writes them as UUID strings.
bad_id = st.one_of(not_text, st.integers(), st.floats(), st.text(max_size=40))
# `data` that is not an object (null counts as `{}`).
not_an_object = json_values.filter(lambda value: value is not None and not isinstance(value, dict))
bad_reason = st.one_of(
    st.booleans(), st.integers(), containers, st.text(max_size=5).map(lambda s: s + "\x00")
)


def data_for(trip_id: str) -> dict[str, st.SearchStrategy]:
    """Per message type, `data` that cannot succeed. `trip_id` is a real trip
    in progress; with it only a broken field stands in the way."""
    some_trip = st.one_of(st.just(trip_id), st.uuids().map(str))
    position = broken({"lat": 1.0, "lng": 2.0}, {"lat": lat, "lng": lng}, {"lat", "lng"})
    return {
        "create.trip": st.one_of(
            not_an_object,
            broken(TRIP_REQUEST, TRIP_BREAKERS, {"pick_up_address", "pick_up_lat", "pick_up_lng"}),
        ),
        "update.trip": st.one_of(
            not_an_object,
            st.fixed_dictionaries({"id": bad_id, "status": st.sampled_from(S.values)}),
            st.fixed_dictionaries({"id": some_trip, "status": bad_choice(S.values)}),
            st.fixed_dictionaries({"id": st.uuids().map(str), "status": st.sampled_from(S.values)}),
        ),
        "accept.trip": st.one_of(not_an_object, st.fixed_dictionaries({"id": bad_id | some_trip})),
        "decline.trip": st.one_of(not_an_object, st.fixed_dictionaries({"id": bad_id | some_trip})),
        "cancel.trip": st.one_of(
            not_an_object,
            st.fixed_dictionaries({"id": bad_id}),
            st.fixed_dictionaries({"id": some_trip, "reason": bad_reason}),
            st.fixed_dictionaries({"id": st.uuids().map(str)}),
        ),
        # Any string that is not one of this user's live access tokens.
        "auth.refresh": st.one_of(
            not_an_object,
            st.fixed_dictionaries({"access": st.one_of(json_values, st.text(max_size=500))}),
        ),
        "driver.online": st.one_of(not_an_object, position),
        "driver.offline": not_an_object,
        "update.location": st.one_of(
            not_an_object,
            broken(
                {"lat": 1.0, "lng": 2.0, "heading": 10.0},
                {"lat": lat, "lng": lng, "heading": bad_number(0, 360, nullable=True)},
                {"lat", "lng"},
            ),
        ),
    }


@st.composite
def typed_frames(draw, trip_id: str) -> str:
    """A frame of a known type with `data` that cannot succeed, a request_id
    of any shape, maybe unknown top-level fields; encoded as a careless
    client would (NaN and infinities as bare literals)."""
    strategies = data_for(trip_id)
    type_ = draw(st.sampled_from(sorted(strategies)))
    frame = {"type": type_, "data": draw(strategies[type_])}
    if draw(st.booleans()):
        frame["request_id"] = draw(json_values)
    frame.update(
        draw(
            st.dictionaries(
                st.text(max_size=8).filter(lambda k: k not in ("type", "data", "request_id")),
                json_values,
                max_size=2,
            )
        )
    )
    text = encode(frame).decode()
    # Frames over the limit close the socket (1009): their own tests.
    assume(len(text.encode("utf-8", "surrogatepass")) <= settings.WS_MAX_FRAME_BYTES)
    return text


odd_text = st.text(
    st.characters(categories=["Cs", "Co", "Cn", "Cc", "Cf", "Zs", "Zl", "Mn", "So"]),
    max_size=200,
)
# Any text at all; the few that happen to be a served frame are skipped.
random_text = st.one_of(st.text(max_size=300), odd_text)
# Frames that are an error whatever their type says.
malformed_frames = st.one_of(
    st.sampled_from(
        [
            "",
            '{"type": "driver.online", "data": {"lat": NaN, "lng": 0}}',
            '{"type": "driver.online", "data": {"lat": Infinity, "lng": 0}}',
            '{"type": "driver.online", "data": {"lat": 1e400, "lng": 0}}',
            '{"type": "cancel.trip", "data": {"id": "\\ud800"}}',
            '{"type": "echo.message", "data": 1',
            '{"type": "echo.message"}}',
        ]
    ),
    st.integers(4_400, 20_000).map(
        lambda n: '{"type": "driver.online", "data": {"lat": 1%s}}' % ("0" * n)
    ),
    st.integers(1_000, 30_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1_000, 10_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.builds(
        lambda t, rid: json.dumps({"type": t, "data": {}, "request_id": rid}),
        st.one_of(
            not_text, st.integers(), st.text(max_size=30).filter(lambda t: t not in _handlers())
        ),
        json_values,
    ),
    # Any address text, surrogates and unassigned code points included: the
    # rider already rides, so at best `active_trip_exists`.
    odd_text.map(
        lambda s: json.dumps(
            {"type": "create.trip", "data": {**TRIP_REQUEST, "pick_up_address": s}}
        )
    ),
)


def _parsed(text: str) -> dict | None:
    try:
        return TaxiConsumer.parse(text, None)
    except FrameError:
        return None


def _expected_request_id(text: str) -> object:
    """The request_id an error about this frame carries: as sent when it is a
    string or an integer (cut to MAX_REQUEST_ID_CHARS), else none."""
    value = (_parsed(text) or {}).get("request_id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return value[:MAX_REQUEST_ID_CHARS] if isinstance(value, str) else value


def _would_be_served(text: str) -> bool:
    """Random text that happens to be a frame of a real type: this test has
    no oracle for what that does."""
    frame = _parsed(text)
    return frame is not None and isinstance(frame.get("type"), str) and frame["type"] in _handlers()


@pytest.fixture
def world(make_user):
    rider, driver = make_user("rider"), make_user("driver")
    trip = make_trip(rider, status=S.STARTED, driver=driver)
    return {"rider": rider, "driver": driver, "trip": trip}


@pytest.fixture(params=["rider", "driver"])
async def socket(request, world, unlimited_frames, high_rates, ws_connect):
    ws, connected, code = await ws_connect(world[request.param])
    assert connected, code
    return ws


async def judged(ws, send) -> dict:
    """Send one bad frame; its one reply, and proof the socket still serves."""
    await send()
    reply = await ws.receive_json_from(timeout=5)
    await ws.send_json_to({"type": "echo.message", "data": "still here"})
    assert await ws.receive_json_from(timeout=5) == {
        "type": "echo.message",
        "data": "still here",
    }, "the socket stopped answering after a bad frame"
    return reply


def assert_error(reply: dict, *, request_id: object = None) -> None:
    assert reply["type"] == "error", reply
    assert reply["data"]["code"] in ERROR_CODES, reply
    assert isinstance(reply["data"]["detail"], str) and reply["data"]["detail"]
    assert reply.get("request_id") == request_id, reply


@database_sync_to_async
def state(trip: Trip) -> tuple:
    """Rows, the trip, and its driver's presence in Redis: what a bad frame leaves alone."""
    return row_counts(), snapshot(trip), presence(trip.driver_id)


@fuzz_settings()
@given(data=st.data())
async def test_a_frame_of_a_known_type_that_cannot_succeed_gets_an_error(world, socket, data):
    trip = world["trip"]
    text = data.draw(typed_frames(str(trip.pk)))
    before = await state(trip)

    reply = await judged(
        socket, lambda: socket.send_input({"type": "websocket.receive", "text": text})
    )

    assert_error(reply, request_id=_expected_request_id(text))
    assert await state(trip) == before


@fuzz_settings()
@given(text=random_text)
async def test_random_text_gets_an_error(world, socket, text):
    assume(not _would_be_served(text))
    trip = world["trip"]
    before = await state(trip)

    reply = await judged(
        socket, lambda: socket.send_input({"type": "websocket.receive", "text": text})
    )

    assert_error(reply, request_id=_expected_request_id(text))
    assert await state(trip) == before


@fuzz_settings()
@given(text=malformed_frames)
async def test_malformed_json_gets_an_error(world, socket, text):
    trip = world["trip"]
    before = await state(trip)

    reply = await judged(
        socket, lambda: socket.send_input({"type": "websocket.receive", "text": text})
    )

    assert_error(reply, request_id=_expected_request_id(text))
    assert await state(trip) == before


@fuzz_settings()
@given(
    payload=st.one_of(
        st.binary(max_size=2_000), st.just(b"\xff\xfe\x00"), st.builds(encode, json_values)
    )
)
async def test_a_binary_frame_gets_bad_json(world, socket, payload):
    trip = world["trip"]
    before = await state(trip)

    reply = await judged(
        socket, lambda: socket.send_input({"type": "websocket.receive", "bytes": payload})
    )

    assert_error(reply)
    assert reply["data"]["code"] == "bad_json"
    assert await state(trip) == before


def test_the_frames_cover_every_message_type_a_client_may_send():
    served = set(_handlers()) - {"echo.message"}

    assert set(data_for(str(uuid.uuid4()))) == served
