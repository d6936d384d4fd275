"""One user cannot starve the others: at most WS_MAX_SOCKETS_PER_USER sockets
(refused at the handshake beyond that, the open ones stay), one frame budget
shared by the user's sockets, and what the user's group settles refused
before a database thread is taken. Real ASGI app, database and Redis.
"""

import json
import time

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from dispatch import keys
from taxi.infra.redis import get_redis
from tests.trips.factories import TRIP_REQUEST
from tests.trips.test_consumer import QUIET_S, answers_echo, open_socket, request
from trips.consumers import TaxiConsumer
from trips.frame_limits import UserBuckets

pytestmark = pytest.mark.django_db(transaction=True)

CAP = settings.WS_MAX_SOCKETS_PER_USER
SOME_TRIP = "3f1c0000-0000-0000-0000-000000000000"


# --- the socket cap -----------------------------------------------------------------


async def test_the_socket_past_the_cap_is_refused_and_the_open_ones_stay(ws_connect, rider):
    opened = [await open_socket(ws_connect, rider) for _ in range(CAP)]

    ws, connected, code = await ws_connect(rider)

    assert not connected, "one socket more than the cap was accepted"
    for ws in opened:
        assert await answers_echo(ws)


async def test_a_closed_socket_makes_room(ws_connect, rider):
    opened = [await open_socket(ws_connect, rider) for _ in range(CAP)]
    await opened[0].disconnect()

    _, connected, code = await ws_connect(rider)

    assert connected, code


async def test_the_cap_is_per_user(ws_connect, rider, make_user):
    for _ in range(CAP):
        await open_socket(ws_connect, rider)
    other = await database_sync_to_async(make_user)("rider")

    ws = await open_socket(ws_connect, other)

    assert await answers_echo(ws)


async def test_leases_of_a_dead_process_stop_counting(ws_connect, rider):
    # Given CAP sockets recorded by a process that died: their leases ran out.
    key = keys.user_sockets(rider.pk)
    get_redis().zadd(key, {f"dead-{n}": time.time() - 1 for n in range(CAP)})

    ws = await open_socket(ws_connect, rider)

    assert await answers_echo(ws)
    assert get_redis().zcard(key) == 1


async def test_the_lease_set_expires_and_empties_on_close(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)
    key = keys.user_sockets(rider.pk)

    assert 0 < get_redis().ttl(key) <= keys.SOCKET_LEASE_S
    await ws.disconnect()

    assert get_redis().zcard(key) == 0


async def test_a_refused_handshake_holds_no_lease(ws_connect, rider):
    for _ in range(CAP):
        await open_socket(ws_connect, rider)

    for _ in range(3):
        _, connected, _ = await ws_connect(rider)
        assert not connected

    assert get_redis().zcard(keys.user_sockets(rider.pk)) == CAP


# --- one frame budget per user ------------------------------------------------------


async def test_a_users_sockets_share_one_frame_budget(ws_connect, rider, make_user, settings):
    # Given a slow refill (one frame a second), two sockets of one rider, and
    # another rider's.
    settings.WS_RATE_PER_S, settings.WS_RATE_BURST = 1, 20
    first = await open_socket(ws_connect, rider)
    second = await open_socket(ws_connect, rider)
    other = await open_socket(ws_connect, await database_sync_to_async(make_user)("rider"))

    # When the first spends the whole burst at once.
    for n in range(int(settings.WS_RATE_BURST)):
        await first.send_to(text_data=json.dumps({"type": "echo.message", "data": n}))
    for _ in range(int(settings.WS_RATE_BURST)):
        assert (await first.receive_json_from(timeout=5))["type"] == "echo.message"

    # Then the second finds the budget spent (and stays open)...
    reply = await request(second, "echo.message", "me too", request_id="second")
    assert reply["type"] == "error", reply
    assert reply["data"]["code"] == "rate_limited"
    # ...while another user's budget is untouched.
    assert await answers_echo(other)


def test_closing_every_socket_does_not_buy_a_fresh_budget(settings):
    clock = type("Clock", (), {"now": 0.0, "__call__": lambda self: self.now})()
    buckets = UserBuckets(clock=clock)
    first = buckets.hold(7)
    assert buckets.hold(7) is first  # a second socket shares it
    buckets.release(7)
    buckets.release(7)

    # Reopened before the bucket could have refilled: the same, spent bucket.
    clock.now += settings.WS_RATE_BURST / settings.WS_RATE_PER_S / 2
    assert buckets.hold(7) is first
    buckets.release(7)

    # Long enough closed, it is forgotten: a new one is as full as the old would be.
    clock.now += settings.WS_RATE_BURST / settings.WS_RATE_PER_S
    assert buckets.hold(7) is not first
    assert buckets.hold(8) is not buckets.hold(9)


# --- refused before a database thread -----------------------------------------------


@pytest.fixture
def no_database_thread(monkeypatch):
    """A handler reaching the database thread fails the frame (`internal`)."""

    async def refuse(func, /, **kwargs):
        raise AssertionError(f"{getattr(func, '__name__', func)} took a database thread")

    monkeypatch.setattr(TaxiConsumer, "call", staticmethod(refuse))


@pytest.mark.parametrize(
    ("role", "type_", "data", "code"),
    [
        ("rider", "decline.trip", {"id": SOME_TRIP}, "offer_not_available"),
        ("rider", "accept.trip", {"id": SOME_TRIP}, "offer_not_available"),
        ("rider", "update.trip", {"id": SOME_TRIP, "status": "STARTED"}, "offer_not_available"),
        ("rider", "driver.online", {"lat": 1.0, "lng": 2.0}, "forbidden"),
        ("rider", "driver.offline", {}, "forbidden"),
        ("rider", "update.location", {"lat": 1.0, "lng": 2.0}, "forbidden"),
        ("driver", "create.trip", TRIP_REQUEST, "forbidden"),
    ],
)
async def test_what_the_group_settles_is_refused_without_the_database(
    ws_connect, make_user, no_database_thread, role, type_, data, code
):
    user = await database_sync_to_async(make_user)(role)
    ws = await open_socket(ws_connect, user)

    reply = await request(ws, type_, data)

    assert reply["type"] == "error", reply
    assert reply["data"]["code"] == code, reply
    assert await ws.receive_nothing(timeout=QUIET_S)
