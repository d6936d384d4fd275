"""The socket's limits on the real server: the Procfile's `web` process
(daphne through taxi.server), a real WebSocket client (`websockets`), real
TCP. The in-process tests (tests/trips/test_ws_limits.py) prove the
consumer's own checks; these prove what a client on the network sees, which
is where a server that drops the connection instead of closing it (1006
instead of 1009) would show.
"""

import asyncio
import json
import os
import struct
import time

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings

from tests.web import web_process
from trips.auth import tokens_for
from trips.frame_limits import FLOOD_STRIKES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

LIMIT = settings.WS_MAX_FRAME_BYTES
TOO_BIG, POLICY, NOT_UTF8 = 1009, 1008, 1007


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, tmp_path_factory):
    """One web process for the module; each test brings its own users."""
    log = tmp_path_factory.mktemp("web") / "web.log"
    with django_db_blocker.unblock(), web_process(log) as web:
        yield web.base.replace("http://", "ws://")


@pytest.fixture
async def url(web, make_user):
    rider = await sync_to_async(make_user)("rider")
    token = (await sync_to_async(tokens_for)(rider))["access"]
    return f"{web}/taxi/?token={token}"


def echo_of_size(size: int) -> str:
    """A valid echo frame exactly `size` bytes long."""
    head, tail = '{"type": "echo.message", "data": "', '"}'
    return head + "a" * (size - len(head) - len(tail)) + tail


async def close_code(ws) -> int:
    """Read until the server closes; the code it closed with (1006 when it
    dropped the connection without a close frame)."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else 1006


async def echoes(url: str) -> bool:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "echo.message", "data": "hi", "request_id": 1}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
    return reply == {"type": "echo.message", "data": "hi", "request_id": 1}


async def echoes_soon(url: str, within_s: float = 10) -> bool:
    """`echoes`, on one socket, retrying while the answer is `rate_limited`."""
    async with websockets.connect(url, max_size=None) as ws:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            await ws.send(json.dumps({"type": "echo.message", "data": "hi", "request_id": 1}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            if reply == {"type": "echo.message", "data": "hi", "request_id": 1}:
                return True
            assert reply["data"]["code"] == "rate_limited", reply
            await asyncio.sleep(0.1)
    return False


async def test_a_frame_of_exactly_the_limit_is_answered(url):
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(echo_of_size(LIMIT))

        reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))

    assert reply["type"] == "echo.message"


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * 1024 * 1024], ids=["64KiB+1", "2MiB"])
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_an_oversized_frame_closes_1009_and_the_next_socket_works(url, size, kind):
    async with websockets.connect(url, max_size=None) as ws:
        frame = echo_of_size(size)
        await ws.send(frame if kind == "text" else frame.encode())

        assert await close_code(ws) == TOO_BIG

    assert await echoes(url)


async def test_a_text_frame_that_is_not_utf8_closes_1007(url):
    async with websockets.connect(url, max_size=None) as ws:
        # A masked text frame written by hand: clients refuse to send one.
        payload, mask = b'{"type": "\xff"}', os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        ws.transport.write(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)

        assert await close_code(ws) == NOT_UTF8

    assert await echoes(url)


async def test_a_flood_is_rate_limited_then_closed_1008_and_the_next_socket_works(url):
    async with websockets.connect(url, max_size=None) as ws:
        sent = int(settings.WS_RATE_BURST) + 20 * FLOOD_STRIKES
        for n in range(sent):
            await ws.send(json.dumps({"type": "echo.message", "data": n, "request_id": n}))

        replies = []
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=10)))

    assert closed.value.rcvd is not None and closed.value.rcvd.code == POLICY
    limited = [r for r in replies if r["type"] == "error"]
    assert len(limited) >= FLOOD_STRIKES
    assert {r["data"]["code"] for r in limited} == {"rate_limited"}
    # Told to slow down before being closed, and answered until then.
    assert replies[0] == {"type": "echo.message", "data": 0, "request_id": 0}
    assert len(replies) < sent
    # The user's frame budget is shared by their sockets and outlives this
    # one: a new socket is answered once it has refilled a little.
    assert await echoes_soon(url)


async def test_a_reply_that_would_pass_the_limit_is_an_error_and_the_socket_stays(url):
    async with websockets.connect(url, max_size=None) as ws:
        # Under the limit as sent; each "é" comes back as a six-byte escape,
        # so the echo would be ~180 KiB, which daphne fails the socket over (1011).
        frame = {"type": "echo.message", "data": "é" * 30_000, "request_id": 7}
        await ws.send(json.dumps(frame, ensure_ascii=False))

        text = await asyncio.wait_for(ws.recv(), timeout=10)

        assert len(text.encode()) <= LIMIT
        reply = json.loads(text)
        assert reply["type"] == "error"
        assert (reply["data"]["code"], reply["request_id"]) == ("too_big", 7)
        await ws.send(json.dumps({"type": "echo.message", "data": "hi", "request_id": 1}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=10))["data"] == "hi"


async def test_an_error_quoting_a_huge_value_is_cut_short_and_the_socket_stays(url):
    async with websockets.connect(url, max_size=None) as ws:
        # The status's validation message quotes it whole ("..." is not a valid choice).
        frame = {"type": "update.trip", "data": {"id": "x", "status": "é" * 30_000}}
        await ws.send(json.dumps(frame, ensure_ascii=False))

        text = await asyncio.wait_for(ws.recv(), timeout=10)

        assert len(text.encode()) <= LIMIT
        reply = json.loads(text)
        assert reply["data"]["code"] == "invalid"
        assert set(reply["data"]["errors"]) == {"id", "status"}
        assert await echoes(url)
        await ws.send(json.dumps({"type": "echo.message", "data": "hi", "request_id": 1}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=10))["data"] == "hi"
