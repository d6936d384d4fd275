"""The `/taxi/` socket's trip messages, against the real ASGI app, database and Redis.

Every test reads: given some trips and sockets, when a frame is sent, then the
reply, the pushes other sockets get (and do not get), and the database.
"""

import json
import logging
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from dispatch.models import Offer
from tests.trips.factories import TRIP_REQUEST
from trips.consumers import TaxiConsumer
from trips.models import Trip

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_S = 0.3  # how long a socket must stay silent to count as "got nothing"


# --- helpers ---------------------------------------------------------------


async def open_socket(ws_connect, user) -> WebsocketCommunicator:
    ws, connected, code = await ws_connect(user)
    assert connected, f"handshake refused with {code}"
    return ws


async def send(ws, type_: str, data: object = None, *, request_id: object = "req-1") -> None:
    frame: dict = {"type": type_, "data": data}
    if request_id is not None:
        frame["request_id"] = request_id
    await ws.send_json_to(frame)


async def request(ws, type_: str, data: object = None, *, request_id: object = "req-1") -> dict:
    """Send a frame and return the one reply to it."""
    await send(ws, type_, data, request_id=request_id)
    return await ws.receive_json_from(timeout=5)


async def receive(ws) -> dict:
    return await ws.receive_json_from(timeout=5)


async def answers_echo(ws) -> bool:
    reply = await request(ws, "echo.message", {"still": "here"}, request_id="ping")
    return reply == {"type": "echo.message", "data": {"still": "here"}, "request_id": "ping"}


def assert_error(reply: dict, code: str, *, type_: str | None = None, request_id="req-1") -> None:
    assert reply["type"] == "error", reply
    assert reply["data"]["code"] == code, reply
    assert isinstance(reply["data"]["detail"], str) and reply["data"]["detail"]
    if request_id is not None:
        assert reply["request_id"] == request_id
        assert reply["data"]["request_id"] == request_id
    if type_ is not None:
        assert reply["data"]["type"] == type_


@database_sync_to_async
def new_user(make_user, group: str):
    return make_user(group)


@database_sync_to_async
def make_trip(rider, *, status: str = Trip.Status.REQUESTED, driver=None, **fields) -> Trip:
    return Trip.objects.create(
        rider=rider, driver=driver, status=status, **{**TRIP_REQUEST, **fields}
    )


@database_sync_to_async
def make_offer(trip, driver, *, expires_in_s: float = 60) -> Offer:
    return Offer.objects.create(
        trip=trip,
        driver=driver,
        expires_at=timezone.now() + timedelta(seconds=expires_in_s),
        distance_km=1.5,
    )


@database_sync_to_async
def trip_state(trip_id) -> tuple:
    trip = Trip.objects.get(pk=trip_id)
    return trip.status, trip.version, trip.driver_id, trip.status_reason


@database_sync_to_async
def offer_status(offer_id) -> str:
    return Offer.objects.get(pk=offer_id).status


@database_sync_to_async
def trip_count() -> int:
    return Trip.objects.count()


# --- echo and frames ---------------------------------------------------------


