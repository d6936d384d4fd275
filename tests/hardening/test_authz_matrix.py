"""Who may do what: every REST call and every socket action, against every
role a user can play towards one trip, with exactly the access PROTOCOL.md
grants, and nothing changed by a refused call.

The roles, towards the trip under test:

    rider         the trip's rider
    assigned      the driver assigned to it (a STARTED trip only)
    offered       the driver it is offered to: holding the live offer of a
                  REQUESTED trip; once offered, offer lapsed, of a STARTED one
    other_rider   a rider with no part in it (and no trip of their own)
    other_driver  a driver with no part in it
    anonymous     no credentials (a socket without them is refused at the
                  handshake, so it has no row of its own below)

The tables read across: one row per call and trip state, one column per
role. `ok` is the call's success, `-` a role the state has not got, anything
else the refusal: its status (REST) or error code (socket). The cases written
out one by one live with each call's own tests; this is the whole grid.
"""

import uuid

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from dispatch.models import Offer
from notifications import tokens
from notifications.models import Device
from notifications.services import device_register
from pricing.models import Quote, Vehicle
from tests.conftest import PASSWORD
from tests.hardening.support import presence, rows
from tests.notifications.support import fcm_token
from tests.pricing.support import ensure_catalogue, give_vehicle
from tests.trips.factories import make_offer, make_trip
from trips.auth import tokens_for
from trips.models import Trip

S = Trip.Status
ROLES = ("rider", "assigned", "offered", "other_rider", "other_driver", "anonymous")
STATES = ("requested", "started")
TRIP_BODY = {
    "pick_up_address": "1 Elm Street",
    "pick_up_lat": 38.9,
    "pick_up_lng": -77.03,
    "drop_off_address": "2 Oak Street",
}
POSITION = {"lat": 38.9, "lng": -77.03}
QUOTE_BODY = {
    "pick_up_lat": 38.9,
    "pick_up_lng": -77.03,
    "drop_off_lat": 38.92,
    "drop_off_lng": -77.04,
}
VEHICLE_BODY = {
    "make": "Toyota",
    "model": "Sienna",
    "color": "Grey",
    "plate": "XL-1",
    "capacity": 6,
    "products": ["standard", "xl"],
}


def parse(table: str) -> dict[tuple[str, str, str], str]:
    """`call state cell...` lines -> {(call, state, role): cell}; state `both`
    stands for a row that reads the same in each state."""
    grid = {}
    for line in table.strip().splitlines()[1:]:
        call, state, *cells = line.split()
        assert len(cells) == len(ROLES), line
        for each in STATES if state == "both" else (state,):
            for role, cell in zip(ROLES, cells, strict=True):
                if cell != "-":
                    grid[(call, each, role)] = cell
    return grid


def case_ids(grid: dict) -> list[str]:
    return ["-".join(case) for case in sorted(grid)]


# --- REST ---------------------------------------------------------------------------
# Refusals by status; 409s by code: offer (offer_not_available), move
# (invalid_transition), active (active_trip_exists). `unlisted`: a 200 list
# without the trip. `vehicle`'s 404: no vehicle on record (of the drivers,
# only the assigned one has a car); `set_car` is PUT /api/driver/vehicle/.

REST = parse("""
call     state     rider  assigned offered  o_rider  o_driver anonymous
read     requested ok     -        ok       404      404      401
read     started   ok     ok       404      404      404      401
list     requested ok     -        ok       unlisted unlisted 401
list     started   ok     ok       unlisted unlisted unlisted 401
accept   requested offer  -        ok       offer    offer    401
accept   started   offer  offer    offer    offer    offer    401
decline  requested offer  -        ok       offer    offer    401
decline  started   offer  offer    offer    offer    offer    401
status   requested move   -        move     404      404      401
status   started   move   ok       404      404      404      401
cancel   requested ok     -        move     404      404      401
cancel   started   ok     ok       404      404      404      401
create   both      active 403      403      ok       403      401
online   both      403    ok       ok       403      ok       401
offline  both      403    ok       ok       403      ok       401
location both      403    ok       ok       403      ok       401
nearby   both      ok     ok       ok       ok       ok       401
log_out  both      ok     ok       ok       ok       ok       401
products both      ok     ok       ok       ok       ok       401
quote    both      ok     403      403      ok       403      401
vehicle  requested 403    -        404      403      404      401
vehicle  started   403    ok       404      403      404      401
set_car  both      403    ok       ok       403      ok       401
sign_up  both      ok     ok       ok       ok       ok       ok
log_in   both      ok     ok       ok       ok       ok       ok
refresh  both      ok     ok       ok       ok       ok       ok
device   both      ok     ok       ok       ok       ok       401
del_dev  both      ok     404      404      404      404      401
""")

