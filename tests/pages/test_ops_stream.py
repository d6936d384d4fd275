"""`/ops/stream/`, the staff console's feed, against the real ASGI app,
database and Redis: who may open it, the snapshot, the deltas, and one
ticker per process however many staff sockets listen."""

import asyncio
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone

from dispatch import presence
from dispatch.models import Offer
from pages import consumers, ops_state
from tests.dispatch.support import close_sync_thread_connections  # noqa: F401
from tests.taxi.test_ws_handshake import cookie_of, log_in, session_cookie
from tests.trips.factories import make_offer, make_trip
from trips.auth import tokens_for
from trips.models import Trip

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_sync_thread_connections"),
]

TICK_S = 0.2


@pytest.fixture(autouse=True)
def fast_ticks(settings):
    settings.OPS_TICK_S = TICK_S


@pytest.fixture
def staff(make_user):
    return make_user("rider", is_staff=True)


async def open_stream(ws_connect, user):
    cookie = await session_cookie(user)
    return await ws_connect(path="/ops/stream/", headers=[(b"cookie", cookie.encode())])


async def staff_stream(ws_connect, staff):
    ws, connected, code = await open_stream(ws_connect, staff)
    assert connected, f"refused with {code}"
    return ws


async def frames_until(ws, check, within: float = 10) -> list[dict]:
    """Frames as they come, until `check(frame)` holds for one."""
    seen = []
    async with asyncio.timeout(within):
        while True:
            frame = await ws.receive_json_from(timeout=within)
            seen.append(frame)
            if check(frame):
                return seen


async def test_anonymous_sockets_are_refused(ws_connect):
    _, connected, _ = await ws_connect(path="/ops/stream/")

    assert not connected


async def test_riders_and_drivers_are_refused_by_session_and_by_token(ws_connect, rider, driver):
    for user in (rider, driver):
        _, connected, _ = await open_stream(ws_connect, user)
        assert not connected
        tokens = await database_sync_to_async(tokens_for)(user)
        _, connected, _ = await ws_connect(path=f"/ops/stream/?token={tokens['access']}")
        assert not connected


async def test_staff_get_a_snapshot_of_drivers_trips_and_counters(ws_connect, staff, rider, driver):
    presence.set_online(driver.pk, lat=38.9, lng=-77.04)
    trip = await database_sync_to_async(make_trip)(rider)

    ws = await staff_stream(ws_connect, staff)
    frame = await ws.receive_json_from(timeout=5)

    assert frame["type"] == "ops.snapshot"
    data = frame["data"]
    assert data["drivers"] == {"set": [[driver.pk, 38.9, -77.04, "free"]], "gone": []}
    assert [(t["id"], t["status"], t["pick"]) for t in data["trips"]["set"]] == [
        (str(trip.id), "REQUESTED", [38.8977, -77.0365])
    ]
    assert "parts" not in data, "a small city fits in one frame"
    assert data["counters"]["drivers_online"] == 1
    assert data["counters"]["drivers"]["free"] == 1
    assert data["counters"]["open_requests"] == 1
    assert data["features"] == {"surge": True}


async def test_then_one_delta_a_tick_with_only_what_changed(
    ws_connect, staff, rider, driver, make_user
):
    other = await database_sync_to_async(make_user)("driver")
    presence.set_online(driver.pk, lat=38.9, lng=-77.04)
    presence.set_online(other.pk, lat=38.91, lng=-77.05)
    trip = await database_sync_to_async(make_trip)(rider)
    ws = await staff_stream(ws_connect, staff)
    snapshot = await ws.receive_json_from(timeout=5)

    # The driver moves, the other goes offline, the trip is accepted.
    presence.ping(driver.pk, lat=38.9003, lng=-77.0403)  # ~40 m: a plausible move
    presence.set_offline(other.pk)
    await database_sync_to_async(
        lambda: Trip.objects.filter(pk=trip.pk).update(status="STARTED", driver=driver, version=2)
    )()
    presence.on_driver_assigned(driver.pk, trip_id=trip.id, rider_id=rider.pk)

    def settled(frame):
        trips = frame["data"].get("trips", {}).get("set", [])
        return any(t["status"] == "STARTED" for t in trips)

    frames = await frames_until(ws, settled)

    assert all(f["type"] == "ops.delta" for f in frames)
    ticks = [snapshot["data"]["tick"]] + [f["data"]["tick"] for f in frames]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), "deltas build on each tick"
    drivers_set = [row for f in frames for row in f["data"].get("drivers", {}).get("set", [])]
    drivers_gone = [i for f in frames for i in f["data"].get("drivers", {}).get("gone", [])]
    assert drivers_set[-1] == [driver.pk, 38.9003, -77.0403, "on_trip"]
    assert drivers_gone == [other.pk]
    assert frames[-1]["data"]["trips"]["set"][0]["driver"] == driver.pk