async def test_echo_returns_the_frame_with_its_request_id(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    reply = await request(ws, "echo.message", {"any": ["thing", 1]}, request_id=7)

    assert reply == {"type": "echo.message", "data": {"any": ["thing", 1]}, "request_id": 7}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", "bad_json"),
        ("[]", "bad_json"),
        ('"x"', "bad_json"),
        ("1", "bad_json"),
        ("null", "bad_json"),
        ("true", "bad_json"),
        ("[" * 60_000, "bad_json"),
        ('{"type": "echo.message", "data": NaN}', "bad_json"),
        ('{"data": {}}', "unknown_type"),
        ('{"type": "launch.rocket", "data": {}}', "unknown_type"),
        ('{"type": 5}', "unknown_type"),
        ('{"type": ["create.trip"]}', "unknown_type"),
        ('{"type": "stream.push", "frame": {}}', "unknown_type"),
        ('{"type": "cancel.trip", "data": []}', "invalid"),
        ('{"type": "cancel.trip", "data": "x"}', "invalid"),
        ('{"type": "cancel.trip", "data": 3}', "invalid"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_socket_survives(ws_connect, rider, raw, code):
    ws = await open_socket(ws_connect, rider)

    await ws.send_to(text_data=raw)

    assert_error(await receive(ws), code, request_id=None)
    assert await answers_echo(ws)


@pytest.mark.parametrize("payload", [b"\x00\x01binary", b'{"type": "echo.message"}'])
async def test_binary_frames_get_an_error_and_the_socket_survives(ws_connect, rider, payload):
    ws = await open_socket(ws_connect, rider)

    await ws.send_to(bytes_data=payload)

    assert_error(await receive(ws), "bad_json", request_id=None)
    assert await answers_echo(ws)


async def test_empty_text_frame_gets_an_error(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    await ws.send_input({"type": "websocket.receive", "text": ""})

    assert_error(await receive(ws), "bad_json", request_id=None)
    assert await answers_echo(ws)


async def test_errors_carry_the_request_id_and_type_back(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    reply = await request(ws, "cancel.trip", {"id": "nope"}, request_id="abc-123")

    assert_error(reply, "invalid", type_="cancel.trip", request_id="abc-123")
    assert "id" in reply["data"]["errors"]


@pytest.mark.parametrize("request_id", [1.5, True, None, {"a": 1}, ["x"]])
async def test_request_ids_that_are_not_strings_or_integers_are_not_echoed(
    ws_connect, rider, request_id
):
    ws = await open_socket(ws_connect, rider)

    await ws.send_json_to({"type": "echo.message", "data": 1, "request_id": request_id})

    assert await receive(ws) == {"type": "echo.message", "data": 1}


async def test_a_long_request_id_is_echoed_cut_short(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    reply = await request(ws, "echo.message", None, request_id="x" * 1000)

    assert reply["request_id"] == "x" * 128


async def socket_with_handlers(user, handlers: dict) -> WebsocketCommunicator:
    """A socket of `user` on a TaxiConsumer with these handlers (and echo)."""

    class Consumer(TaxiConsumer):
        pass

    Consumer.handlers = {"echo.message": None, **handlers}
    consumer_app = Consumer.as_asgi()

    async def app(scope, receive_, send_):
        return await consumer_app(dict(scope, user=user), receive_, send_)

    ws = WebsocketCommunicator(app, "/taxi/")
    connected, _ = await ws.connect(timeout=5)
    assert connected
    return ws


async def test_an_unexpected_exception_in_a_handler_is_an_internal_error_frame(make_user, caplog):
    # Given a consumer with a handler that fails the way a bug would.
    async def broken(consumer, data):
        raise RuntimeError("bug")

    user = await new_user(make_user, "rider")
    ws = await socket_with_handlers(user, {"break.things": broken})
    try:
        # When the handler runs.
        with caplog.at_level(logging.ERROR, logger="trips.consumers"):
            reply = await request(ws, "break.things", {})

        # Then the client hears `internal`, the failure is logged with its
        # traceback, and the socket keeps working.
        assert_error(reply, "internal", type_="break.things")
        failures = [r for r in caplog.records if r.getMessage() == "ws.handler_failed"]
        assert len(failures) == 1 and failures[0].exc_info is not None
        assert await answers_echo(ws)
    finally:
        await ws.disconnect()


async def test_redis_failing_in_a_handler_is_an_unavailable_error_frame(make_user, caplog):
    # Given a handler whose Redis call fails (away, or no pooled connection free)
    async def redis_down(consumer, data):
        raise RedisConnectionError("No connection available.")

    user = await new_user(make_user, "driver")
    ws = await socket_with_handlers(user, {"update.location": redis_down})
    try:
        with caplog.at_level(logging.WARNING, logger="trips.consumers"):
            reply = await request(ws, "update.location", {"lat": 1, "lng": 2})

        # Then the client is told to retry (`unavailable`, as REST's 503), not
        # that the server has a bug, and the socket keeps working
        assert_error(reply, "unavailable", type_="update.location")
        assert not [r for r in caplog.records if r.getMessage() == "ws.handler_failed"]
        assert [r for r in caplog.records if r.getMessage() == "ws.unavailable"]
        assert await answers_echo(ws)
    finally:
        await ws.disconnect()


# --- create.trip ---------------------------------------------------------------


async def test_create_trip_replies_once_and_pushes_to_the_riders_other_sockets(
    ws_connect, rider, make_user
):
    # Given the rider on two sockets, and an unrelated rider online.
    phone = await open_socket(ws_connect, rider)
    tablet = await open_socket(ws_connect, rider)
    stranger = await open_socket(ws_connect, await new_user(make_user, "rider"))

    # When the rider creates a trip on one socket.
    reply = await request(phone, "create.trip", TRIP_REQUEST, request_id="create-1")

    # Then that socket gets `trip.created` with its request_id, and only that.
    assert reply["type"] == "trip.created"
    assert reply["request_id"] == "create-1"
    trip = reply["data"]
    assert trip["status"] == "REQUESTED" and trip["version"] == 1
    assert trip["rider"]["id"] == rider.pk and trip["driver"] is None
    assert await phone.receive_nothing(timeout=QUIET_S)
    # The other socket gets the same trip as a push (no request_id).
    assert await receive(tablet) == {"type": "trip.created", "data": trip}
    # Nobody else hears of it.
    assert await stranger.receive_nothing(timeout=QUIET_S)
    assert await trip_state(trip["id"]) == ("REQUESTED", 1, None, None)


async def test_create_trip_ignores_fields_a_rider_may_not_set(ws_connect, rider, driver):
    ws = await open_socket(ws_connect, rider)
    forced_id = str(uuid.uuid4())

    reply = await request(
        ws,
        "create.trip",
        {
            **TRIP_REQUEST,
            "id": forced_id,
            "status": "COMPLETED",
            "version": 99,
            "rider": driver.pk,
            "driver": driver.pk,
        },
    )

    trip = reply["data"]
    assert reply["type"] == "trip.created"
    assert trip["id"] != forced_id
    assert (trip["status"], trip["version"], trip["driver"]) == ("REQUESTED", 1, None)
    assert trip["rider"]["id"] == rider.pk


async def test_create_trip_by_a_driver_is_forbidden_and_writes_nothing(ws_connect, driver):
    ws = await open_socket(ws_connect, driver)

    reply = await request(ws, "create.trip", TRIP_REQUEST)

    assert_error(reply, "forbidden", type_="create.trip")
    assert await trip_count() == 0


async def test_a_second_active_trip_is_refused(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)
    first = await request(ws, "create.trip", TRIP_REQUEST)
    assert first["type"] == "trip.created"

    reply = await request(ws, "create.trip", TRIP_REQUEST, request_id="again")

    assert_error(reply, "active_trip_exists", request_id="again")
    assert await trip_count() == 1


def _create_frame(**overrides: str) -> str:
    """A raw `create.trip` frame, values given as JSON source text."""
    fields = {k: json.dumps(v) for k, v in TRIP_REQUEST.items()}
    fields.update(overrides)
    body = ", ".join(f'"{k}": {v}' for k, v in fields.items() if v is not None)
    return f'{{"type": "create.trip", "request_id": "c", "data": {{{body}}}}}'


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"pick_up_lat": "NaN"}, "bad_json"),
        ({"pick_up_lat": "Infinity"}, "bad_json"),
        ({"pick_up_lng": "-Infinity"}, "bad_json"),
        ({"pick_up_lat": "1e400"}, "invalid"),  # parses as inf
        ({"pick_up_lat": "85.06"}, "invalid"),
        ({"pick_up_lat": "-90"}, "invalid"),
        ({"pick_up_lng": "180.0001"}, "invalid"),
        ({"drop_off_lng": "-181"}, "invalid"),
        ({"pick_up_lat": '"38.8977"'}, "invalid"),
        ({"pick_up_lat": "true"}, "invalid"),
        ({"pick_up_lat": "null"}, "invalid"),
        ({"pick_up_lat": "[38.9]"}, "invalid"),
        ({"pick_up_lat": None}, "invalid"),  # missing
        ({"pick_up_address": None}, "invalid"),
        ({"drop_off_lat": None}, "invalid"),  # one drop-off coordinate without the other
    ],
)
async def test_bad_coordinates_get_an_error_and_write_nothing(ws_connect, rider, overrides, code):
    ws = await open_socket(ws_connect, rider)

    await ws.send_to(text_data=_create_frame(**overrides))

    reply = await receive(ws)
    if code == "bad_json":
        # Not JSON at all, so there is no request_id to read back.
        assert_error(reply, code, request_id=None)
    else:
        assert_error(reply, code, type_="create.trip", request_id="c")
        assert reply["data"]["errors"]
    assert await trip_count() == 0
    assert await answers_echo(ws)


async def test_create_trip_without_drop_off_coordinates(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    reply = await request(
        ws, "create.trip", {**TRIP_REQUEST, "drop_off_lat": None, "drop_off_lng": None}
    )

    assert reply["type"] == "trip.created"
    assert reply["data"]["drop_off_lat"] is None and reply["data"]["drop_off_lng"] is None


# --- ids and statuses --------------------------------------------------------------


@pytest.mark.parametrize("type_", ["update.trip", "accept.trip", "cancel.trip", "decline.trip"])
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"id": None},
        {"id": ""},
        {"id": "nope"},
        {"id": "1234"},
        {"id": 5},
        {"id": -1},
        {"id": 1.5},
        {"id": True},
        {"id": ["3f1c0000-0000-0000-0000-000000000000"]},
        {"id": {"id": "x"}},
    ],
)
async def test_ids_that_are_not_uuids_are_invalid(ws_connect, driver, type_, data):
    ws = await open_socket(ws_connect, driver)

    reply = await request(ws, type_, {**data, "status": "IN_PROGRESS"})

    assert_error(reply, "invalid", type_=type_)
    assert "id" in reply["data"]["errors"]
    assert await answers_echo(ws)