SUCCESS = {
    "decline": 204,
    "location": 204,
    "log_out": 204,
    "create": 201,
    "sign_up": 201,
    "quote": 201,
    "device": 201,
    "del_dev": 204,
}
CODES = {
    "401": (401, "not_authenticated"),
    "403": (403, "forbidden"),
    "404": (404, "not_found"),
    "offer": (409, "offer_not_available"),
    "move": (409, "invalid_transition"),
    "active": (409, "active_trip_exists"),
}


def rest_call(call: str, client: APIClient, trip: Trip):
    n = uuid.uuid4().hex[:8]
    calls = {
        "read": lambda: client.get(f"/api/trip/{trip.pk}/"),
        "list": lambda: client.get("/api/trip/"),
        "accept": lambda: client.post(f"/api/trip/{trip.pk}/accept/"),
        "decline": lambda: client.post(f"/api/trip/{trip.pk}/decline/"),
        "status": lambda: client.post(
            f"/api/trip/{trip.pk}/status/", {"status": "IN_PROGRESS"}, format="json"
        ),
        "cancel": lambda: client.post(f"/api/trip/{trip.pk}/cancel/", {}, format="json"),
        "create": lambda: client.post("/api/trip/", TRIP_BODY, format="json"),
        "online": lambda: client.post("/api/driver/online/", POSITION, format="json"),
        "offline": lambda: client.post("/api/driver/offline/"),
        "location": lambda: client.post("/api/driver/location/", POSITION, format="json"),
        "nearby": lambda: client.get("/api/driver/nearby/", POSITION),
        "log_out": lambda: client.post("/api/log_out/"),
        # PROTOCOL.md Part 2, "Products, vehicles and prices".
        "products": lambda: client.get("/api/products/"),
        "quote": lambda: client.post("/api/quotes/", QUOTE_BODY, format="json"),
        "vehicle": lambda: client.get("/api/driver/vehicle/"),
        "set_car": lambda: client.put("/api/driver/vehicle/", VEHICLE_BODY, format="json"),
        # PROTOCOL.md Part 2, "Devices and push notifications": `del_dev`
        # removes the rider's phone.
        "device": lambda: client.post(
            "/api/devices/", {"platform": "fcm", "token": fcm_token()}, format="json"
        ),
        "del_dev": lambda: client.delete(f"/api/devices/{_riders_phone(trip).pk}/"),
        # Public calls: the caller's credentials ride along and change nothing.
        "sign_up": lambda: client.post(
            "/api/sign_up/",
            {
                "username": f"new{n}@example.com",
                "password1": "a-Long-unusual-passphrase-42",
                "password2": "a-Long-unusual-passphrase-42",
                "first_name": "New",
                "last_name": "Person",
            },
            format="json",
        ),
        "log_in": lambda: client.post(
            "/api/log_in/", {"username": trip.rider.username, "password": PASSWORD}, format="json"
        ),
        "refresh": lambda: client.post(
            "/api/token/refresh/", {"refresh": tokens_for(trip.rider)["refresh"]}, format="json"
        ),
    }
    return calls[call]()


def _riders_phone(trip: Trip) -> Device:
    return Device.objects.get(user=trip.rider)


def build_world(make_user, state: str) -> tuple[dict, Trip]:
    ensure_catalogue()
    users = {
        "rider": make_user("rider"),
        "assigned": make_user("driver"),
        "offered": make_user("driver"),
        "other_rider": make_user("rider"),
        "other_driver": make_user("driver"),
    }
    if state == "requested":
        trip = make_trip(users["rider"])
        make_offer(trip, users["offered"])
    else:
        trip = make_trip(users["rider"], status=S.STARTED, driver=users["assigned"])
        make_offer(trip, users["offered"], status=Offer.Status.EXPIRED)
        # The assigned driver's car, which their rider sees.
        give_vehicle(users["assigned"], ["standard"])
    # The rider's phone, registered for push notifications.
    device_register(user=users["rider"], token=tokens.parse("fcm", fcm_token()))
    return users, trip