async def test_a_quiet_city_sends_a_small_heartbeat(ws_connect, staff):
    ws = await staff_stream(ws_connect, staff)
    await ws.receive_json_from(timeout=5)

    frame = await ws.receive_json_from(timeout=5)

    assert frame["type"] == "ops.delta"
    assert set(frame["data"]) == {"at", "tick"}


async def test_an_ended_trip_stays_with_its_final_status_then_leaves(
    ws_connect, staff, rider, monkeypatch
):
    monkeypatch.setattr(ops_state, "ENDED_SHOWN_S", 1.0)
    trip = await database_sync_to_async(make_trip)(rider)
    ws = await staff_stream(ws_connect, staff)
    await ws.receive_json_from(timeout=5)

    await database_sync_to_async(
        lambda: Trip.objects.filter(pk=trip.pk).update(status="CANCELED", version=2)
    )()
    frames = await frames_until(ws, lambda f: "trips" in f["data"])
    assert frames[-1]["data"]["trips"]["set"][0]["status"] == "CANCELED"

    frames = await frames_until(ws, lambda f: "trips" in f["data"])
    assert frames[-1]["data"]["trips"]["gone"] == [str(trip.id)]


async def test_every_staff_socket_of_a_process_shares_one_ticker(ws_connect, staff, make_user):
    second_staff = await database_sync_to_async(make_user)("rider", is_staff=True)
    first = await staff_stream(ws_connect, staff)
    second = await staff_stream(ws_connect, second_staff)
    one = await first.receive_json_from(timeout=5)
    two = await second.receive_json_from(timeout=5)
    shared = consumers.ticker()

    assert len(shared.subscribers) == 2
    assert one["type"] == two["type"] == "ops.snapshot"

    await first.disconnect()
    await second.disconnect()
    await asyncio.wait_for(shared._task, timeout=5)
    assert not shared.subscribers and shared.tick == 0, "no socket, no reading"


async def test_a_socket_that_fell_behind_gets_a_snapshot_not_a_delta(staff):
    ticker = consumers.CityTicker(interval=TICK_S)
    await ticker.advance(0.0)
    await ticker.advance(1.0)
    await ticker.advance(2.0)

    assert ticker.frames_after(ticker.tick - 1) == ticker.delta_frames
    assert '"ops.snapshot"' in ticker.frames_after(ticker.tick - 2)[0]
    assert '"ops.snapshot"' in ticker.frames_after(-1)[0]


async def test_a_big_city_goes_out_in_parts_under_the_frame_limit(ws_connect, staff):
    """Daphne will not send a message over its 64 KiB limit: the snapshot of
    thousands of drivers, and a delta of them all moving, come in parts."""
    drivers = range(1, 4001)
    for driver_id in drivers:
        presence.set_online(driver_id, lat=38.9 + driver_id * 1e-5, lng=-77.04)
    ws = await staff_stream(ws_connect, staff)

    head = await ws.receive_json_from(timeout=10)
    parts = [await ws.receive_from(timeout=5) for _ in range(head["data"]["parts"])]

    assert head["type"] == "ops.snapshot" and head["data"]["parts"] > 1
    assert all(len(raw) <= consumers.FRAME_BYTES for raw in parts)
    rows = [row for raw in parts for row in json.loads(raw)["data"]["drivers"]["set"]]
    assert sorted(row[0] for row in rows) == list(drivers)
    assert {json.loads(raw)["type"] for raw in parts} == {"ops.part"}
    assert {json.loads(raw)["data"]["tick"] for raw in parts} == {head["data"]["tick"]}

    for driver_id in drivers:
        presence.ping(driver_id, lat=38.9 + driver_id * 1e-5, lng=-77.0403)  # ~30 m west
    moved, split_deltas = set(), 0
    async with asyncio.timeout(20):
        while len(moved) < len(drivers):
            raw = await ws.receive_from(timeout=10)
            frame = json.loads(raw)
            assert len(raw) <= consumers.FRAME_BYTES
            assert frame["type"] in ("ops.delta", "ops.part")
            split_deltas += "parts" in frame["data"]
            moved |= {row[0] for row in frame["data"].get("drivers", {}).get("set", [])}
    assert split_deltas, "thousands of drivers moving make a delta too big for one frame"