@pytest.mark.parametrize("status", [None, "", "FOO", "in_progress", 3, ["COMPLETED"]])
async def test_update_trip_with_an_unknown_status_is_invalid(ws_connect, rider, driver, status):
    trip = await make_trip(rider, status=Trip.Status.STARTED, driver=driver)
    ws = await open_socket(ws_connect, driver)

    data = {"id": str(trip.pk)} if status is None else {"id": str(trip.pk), "status": status}
    reply = await request(ws, "update.trip", data)

    assert_error(reply, "invalid", type_="update.trip")
    assert "status" in reply["data"]["errors"]
    assert await trip_state(trip.pk) == ("STARTED", 1, driver.pk, None)


@pytest.mark.parametrize(
    ("user_group", "type_", "data", "code"),
    [
        ("rider", "cancel.trip", {}, "not_found"),
        ("rider", "update.trip", {"status": "CANCELED"}, "not_found"),
        ("driver", "update.trip", {"status": "IN_PROGRESS"}, "not_found"),
        ("driver", "update.trip", {"status": "STARTED"}, "offer_not_available"),
        ("driver", "accept.trip", {}, "offer_not_available"),
    ],
)
async def test_a_trip_that_does_not_exist(ws_connect, make_user, user_group, type_, data, code):
    ws = await open_socket(ws_connect, await new_user(make_user, user_group))

    reply = await request(ws, type_, {"id": str(uuid.uuid4()), **data})

    assert_error(reply, code, type_=type_)


