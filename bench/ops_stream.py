"""The staff console's stream under load: a staff socket on `/ops/stream/`
listening while the dispatch step runs, and the `ops` step (a city whose
every driver moves every second), counting what it receives.

The stream sends a snapshot on connect and then one delta per tick
(OPS_TICK_S), whatever the number of drivers; this measures how many bytes a
second that is for a browser when thousands of drivers are online and trips
come and go, and how big the snapshot is.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import random
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

from bench.stack import cpu_seconds

STAFF_USERNAME = "bench-staff@example.com"
# The largest snapshot we expect, with room: 5,000 drivers are ~200 KB.
MAX_FRAME_BYTES = 1 << 24


def make_staff(root: Path, env: dict[str, str], password: str) -> None:
    subprocess.run(  # noqa: S603 - this interpreter, the project's own command
        [sys.executable, "manage.py", "staff_user", STAFF_USERNAME],
        cwd=root, env={**env, "STAFF_PASSWORD": password}, check=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def session_cookie(base_url: str, password: str) -> str:
    """Log in through the API (which also starts a session); the cookie a browser keeps."""
    netloc = urlsplit(base_url).netloc
    connection = http.client.HTTPConnection(netloc, timeout=10)
    try:
        body = json.dumps({"username": STAFF_USERNAME, "password": password})
        connection.request(
            "POST", "/api/log_in/", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"staff log-in refused: {response.status}")
        for header, value in response.getheaders():
            if header.lower() == "set-cookie" and value.startswith("sessionid="):
                return value.split(";", 1)[0]
    finally:
        connection.close()
    raise RuntimeError("the log-in started no session")


@dataclass
class Listener:
    """One staff socket; counts bytes and frames from its opening."""

    base_url: str
    cookie: str
    snapshot_bytes: int = 0
    snapshot_frames: int = 0
    snapshot_drivers: int = 0
    # (arrival, bytes) of every frame after the snapshot
    frames: list[tuple[float, int]] = field(default_factory=list)
    _task: asyncio.Task | None = None
    _ws: object = None

    async def __aenter__(self) -> Listener:
        url = "ws://" + urlsplit(self.base_url).netloc + "/ops/stream/"
        self._ws = await connect(
            url, additional_headers={"Cookie": self.cookie}, max_size=MAX_FRAME_BYTES
        )
        first = await self._ws.recv()
        head = json.loads(first)
        if head["type"] != "ops.snapshot":
            raise RuntimeError(f"the stream began with {head['type']}, not a snapshot")
        frames = [first] + [await self._ws.recv() for _ in range(head["data"].get("parts", 0))]
        self.snapshot_bytes = sum(len(frame.encode()) for frame in frames)
        self.snapshot_frames = len(frames)
        self.snapshot_drivers = sum(
            len(json.loads(frame)["data"].get("drivers", {}).get("set", [])) for frame in frames
        )
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self._ws:
            payload = raw.encode() if isinstance(raw, str) else raw
            self.frames.append((time.monotonic(), len(payload)))

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._ws.close()

    def since(self, began: float) -> dict:
        """Frames received from `began` (time.monotonic()) to now; bytes are
        frame payloads (JSON), without the few bytes of WebSocket framing."""
        now = time.monotonic()
        sizes = [size for at, size in self.frames if at >= began]
        seconds = max(now - began, 1e-9)
        return {
            "seconds": round(seconds, 1),
            "snapshot_bytes": self.snapshot_bytes,
            "snapshot_frames": self.snapshot_frames,
            "snapshot_drivers": self.snapshot_drivers,
            "frames": len(sizes),
            "frames_per_s": round(len(sizes) / seconds, 2),
            "bytes_per_s": round(sum(sizes) / seconds),
            "largest_frame_bytes": max(sizes, default=0),
        }


def new_password() -> str:
    return secrets.token_urlsafe(12)


async def measure_moving_city(
    redis_url: str,
    base_url: str,
    cookie: str,
    driver_ids: list[int],
    *,
    seconds: float,
    web_pid: int,
    seed: int,
    say,
) -> dict:
    """Every driver online and moving (~10 m) once a second, while a staff
    socket listens: the stream's worst steady case, every position new on
    every tick. Positions go straight into Redis presence, the keys and
    fields a driver's ping writes (dispatch/presence.py), so the web
    process's CPU is the ticker's and the stream's alone, not ingest's."""
    import redis.asyncio

    from dispatch import keys

    rng = random.Random(f"{seed}/ops")
    points = {i: [rng.uniform(38.85, 38.95), rng.uniform(-77.10, -76.98)] for i in driver_ids}
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)

    async def write(first: bool) -> None:
        now = f"{time.time():.3f}"
        async with client.pipeline(transaction=False) as pipe:
            for driver_id, point in points.items():
                fields = {"lat": repr(point[0]), "lng": repr(point[1]), "seen": now}
                if first:
                    fields.update(online="1", state=keys.STATE_FREE)
                pipe.hset(keys.driver(driver_id), mapping=fields)
                pipe.zadd(keys.LAST_SEEN, {str(driver_id): now})
            await pipe.execute()

    try:
        await write(first=True)
        # A ticker still running for an earlier listener would greet this one
        # with the city it read before these drivers came: let it stop first,
        # so the snapshot measured is of this city.
        await asyncio.sleep(1.5)
        async with Listener(base_url, cookie) as staff:
            cpu_before, began = cpu_seconds(web_pid), time.monotonic()
            while time.monotonic() - began < seconds:
                step = time.monotonic()
                for point in points.values():
                    point[0] += rng.uniform(-1e-4, 1e-4)
                    point[1] += rng.uniform(-1e-4, 1e-4)
                await write(first=False)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - step)))
            result = staff.since(began)
            result["drivers_moving"] = len(points)
            result["web_cpu_percent"] = round(
                100 * (cpu_seconds(web_pid) - cpu_before) / result["seconds"], 1
            )
    finally:
        async with client.pipeline(transaction=False) as pipe:
            for driver_id in points:
                pipe.delete(keys.driver(driver_id))
                pipe.zrem(keys.LAST_SEEN, str(driver_id))
            await pipe.execute()
        await client.aclose()
    say(
        f"ops: {len(points)} drivers moving: the staff stream sent {result['bytes_per_s']} "
        f"bytes/s after a {result['snapshot_bytes']}-byte snapshot; web CPU "
        f"{result['web_cpu_percent']} %"
    )
    return result