def test_time_to_match_and_acceptance_over_the_last_five_minutes(rider, make_user):
    drivers = [make_user("driver") for _ in range(4)]
    now = timezone.now()
    answers = [
        (Offer.Status.ACCEPTED, 4),
        (Offer.Status.ACCEPTED, 10),
        (Offer.Status.DECLINED, 2),
        (Offer.Status.EXPIRED, 15),
    ]
    for driver, (status, after_s) in zip(drivers, answers, strict=True):
        trip = make_trip(rider, status="CANCELED")
        Trip.objects.filter(pk=trip.pk).update(created=now - timedelta(seconds=60))
        offer = make_offer(trip, driver, status=status)
        Offer.objects.filter(pk=offer.pk).update(
            closed_at=now - timedelta(seconds=60 - after_s),
            expires_at=now - timedelta(seconds=45),
        )
    # Older than the window: not counted.
    old = make_trip(rider, status="CANCELED")
    stale = make_offer(old, make_user("driver"), status=Offer.Status.DECLINED)
    Offer.objects.filter(pk=stale.pk).update(
        closed_at=now - timedelta(minutes=6), expires_at=now - timedelta(minutes=6)
    )

    assert ops_state.match_stats() == {
        "match_p50_s": 7.0,
        "acceptance": 0.5,
        "offers_answered": 4,
    }


def test_diff_names_what_was_set_and_what_is_gone():
    before = ops_state.City(
        drivers={1: (1.0, 2.0, "free"), 2: (3.0, 4.0, "free")},
        trips={"a": {"id": "a", "status": "REQUESTED"}},
        counters={"drivers_online": 2},
    )
    after = ops_state.City(
        drivers={1: (1.0, 2.0, "free"), 3: (5.0, 6.0, "offered")},
        trips={"a": {"id": "a", "status": "REQUESTED"}},
        counters={"drivers_online": 2},
    )

    assert ops_state.diff(before, after) == {
        "drivers": {"set": [[3, 5.0, 6.0, "offered"]], "gone": [2]}
    }
    assert ops_state.diff(after, after) == {}


@database_sync_to_async
def logged_in_client(user) -> tuple[Client, str]:
    client, _ = log_in(user)
    return client, cookie_of(client)


async def test_logging_out_of_the_admin_closes_the_console_stream(ws_connect, staff):
    client, cookie = await logged_in_client(staff)
    other_client, other_cookie = await logged_in_client(staff)
    headers = [(b"cookie", cookie.encode())]
    ws, connected, _ = await ws_connect(path="/ops/stream/", headers=headers)
    other, other_connected, _ = await ws_connect(
        path="/ops/stream/", headers=[(b"cookie", other_cookie.encode())]
    )
    assert connected and other_connected
    await ws.receive_json_from(timeout=5)
    await other.receive_json_from(timeout=5)

    response = await database_sync_to_async(client.post)("/admin/logout/")

    assert response.status_code == 200
    while True:
        output = await ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 4003
    frame = await other.receive_json_from(timeout=5)
    assert frame["type"] == "ops.delta", "another session's console stays open"


async def test_a_deactivated_staff_members_stream_closes(ws_connect, staff):
    ws = await staff_stream(ws_connect, staff)
    await ws.receive_json_from(timeout=5)

    def deactivate():
        staff.is_active = False
        staff.save()

    await database_sync_to_async(deactivate)()

    while True:
        output = await ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 4003