def world_state(users: dict) -> tuple:
    """The rows (trips, offers, quotes, vehicles and their products, devices)
    and every driver's presence: what a refused call leaves alone."""
    drivers = [u for u in users.values() if u.is_driver]
    priced = (
        list(Quote.objects.order_by("pk").values()),
        sorted(Vehicle.products_of(d.pk) or [] for d in drivers),
        list(Vehicle.objects.order_by("pk").values()),
    )
    devices = list(Device.objects.order_by("pk").values())
    return rows(), [presence(d.pk) for d in drivers], priced, devices


def assert_rest_effect(call: str, role: str, response, users: dict, trip: Trip) -> None:
    """What a granted call did (besides answering)."""
    row = Trip.objects.get(pk=trip.pk)
    if call == "read":
        assert response.json()["id"] == str(trip.pk)
        # An offered driver does not see who the rider is before accepting.
        assert (response.json()["rider"] is None) == (role == "offered")
    elif call == "list":
        assert str(trip.pk) in {t["id"] for t in response.json()}
    elif call == "accept":
        assert (row.status, row.driver_id) == (S.STARTED, users["offered"].pk)
    elif call == "decline":
        assert Offer.objects.get(trip=trip, driver=users["offered"]).status == "DECLINED"
    elif call == "status":
        assert row.status == S.IN_PROGRESS
    elif call == "cancel":
        # PROTOCOL.md Part 2: the assigned driver's cancel goes back to dispatch.
        expected = S.REQUESTED if role == "assigned" else S.CANCELED
        assert row.status == expected
    elif call == "create":
        assert Trip.objects.filter(rider=users[role], status=S.REQUESTED).count() == 1
    elif call == "products":
        assert [p["code"] for p in response.json()] == ["standard", "xl"]
    elif call == "quote":
        assert Quote.objects.filter(rider=users[role]).count() == len(response.json()["quotes"])
    elif call == "vehicle":
        assert response.json()["products"] == ["standard"]
    elif call == "set_car":
        assert Vehicle.products_of(users[role].pk) == ["standard", "xl"]
    elif call == "device":
        assert Device.objects.filter(pk=response.json()["id"], user=users[role]).exists()
    elif call == "del_dev":
        assert not Device.objects.filter(user=users["rider"]).exists()
    elif call in ("online", "offline"):
        online = presence(users[role].pk)[0].get("online") == "1"
        assert online == (call == "online")


@pytest.mark.django_db
@pytest.mark.parametrize(("call", "state", "role"), sorted(REST), ids=case_ids(REST))
def test_rest(make_user, client_for, high_rates, call, state, role):
    users, trip = build_world(make_user, state)
    client = APIClient() if role == "anonymous" else client_for(users[role])
    before = world_state(users)

    response = rest_call(call, client, trip)

    expected = REST[(call, state, role)]
    if expected in ("ok", "unlisted"):
        assert response.status_code == SUCCESS.get(call, 200), response.content
        if expected == "unlisted":
            assert str(trip.pk) not in {t["id"] for t in response.json()}
            assert world_state(users) == before
        else:
            assert_rest_effect(call, role, response, users, trip)
    else:
        status, code = CODES[expected]
        assert (response.status_code, response.json().get("code")) == (status, code)
        assert world_state(users) == before


# --- the socket -----------------------------------------------------------------
# Refusals by error code: not_found, offer (offer_not_available), move
# (invalid_transition), active (active_trip_exists), forbidden.
# update.trip is one row per status it can be sent with.