# --- transitions ------------------------------------------------------------------


async def _given_trip(rider, driver, status: str) -> tuple[Trip, Offer | None]:
    """A trip in `status`; a REQUESTED one holds a live offer to `driver`,
    the others are assigned to `driver`."""
    if status == Trip.Status.REQUESTED:
        trip = await make_trip(rider)
        return trip, await make_offer(trip, driver)
    assigned = None if status == Trip.Status.EXPIRED else driver
    return await make_trip(rider, status=status, driver=assigned), None


ALLOWED = [
    # (from, actor, type, data, to)
    ("REQUESTED", "driver", "update.trip", {"status": "STARTED"}, "STARTED"),
    ("REQUESTED", "driver", "accept.trip", {}, "STARTED"),
    ("REQUESTED", "rider", "update.trip", {"status": "CANCELED"}, "CANCELED"),
    ("REQUESTED", "rider", "cancel.trip", {}, "CANCELED"),
    ("STARTED", "driver", "update.trip", {"status": "IN_PROGRESS"}, "IN_PROGRESS"),
    ("STARTED", "rider", "update.trip", {"status": "CANCELED"}, "CANCELED"),
    ("STARTED", "rider", "cancel.trip", {"reason": "changed my mind"}, "CANCELED"),
    ("STARTED", "driver", "update.trip", {"status": "ARRIVED"}, "ARRIVED"),
    # Part 2: a driver's cancel sends the trip back to dispatch.
    ("STARTED", "driver", "update.trip", {"status": "CANCELED"}, "REQUESTED"),
    ("STARTED", "driver", "cancel.trip", {"reason": None}, "REQUESTED"),
    ("IN_PROGRESS", "driver", "update.trip", {"status": "COMPLETED"}, "COMPLETED"),
]


