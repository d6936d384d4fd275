"""docs/asyncapi.yaml against what the server really sends.

A scripted session (a driver online, a rider's trips accepted, moved,
completed, canceled during an offer, declined, expired, refused quotes, a
wrong ride PIN until it locks, a no-show reported too early, one booking too
many, and an error of every kind) runs over real sockets; every frame any
socket receives is validated against the document's schema for its `type`,
and every valid frame the client sends against the client's. The session
must meet every message and error code the document lists, so the document
holds nothing the server never sends; and every code a socket can meet is
in the document.
"""

import json
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from dispatch.loop import trip_offer_next
from pricing.models import Quote
from pricing.quotes import quotes_create
from tests.trips.factories import TRIP_REQUEST
from tests.trips.test_consumer import open_socket, socket_with_handlers
from tests.trips.whole_ride import bookable_time
from trips import errors, events
from trips.auth import tokens_for
from trips.consumers import _handlers
from trips.frame_limits import FLOOD_STRIKES
from trips.models import Trip
from trips.services import trip_expire

pytestmark = pytest.mark.django_db(transaction=True)

DOC_PATH = Path(settings.BASE_DIR) / "docs" / "asyncapi.yaml"
DOC_URI = "urn:taxi:asyncapi"
CHANNEL = "/taxi/"


def _load() -> dict:
    with DOC_PATH.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


DOC = _load()
REGISTRY = Registry().with_resource(
    DOC_URI, Resource.from_contents(DOC, default_specification=DRAFT7)
)

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def _messages(operation: str) -> dict[str, str]:
    """`type` -> JSON pointer of that message, for one direction."""
    found = {}
    for ref in DOC["channels"][CHANNEL][operation]["message"]["oneOf"]:
        pointer = ref["$ref"]
        message = DOC
        for part in pointer.removeprefix("#/").split("/"):
            message = message[part]
        assert message["payload"]["properties"]["type"]["const"] == message["name"]
        assert message["name"] not in found, f"two {operation} messages named {message['name']}"
        found[message["name"]] = pointer
    return found


CLIENT_MESSAGES = _messages("publish")
SERVER_MESSAGES = _messages("subscribe")
ERROR_CODES = set(DOC["components"]["schemas"]["ErrorCode"]["enum"])
# Codes of the REST calls after a ride (ratings, share links): no socket
# message rates or shares a trip.
REST_ONLY_CODES = {"already_rated", "not_rateable", "not_shareable"}


def _validator(pointer: str) -> jsonschema.Draft7Validator:
    schema = {"$ref": f"{DOC_URI}{pointer}/payload"}
    return jsonschema.Draft7Validator(schema, registry=REGISTRY, format_checker=FORMATS)


def validate_server_frame(frame: dict) -> None:
    assert frame.get("type") in SERVER_MESSAGES, f"undocumented server frame {frame}"
    _validator(SERVER_MESSAGES[frame["type"]]).validate(frame)


def validate_client_frame(frame: dict) -> None:
    assert frame.get("type") in CLIENT_MESSAGES, f"undocumented client frame {frame}"
    _validator(CLIENT_MESSAGES[frame["type"]]).validate(frame)


class Peer:
    """One socket whose every received frame is checked against the document."""

    def __init__(self, ws: WebsocketCommunicator, seen: dict) -> None:
        self.ws, self.seen = ws, seen
        self.sent = 0

    async def send(self, type_: str, data: object = None, *, valid: bool = True) -> str:
        self.sent += 1
        request_id = f"r{self.sent}"
        frame = {"type": type_, "data": data, "request_id": request_id}
        if data is None:
            del frame["data"]
        if valid:
            validate_client_frame(frame)
        await self.ws.send_json_to(frame)
        return request_id

    async def send_raw(self, text: str | None = None, binary: bytes | None = None) -> None:
        await self.ws.send_to(text_data=text, bytes_data=binary)

    async def expect(self, type_: str, *, request_id: str | None = None) -> dict:
        frame = await self.ws.receive_json_from(timeout=5)
        validate_server_frame(frame)
        self.seen.setdefault(frame["type"], []).append(frame)
        assert frame["type"] == type_, frame
        assert frame.get("request_id") == request_id, frame
        return frame

    async def expect_error(self, code: str, *, request_id: str | None = None) -> dict:
        frame = await self.expect("error", request_id=request_id)
        assert frame["data"]["code"] == code, frame
        return frame

    async def quiet(self) -> bool:
        return await self.ws.receive_nothing(timeout=0.3)