SOCKET = parse("""
action             state     rider     assigned  offered   o_rider   o_driver  anonymous
update:STARTED     requested offer     -         ok        offer     offer     -
update:STARTED     started   offer     offer     offer     offer     offer     -
update:IN_PROGRESS requested move      -         move      not_found not_found -
update:IN_PROGRESS started   move      ok        not_found not_found not_found -
update:COMPLETED   requested move      -         move      not_found not_found -
update:COMPLETED   started   move      move      not_found not_found not_found -
update:CANCELED    requested ok        -         move      not_found not_found -
update:CANCELED    started   ok        ok        not_found not_found not_found -
update:REQUESTED   both      move      move      move      move      move      -
update:EXPIRED     both      move      move      move      move      move      -
accept             requested offer     -         ok        offer     offer     -
accept             started   offer     offer     offer     offer     offer     -
decline            requested offer     -         ok        offer     offer     -
decline            started   offer     offer     offer     offer     offer     -
cancel             requested ok        -         move      not_found not_found -
cancel             started   ok        ok        not_found not_found not_found -
create             both      active    forbidden forbidden ok        forbidden -
online             both      forbidden ok        ok        forbidden ok        -
offline            both      forbidden ok        ok        forbidden ok        -
location           both      forbidden ok        ok        forbidden ok        -
""")

WS_CODES = {
    "offer": "offer_not_available",
    "move": "invalid_transition",
    "active": "active_trip_exists",
}
# The reply a granted action gets; update.location has none.
WS_REPLIES = {
    "update": "trip.updated",
    "accept": "trip.updated",
    "decline": "trip.offer.declined",
    "cancel": "trip.updated",
    "create": "trip.created",
    "online": "driver.status",
    "offline": "driver.status",
    "location": None,
}


def ws_frame(action: str, trip: Trip) -> dict:
    name, _, status = action.partition(":")
    trip_id = str(trip.pk)
    data = {
        "update": {"id": trip_id, "status": status},
        "accept": {"id": trip_id},
        "decline": {"id": trip_id},
        "cancel": {"id": trip_id},
        "create": TRIP_BODY,
        "online": POSITION,
        "offline": {},
        "location": POSITION,
    }[name]
    types = {
        "update": "update.trip",
        "accept": "accept.trip",
        "decline": "decline.trip",
        "cancel": "cancel.trip",
        "create": "create.trip",
        "online": "driver.online",
        "offline": "driver.offline",
        "location": "update.location",
    }
    return {"type": types[name], "data": data, "request_id": "authz"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("action", "state", "role"), sorted(SOCKET), ids=case_ids(SOCKET))
async def test_socket(make_user, ws_connect, high_rates, action, state, role):
    users, trip = await database_sync_to_async(build_world)(make_user, state)
    ws, connected, code = await ws_connect(users[role])
    assert connected, code
    before = await database_sync_to_async(world_state)(users)

    await ws.send_json_to(ws_frame(action, trip))
    # An echo right behind: a reply (or error) comes before it, or none at all.
    await ws.send_json_to({"type": "echo.message", "data": "after"})
    first = await ws.receive_json_from(timeout=5)

    expected = SOCKET[(action, state, role)]
    name = action.partition(":")[0]
    if expected == "ok":
        reply_type = WS_REPLIES[name]
        if reply_type is None:
            assert first == {"type": "echo.message", "data": "after"}
        else:
            assert (first["type"], first.get("request_id")) == (reply_type, "authz"), first
    else:
        assert first["type"] == "error", first
        assert first["data"]["code"] == WS_CODES.get(expected, expected), first
        assert await database_sync_to_async(world_state)(users) == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path", ["/taxi/", "/taxi/?token=", "/taxi/?token=not-a-token"], ids=["none", "empty", "bad"]
)
async def test_socket_without_credentials_is_refused_at_the_handshake(ws_connect, path):
    ws, connected, _ = await ws_connect(path=path)

    assert not connected


def test_the_tables_cover_every_call_and_action():
    from trips.consumers import _handlers

    socket_types = {ws_frame(action, Trip(pk=uuid.uuid4()))["type"] for action, _, _ in SOCKET}
    # auth.refresh acts on the socket itself (tests/trips/test_ws_credentials.py).
    assert socket_types == set(_handlers()) - {"echo.message", "auth.refresh"}
    rest_calls = {call for call, _, _ in REST}
    assert rest_calls == {
        "read", "list", "accept", "decline", "status", "cancel", "create", "online",
        "offline", "location", "nearby", "log_out", "sign_up", "log_in", "refresh",
        "products", "quote", "vehicle", "set_car", "device", "del_dev",
    }  # fmt: skip