@pytest.mark.parametrize(("from_status", "actor", "type_", "data", "to_status"), ALLOWED)
async def test_allowed_transitions(
    ws_connect, rider, driver, make_user, from_status, actor, type_, data, to_status
):
    # Given a trip, both parties on two sockets each, and a stranger online.
    trip, offer = await _given_trip(rider, driver, from_status)
    users = {"rider": rider, "driver": driver}
    acting = await open_socket(ws_connect, users[actor])
    acting_other_socket = await open_socket(ws_connect, users[actor])
    other_party = await open_socket(ws_connect, users["driver" if actor == "rider" else "rider"])
    stranger = await open_socket(ws_connect, await new_user(make_user, "driver"))

    # When the actor sends the message (with extra fields that must be ignored).
    reply = await request(
        acting, type_, {"id": str(trip.pk), "driver": 999, "version": 50, **data}, request_id=42
    )

    # Then the acting socket gets the new trip once, with its request_id.
    assert reply["type"] == "trip.updated", reply
    assert reply["request_id"] == 42
    pushed = reply["data"]
    assert pushed["id"] == str(trip.pk)
    assert pushed["status"] == to_status and pushed["version"] == 2
    assert await acting.receive_nothing(timeout=QUIET_S)
    # The actor's other socket hears the same trip as a push.
    assert await receive(acting_other_socket) == {"type": "trip.updated", "data": pushed}
    driver_gave_up = actor == "driver" and to_status == "REQUESTED"
    # The other party hears the trip if they are on it; an offered driver
    # whose trip the rider cancels hears the offer revoked instead.
    heard = await receive(other_party)
    if from_status == "REQUESTED" and to_status == "CANCELED":
        assert heard == {
            "type": "trip.offer.revoked",
            "data": {"trip_id": str(trip.pk), "offer_id": str(offer.pk), "reason": "canceled"},
        }
        assert await offer_status(offer.pk) == "REVOKED"
    else:
        # The same trip, each as theirs: the PIN is the rider's alone, and a
        # driver who gave the trip up no longer sees the rider.
        assert heard["type"] == "trip.updated"
        assert _shared(heard["data"]) == _shared(pushed)
        assert ("pin" in heard["data"]) == (actor == "driver" and to_status in ASSIGNED)
        assert "pin" not in pushed or actor == "rider"
        if driver_gave_up:
            assert pushed["rider"] is None and heard["data"]["rider"]["id"] == rider.pk
    assert await other_party.receive_nothing(timeout=QUIET_S)
    assert await stranger.receive_nothing(timeout=QUIET_S)
    # And the database agrees.
    status, version, driver_id, reason = await trip_state(trip.pk)
    assert (status, version) == (to_status, 2)
    canceled_before_assignment = (from_status, to_status) == ("REQUESTED", "CANCELED")
    no_driver = canceled_before_assignment or driver_gave_up
    assert driver_id == (None if no_driver else driver.pk)
    if data.get("reason"):
        assert reason == data["reason"]
    if to_status == "STARTED":
        assert pushed["driver"]["id"] == driver.pk
        assert await offer_status(offer.pk) == "ACCEPTED"