# --- the document itself -------------------------------------------------------------


def test_the_document_is_asyncapi_with_valid_schemas():
    assert DOC["asyncapi"].startswith("2.6")
    for pointer in {**CLIENT_MESSAGES, **SERVER_MESSAGES}.values():
        jsonschema.Draft7Validator.check_schema(_validator(pointer).schema)
        _validator(pointer).is_valid({})  # every $ref inside resolves


def test_every_message_type_the_server_handles_is_documented():
    assert set(CLIENT_MESSAGES) == set(_handlers())


def test_every_domain_error_a_socket_can_meet_has_a_documented_code():
    codes = {
        value.code
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.DomainError)
    }
    assert codes - REST_ONLY_CODES <= ERROR_CODES
    assert REST_ONLY_CODES <= codes  # each still a code of the service


def test_every_message_type_in_events_is_documented():
    server_types = {
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and name != "STREAM_PUSH"
    }
    assert server_types | {"echo.message"} == set(SERVER_MESSAGES)


# --- the scripted session ------------------------------------------------------------


@database_sync_to_async
def dispatch(trip_id: str):
    return trip_offer_next(trip_id=trip_id)


@database_sync_to_async
def expire(trip_id: str):
    return trip_expire(trip_id=trip_id, reason=Trip.Reason.NO_DRIVERS)


@database_sync_to_async
def quote_id_for(rider, *, expired: bool = False) -> str:
    """A `standard` quote of the rider's for TRIP_REQUEST's places; with
    `expired`, one already past its `expires_at`."""
    (quote,) = quotes_create(
        rider=rider,
        pick_up=(TRIP_REQUEST["pick_up_lat"], TRIP_REQUEST["pick_up_lng"]),
        drop_off=(TRIP_REQUEST["drop_off_lat"], TRIP_REQUEST["drop_off_lng"]),
        product="standard",
    )
    if expired:
        Quote.objects.filter(pk=quote.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return str(quote.pk)


def wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 10_000:04d}"


@pytest.fixture
def pin_required(settings):
    """Every move to IN_PROGRESS carries the rider's PIN (PROTOCOL.md Part 2)."""
    settings.RIDE_PIN_REQUIRED = True


