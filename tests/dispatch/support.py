"""Helpers shared by the dispatch and worker tests: places, trips, frames, the broker."""

import asyncio
import base64
import json
import time
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from django.db import connections

from dispatch import keys, presence
from taxi.infra.redis import get_redis
from trips.models import Trip, User
from trips.services import trip_create

PICK_UP = (38.8977, -77.0365)
KM_PER_DEG_LAT = 111.19


def km_north(km: float, of: tuple[float, float] = PICK_UP) -> tuple[float, float]:
    """A place `km` kilometres due north of `of`."""
    return of[0] + km / KM_PER_DEG_LAT, of[1]


def put_online(driver: User, km: float) -> tuple[float, float]:
    """The driver is online and free, `km` north of the pick-up (Redis only)."""
    lat, lng = km_north(km)
    presence.set_online(driver.pk, lat=lat, lng=lng)
    return lat, lng


def request_trip(rider: User, at: tuple[float, float] = PICK_UP) -> Trip:
    return trip_create(
        rider=rider,
        pick_up_address="123 Main Street",
        pick_up_lat=at[0],
        pick_up_lng=at[1],
        drop_off_address="456 Piney Road",
        drop_off_lat=at[0] + 0.02,
        drop_off_lng=at[1] - 0.01,
    )


def available() -> set[int]:
    """Drivers in the geo index of those who may be offered a trip now."""
    return {int(m) for m in get_redis().zrange(keys.AVAILABLE, 0, -1)}


def driver_state(driver_id: int) -> dict[str, str]:
    """The driver's presence hash as stored in Redis."""
    return get_redis().hgetall(keys.driver(driver_id))


def dispatch_tasks_for(trip) -> int:
    return queued_tasks().count(("workers.dispatch_trip", [str(trip.pk)]))


def queued_tasks() -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in the broker's default queue."""
    queued = []
    for raw in get_redis().lrange("celery", 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        queued.append((message["headers"]["task"], args))
    return queued


async def next_frame(ws, type_: str, within: float = 10) -> dict:
    """The next frame of `type_` on the socket (frames of other types before
    it are passed over); fails with what did arrive if none comes in time."""
    deadline = time.monotonic() + within
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {type_} within {within}s; got {seen}")
        try:
            frame = await ws.receive_json_from(timeout=remaining)
        except TimeoutError:
            raise AssertionError(f"no {type_} within {within}s; got {seen}") from None
        if frame.get("type") == type_:
            return frame
        seen.append(frame.get("type"))


async def wait_until(check: Callable[[], bool], within: float = 10, what: str = "") -> None:
    """Poll a database condition (run off the loop) until it holds."""
    deadline = time.monotonic() + within
    probe = database_sync_to_async(check)
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def trip_status(trip_id) -> tuple[str, str | None]:
    trip = Trip.objects.get(pk=trip_id)
    return trip.status, trip.status_reason


@pytest.fixture
async def close_sync_thread_connections():
    """Sync code called from async tests runs in asgiref's one shared thread;
    its database connection is closed after the test, so none is left open
    when the test database is dropped (PostgreSQL refuses while one is)."""
    yield
    await database_sync_to_async(connections.close_all)()