ASSIGNED = ("STARTED", "ARRIVED", "IN_PROGRESS")


def _shared(trip: dict) -> dict:
    """What both parties see alike."""
    return {k: v for k, v in trip.items() if k not in ("pin", "rider")}


REFUSED = [
    # (from, actor, type, data, code)
    # the wrong actor
    ("REQUESTED", "rider", "update.trip", {"status": "STARTED"}, "offer_not_available"),
    ("REQUESTED", "rider", "accept.trip", {}, "offer_not_available"),
    ("REQUESTED", "rider", "decline.trip", {}, "offer_not_available"),
    ("REQUESTED", "rider", "update.trip", {"status": "IN_PROGRESS"}, "invalid_transition"),
    ("REQUESTED", "driver", "update.trip", {"status": "IN_PROGRESS"}, "invalid_transition"),
    ("REQUESTED", "driver", "update.trip", {"status": "COMPLETED"}, "invalid_transition"),
    ("REQUESTED", "driver", "update.trip", {"status": "CANCELED"}, "invalid_transition"),
    ("REQUESTED", "driver", "cancel.trip", {}, "invalid_transition"),
    ("STARTED", "rider", "update.trip", {"status": "IN_PROGRESS"}, "invalid_transition"),
    ("IN_PROGRESS", "rider", "update.trip", {"status": "COMPLETED"}, "invalid_transition"),
    # moves no client makes
    ("REQUESTED", "rider", "update.trip", {"status": "REQUESTED"}, "invalid_transition"),
    ("REQUESTED", "rider", "update.trip", {"status": "EXPIRED"}, "invalid_transition"),
    ("REQUESTED", "driver", "update.trip", {"status": "EXPIRED"}, "invalid_transition"),
    ("STARTED", "driver", "update.trip", {"status": "REQUESTED"}, "invalid_transition"),
    # the wrong state
    ("STARTED", "driver", "update.trip", {"status": "STARTED"}, "offer_not_available"),
    ("STARTED", "driver", "accept.trip", {}, "offer_not_available"),
    ("STARTED", "driver", "update.trip", {"status": "COMPLETED"}, "invalid_transition"),
    ("IN_PROGRESS", "driver", "update.trip", {"status": "IN_PROGRESS"}, "invalid_transition"),
    ("IN_PROGRESS", "driver", "update.trip", {"status": "CANCELED"}, "invalid_transition"),
    ("IN_PROGRESS", "driver", "cancel.trip", {}, "invalid_transition"),
    ("IN_PROGRESS", "rider", "update.trip", {"status": "CANCELED"}, "invalid_transition"),
    ("IN_PROGRESS", "rider", "cancel.trip", {}, "invalid_transition"),
    # final states
    ("COMPLETED", "driver", "update.trip", {"status": "IN_PROGRESS"}, "invalid_transition"),
    ("COMPLETED", "driver", "update.trip", {"status": "COMPLETED"}, "invalid_transition"),
    ("COMPLETED", "driver", "cancel.trip", {}, "invalid_transition"),
    ("COMPLETED", "rider", "cancel.trip", {}, "invalid_transition"),
    ("CANCELED", "rider", "cancel.trip", {}, "invalid_transition"),
    ("CANCELED", "driver", "update.trip", {"status": "IN_PROGRESS"}, "invalid_transition"),
    ("CANCELED", "driver", "update.trip", {"status": "STARTED"}, "offer_not_available"),
    ("EXPIRED", "rider", "update.trip", {"status": "CANCELED"}, "invalid_transition"),
    ("EXPIRED", "rider", "cancel.trip", {}, "invalid_transition"),
]