@pytest.mark.usefixtures("catalogue", "pin_required")
async def test_every_frame_of_a_scripted_session_matches_the_document(
    ws_connect, rider, driver, make_user
):
    seen: dict[str, list[dict]] = {}
    rider_ws = Peer(await open_socket(ws_connect, rider), seen)
    rider_tablet = Peer(await open_socket(ws_connect, rider), seen)
    driver_ws = Peer(await open_socket(ws_connect, driver), seen)
    pick_up = {"lat": TRIP_REQUEST["pick_up_lat"], "lng": TRIP_REQUEST["pick_up_lng"]}

    async def requested_and_offered(request: dict = TRIP_REQUEST) -> str:
        """The rider's `create.trip`, dispatched to the driver: the trip's id."""
        r = await rider_ws.send("create.trip", request)
        trip_id = (await rider_ws.expect("trip.created", request_id=r))["data"]["id"]
        await rider_tablet.expect("trip.created")
        assert await dispatch(trip_id) is not None
        offer = await driver_ws.expect("trip.offer")
        assert offer["data"]["trip"]["id"] == trip_id
        return trip_id

    # Echo, and the driver goes online at the pick-up.
    r = await driver_ws.send("echo.message", {"hello": [1, "two", None]})
    await driver_ws.expect("echo.message", request_id=r)
    r = await driver_ws.send("driver.online", pick_up)
    await driver_ws.expect("driver.status", request_id=r)

    # Trip 1: created, offered, accepted with update.trip, driven, completed.
    trip_id = await requested_and_offered()
    r = await driver_ws.send("update.trip", {"id": trip_id, "status": "STARTED"})
    await driver_ws.expect("trip.updated", request_id=r)
    pin = (await rider_ws.expect("trip.updated"))["data"]["pin"]
    await rider_tablet.expect("trip.updated")

    await driver_ws.send("update.location", {**pick_up, "heading": 90.0, "speed": 12.5})
    await rider_ws.expect("driver.location")
    await rider_tablet.expect("driver.location")
    assert await driver_ws.quiet()  # a position has no reply

    for status in ("IN_PROGRESS", "COMPLETED"):
        r = await driver_ws.send("update.trip", {"id": trip_id, "status": status, "pin": pin})
        await driver_ws.expect("trip.updated", request_id=r)
        await rider_ws.expect("trip.updated")
        await rider_tablet.expect("trip.updated")

    # Errors of every kind the client can cause, each with its request_id.
    r = await rider_ws.send("cancel.trip", {"id": trip_id})
    await rider_ws.expect_error("invalid_transition", request_id=r)
    r = await rider_ws.send("cancel.trip", {"id": "3f1c0000-0000-0000-0000-000000000000"})
    await rider_ws.expect_error("not_found", request_id=r)
    r = await driver_ws.send("accept.trip", {"id": trip_id})
    await driver_ws.expect_error("offer_not_available", request_id=r)
    r = await driver_ws.send("create.trip", TRIP_REQUEST)
    await driver_ws.expect_error("forbidden", request_id=r)
    r = await rider_ws.send("create.trip", {**TRIP_REQUEST, "pick_up_lat": 91}, valid=False)
    invalid = await rider_ws.expect_error("invalid", request_id=r)
    assert "pick_up_lat" in invalid["data"]["errors"]
    r = await rider_ws.send("update.trip", {"id": 5, "status": "DONE"}, valid=False)
    await rider_ws.expect_error("invalid", request_id=r)
    r = await rider_ws.send("launch.rocket", {}, valid=False)
    await rider_ws.expect_error("unknown_type", request_id=r)
    await rider_ws.send_raw('{"type": "create.trip", "data": {"pick_up_lat": NaN}}')
    await rider_ws.expect_error("bad_json")
    await rider_ws.send_raw("[]")
    await rider_ws.expect_error("bad_json")
    await rider_ws.send_raw(binary=b"\x00")
    await rider_ws.expect_error("bad_json")
    # An echo whose reply would pass the frame limit (each "é" comes back as
    # six bytes of escape).
    big = {"type": "echo.message", "data": "é" * 30_000, "request_id": "big"}
    await rider_ws.send_raw(json.dumps(big, ensure_ascii=False))
    await rider_ws.expect_error("too_big", request_id="big")

    # The socket's credentials: refreshed, and a refresh refused.
    access = (await database_sync_to_async(tokens_for)(rider))["access"]
    r = await rider_ws.send("auth.refresh", {"access": access})
    await rider_ws.expect("auth.refreshed", request_id=r)
    r = await rider_ws.send("auth.refresh", {"access": "not.a.token"})
    await rider_ws.expect_error("not_authenticated", request_id=r)

    # Trip 2: the rider cancels while the driver holds its offer.
    trip_id = await requested_and_offered()
    r = await rider_ws.send("create.trip", TRIP_REQUEST)
    await rider_ws.expect_error("active_trip_exists", request_id=r)
    r = await rider_ws.send("cancel.trip", {"id": trip_id, "reason": "found a bus"})
    canceled = await rider_ws.expect("trip.updated", request_id=r)
    assert canceled["data"]["status_reason"] == "found a bus"
    await rider_tablet.expect("trip.updated")
    revoked = await driver_ws.expect("trip.offer.revoked")
    assert revoked["data"]["reason"] == "canceled"

    # Trip 3: the driver declines.
    trip_id = await requested_and_offered()
    r = await driver_ws.send("decline.trip", {"id": trip_id})
    await driver_ws.expect("trip.offer.declined", request_id=r)
    r = await rider_ws.send("update.trip", {"id": trip_id, "status": "CANCELED"})
    await rider_ws.expect("trip.updated", request_id=r)
    await rider_tablet.expect("trip.updated")

    # Trip 4: offered, then the service gives up on it.
    no_drop_off = {**TRIP_REQUEST, "drop_off_lat": None, "drop_off_lng": None}
    trip_id = await requested_and_offered(no_drop_off)
    assert await expire(trip_id) is not None
    expired = await driver_ws.expect("trip.offer.revoked")
    assert expired["data"]["reason"] == "expired"
    gone = await rider_ws.expect("trip.updated")
    assert (gone["data"]["status"], gone["data"]["status_reason"]) == ("EXPIRED", "no_drivers")
    await rider_tablet.expect("trip.updated")

    # Quotes refused at the request: one past its expiry, one for another product.
    expired_quote = await quote_id_for(rider, expired=True)
    r = await rider_ws.send("create.trip", {**TRIP_REQUEST, "quote_id": expired_quote})
    await rider_ws.expect_error("quote_expired", request_id=r)
    live_quote = await quote_id_for(rider)
    other_product = {**TRIP_REQUEST, "quote_id": live_quote, "product": "xl"}
    r = await rider_ws.send("create.trip", other_product)
    await rider_ws.expect_error("quote_mismatch", request_id=r)

    # Trip 5: the driver arrives, reports a no-show before the wait is over,
    # and gives wrong PINs until the trip locks; the rider cancels it.
    trip_id = await requested_and_offered()
    for status in ("STARTED", "ARRIVED"):
        r = await driver_ws.send("update.trip", {"id": trip_id, "status": status})
        await driver_ws.expect("trip.updated", request_id=r)
        pin = (await rider_ws.expect("trip.updated"))["data"]["pin"]
        await rider_tablet.expect("trip.updated")
    r = await driver_ws.send("cancel.trip", {"id": trip_id, "reason_code": "rider_no_show"})
    await driver_ws.expect_error("too_early", request_id=r)
    tries = settings.RIDE_PIN_MAX_ATTEMPTS
    for code in ["invalid_pin"] * (tries - 1) + ["pin_locked"]:
        move = {"id": trip_id, "status": "IN_PROGRESS", "pin": wrong(pin)}
        r = await driver_ws.send("update.trip", move)
        await driver_ws.expect_error(code, request_id=r)
    r = await rider_ws.send("cancel.trip", {"id": trip_id, "reason_code": "changed_mind"})
    canceled = await rider_ws.expect("trip.updated", request_id=r)
    assert canceled["data"]["status"] == "CANCELED"
    await rider_tablet.expect("trip.updated")
    await driver_ws.expect("trip.updated")

    # Rides booked for later: as many as a rider may hold, then one more.
    booking = {**TRIP_REQUEST, "scheduled_for": bookable_time().isoformat()}
    for _ in range(settings.SCHEDULE_MAX_PER_RIDER):
        r = await rider_ws.send("create.trip", booking)
        booked = await rider_ws.expect("trip.created", request_id=r)
        assert booked["data"]["status"] == "SCHEDULED"
        await rider_tablet.expect("trip.created")
    r = await rider_ws.send("create.trip", booking)
    await rider_ws.expect_error("too_many_scheduled", request_id=r)

    # The driver goes offline.
    r = await driver_ws.send("driver.offline", {})
    await driver_ws.expect("driver.status", request_id=r)

    # A flood on a socket of its own: rate_limited, then closed.
    flooder_ws = await open_socket(ws_connect, await database_sync_to_async(make_user)("rider"))
    flooder = Peer(flooder_ws, seen)
    for _ in range(int(settings.WS_RATE_BURST) + 2 * FLOOD_STRIKES + 10):
        await flooder.send("echo.message", 1)
    while (output := await flooder_ws.receive_output(timeout=5))["type"] == "websocket.send":
        frame = json.loads(output["text"])
        validate_server_frame(frame)
        seen.setdefault(frame["type"], []).append(frame)
    assert output["code"] == 1008

    # Then every socket has been fully read, and each message and error code
    # the document lists was met.
    for peer in (rider_ws, rider_tablet, driver_ws):
        assert await peer.quiet()
    seen_codes = {frame["data"]["code"] for frame in seen.get("error", [])}
    # `internal` and `unavailable` are the server's failures: the next test
    assert seen_codes == ERROR_CODES - {"internal", "unavailable"}
    assert set(seen) == set(SERVER_MESSAGES)


@pytest.mark.parametrize(
    ("failure", "code"),
    [(ZeroDivisionError(), "internal"), (RedisConnectionError("gone"), "unavailable")],
    ids=["bug", "redis-down"],
)
async def test_a_server_side_error_frame_matches_the_document(make_user, failure, code):
    async def broken(consumer, data):
        raise failure

    user = await database_sync_to_async(make_user)("rider")
    ws = await socket_with_handlers(user, {"break.things": broken})
    try:
        await ws.send_json_to({"type": "break.things", "data": {}, "request_id": "x"})
        frame = await ws.receive_json_from(timeout=5)
    finally:
        await ws.disconnect()

    validate_server_frame(frame)
    assert frame["data"]["code"] == code