@pytest.mark.parametrize(("from_status", "actor", "type_", "data", "code"), REFUSED)
async def test_refused_transitions_change_nothing(
    ws_connect, rider, driver, from_status, actor, type_, data, code
):
    # Given a trip and both parties online.
    trip, offer = await _given_trip(rider, driver, from_status)
    before = await trip_state(trip.pk)
    users = {"rider": rider, "driver": driver}
    acting = await open_socket(ws_connect, users[actor])
    other_party = await open_socket(ws_connect, users["driver" if actor == "rider" else "rider"])

    # When the actor asks for a move the table does not allow them.
    reply = await request(acting, type_, {"id": str(trip.pk), **data})

    # Then they get one error, nobody hears anything, nothing changed.
    assert_error(reply, code, type_=type_)
    assert await acting.receive_nothing(timeout=QUIET_S)
    assert await other_party.receive_nothing(timeout=QUIET_S)
    assert await trip_state(trip.pk) == before
    if offer is not None:
        assert await offer_status(offer.pk) == "PENDING"


# --- the course's hole: strangers cannot move a trip ------------------------------

STRANGER_ATTEMPTS = [
    # (stranger, type, data, code)
    ("rider", "update.trip", {"status": "STARTED"}, "offer_not_available"),
    ("rider", "update.trip", {"status": "IN_PROGRESS"}, "not_found"),
    ("rider", "update.trip", {"status": "COMPLETED"}, "not_found"),
    ("rider", "update.trip", {"status": "CANCELED"}, "not_found"),
    ("rider", "update.trip", {"status": "EXPIRED"}, "invalid_transition"),
    ("rider", "cancel.trip", {}, "not_found"),
    ("rider", "accept.trip", {}, "offer_not_available"),
    ("rider", "decline.trip", {}, "offer_not_available"),
    ("driver", "update.trip", {"status": "STARTED"}, "offer_not_available"),
    ("driver", "update.trip", {"status": "IN_PROGRESS"}, "not_found"),
    ("driver", "update.trip", {"status": "COMPLETED"}, "not_found"),
    ("driver", "update.trip", {"status": "CANCELED"}, "not_found"),
    ("driver", "update.trip", {"status": "REQUESTED"}, "invalid_transition"),
    ("driver", "cancel.trip", {}, "not_found"),
    ("driver", "accept.trip", {}, "offer_not_available"),
    ("driver", "decline.trip", {}, "offer_not_available"),
]


@pytest.mark.parametrize("trip_status", ["REQUESTED", "STARTED", "IN_PROGRESS"])
@pytest.mark.parametrize(("stranger_group", "type_", "data", "code"), STRANGER_ATTEMPTS)
async def test_strangers_cannot_move_someone_elses_trip(
    ws_connect, rider, driver, make_user, trip_status, stranger_group, type_, data, code
):
    # Given someone else's trip (offered to, or driven by, another driver).
    trip, offer = await _given_trip(rider, driver, trip_status)
    before = await trip_state(trip.pk)
    rider_ws = await open_socket(ws_connect, rider)
    driver_ws = await open_socket(ws_connect, driver)
    stranger = await open_socket(ws_connect, await new_user(make_user, stranger_group))

    # When a rider, or a driver with no offer for it, tries to move it.
    reply = await request(stranger, type_, {"id": str(trip.pk), **data})

    # Then an error that does not reveal the trip, and nothing changed.
    assert_error(reply, code, type_=type_)
    assert await trip_state(trip.pk) == before
    if offer is not None:
        assert await offer_status(offer.pk) == "PENDING"
    assert await rider_ws.receive_nothing(timeout=QUIET_S)
    assert await driver_ws.receive_nothing(timeout=QUIET_S)


async def test_an_expired_offer_cannot_be_accepted(ws_connect, rider, driver):
    trip = await make_trip(rider)
    await make_offer(trip, driver, expires_in_s=-1)
    ws = await open_socket(ws_connect, driver)

    reply = await request(ws, "update.trip", {"id": str(trip.pk), "status": "STARTED"})

    assert_error(reply, "offer_not_available", type_="update.trip")
    assert await trip_state(trip.pk) == ("REQUESTED", 1, None, None)


# --- decline.trip ------------------------------------------------------------------


async def test_decline_replies_and_closes_the_offer(ws_connect, rider, driver):
    # Given a driver holding a live offer.
    trip = await make_trip(rider)
    offer = await make_offer(trip, driver)
    driver_ws = await open_socket(ws_connect, driver)
    rider_ws = await open_socket(ws_connect, rider)

    # When they decline it.
    reply = await request(driver_ws, "decline.trip", {"id": str(trip.pk)}, request_id="d1")

    # Then the reply names the offer, the offer is closed, the trip still waits.
    assert reply == {
        "type": "trip.offer.declined",
        "data": {"trip_id": str(trip.pk), "offer_id": str(offer.pk)},
        "request_id": "d1",
    }
    assert await offer_status(offer.pk) == "DECLINED"
    assert (await trip_state(trip.pk))[:2] == ("REQUESTED", 1)
    assert await rider_ws.receive_nothing(timeout=QUIET_S)

    # And declining again is refused.
    again = await request(driver_ws, "decline.trip", {"id": str(trip.pk)}, request_id="d2")
    assert_error(again, "offer_not_available", type_="decline.trip", request_id="d2")


@pytest.mark.parametrize("offered_to", ["nobody", "another driver"])
async def test_decline_without_an_offer_is_refused(
    ws_connect, rider, driver, make_user, offered_to
):
    trip = await make_trip(rider)
    offer = None
    if offered_to == "another driver":
        offer = await make_offer(trip, await new_user(make_user, "driver"))
    ws = await open_socket(ws_connect, driver)

    reply = await request(ws, "decline.trip", {"id": str(trip.pk)})

    assert_error(reply, "offer_not_available", type_="decline.trip")
    if offer is not None:
        assert await offer_status(offer.pk) == "PENDING"


# --- full life of a trip over sockets -----------------------------------------------


async def test_a_trip_from_request_to_completion(ws_connect, rider, driver):
    rider_ws = await open_socket(ws_connect, rider)
    driver_ws = await open_socket(ws_connect, driver)

    created = await request(rider_ws, "create.trip", TRIP_REQUEST)
    trip_id = created["data"]["id"]
    await make_offer(await database_sync_to_async(Trip.objects.get)(pk=trip_id), driver)

    versions = []
    for status in ("STARTED", "IN_PROGRESS", "COMPLETED"):
        reply = await request(driver_ws, "update.trip", {"id": trip_id, "status": status})
        assert (reply["type"], reply["data"]["status"]) == ("trip.updated", status)
        pushed = await receive(rider_ws)
        # The same trip; the rider's view alone carries the ride PIN while it rides.
        rider_view = dict(reply["data"])
        if status in ASSIGNED:
            rider_view["pin"] = pushed["data"]["pin"]
        assert pushed == {"type": "trip.updated", "data": rider_view}
        assert "pin" not in reply["data"]
        versions.append(pushed["data"]["version"])

    assert versions == [2, 3, 4]
    assert await rider_ws.receive_nothing(timeout=QUIET_S)
    assert await driver_ws.receive_nothing(timeout=QUIET_S)
    assert (await trip_state(trip_id))[:3] == ("COMPLETED", 4, driver.pk)
