"""Dispatch latency: a rider's request to `trip.offer` on the nearest driver's socket.

A fleet of drivers, every one with its own socket, goes online (driver.online)
at seeded random points of a city box. Each trip's pick-up is an idle
driver's exact position, so that driver is the nearest; the request goes out
as WS `create.trip` or REST `POST /api/trip/` (alternately), and the clock
stops when the offer arrives on any driver's socket (the offer is matched by
the trip's unique pick-up address, so it may arrive before the create reply).
The rider then cancels, which revokes the offer and returns the driver to
the pool. Trips start at a fixed rate with bounded concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bench import ops_stream
from bench.load import CONNECT_CONCURRENCY, close_sockets, open_sockets, summary_ms
from bench.stack import rss_bytes
from sim.client import Api, Session, SimError, Socket, is_error
from sim.geo import BBox, Point

logger = logging.getLogger(__name__)

BBOX = BBox(38.85, -77.10, 38.95, -76.98)  # about 11 km x 10 km
OFFER_WAIT_S = 5.0
STAGES = ("request_to_trip_row", "trip_row_to_offer_reserved", "offer_reserved_to_socket")


@dataclass
class Fleet:
    api: Api  # REST requests go to the first web process
    apis: list[Api]  # sockets spread over every web process
    sessions: list[Session]
    seed: int
    sockets: list[Socket] = field(default_factory=list)
    positions: list[Point] = field(default_factory=list)
    idle: set[int] = field(default_factory=set)
    waiting: dict[str, asyncio.Future] = field(default_factory=dict)
    offers_unmatched: int = 0
    freed: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self, index: int) -> None:
        self.idle.add(index)
        self.freed.set()

    async def take_idle(self, rng: random.Random) -> int:
        while not self.idle:
            self.freed.clear()
            await self.freed.wait()
        driver = rng.choice(sorted(self.idle))
        self.idle.discard(driver)
        return driver

    def handler(self, index: int):
        def on_frame(frame: dict, arrived: float) -> None:
            type_, data = frame.get("type"), frame.get("data") or {}
            if type_ == "trip.offer":
                address = (data.get("trip") or {}).get("pick_up_address")
                future = self.waiting.pop(address, None)
                if future is not None and not future.done():
                    future.set_result((index, arrived, data))
                else:
                    self.offers_unmatched += 1
            elif type_ == "trip.offer.revoked":
                self.release(index)

        return on_frame

    async def grow(self, size: int, *, concurrency: int = CONNECT_CONCURRENCY) -> None:
        """Connect and put online drivers until `size` are online."""
        start = len(self.sockets)
        if size <= start:
            return
        rng = random.Random(f"{self.seed}/fleet/{start}")
        new = self.sessions[start:size]
        if len(new) < size - start:
            raise SimError(f"only {len(self.sessions)} driver accounts were seeded")
        positions = [BBOX.point_at(rng.random(), rng.random()) for _ in new]
        sockets = await open_sockets(
            self.apis,
            new,
            lambda i: self.handler(start + i),
            concurrency=concurrency,
            offset=start,
        )
        semaphore = asyncio.Semaphore(concurrency)

        async def online(socket: Socket, point: Point) -> None:
            async with semaphore:
                reply = await socket.request("driver.online", {"lat": point.lat, "lng": point.lng})
            if is_error(reply):
                raise SimError(f"driver.online refused: {reply}")

        await asyncio.gather(*(online(s, p) for s, p in zip(sockets, positions, strict=True)))
        self.sockets += sockets
        self.positions += positions
        self.idle.update(range(start, size))

    async def close(self) -> None:
        await close_sockets(self.sockets)


@dataclass
class TripOutcome:
    via: str
    latency_s: float | None
    nearest: bool
    # Where the time went, from the server's own timestamps (same machine, same
    # wall clock): request -> trip row written (web), -> offer reserved (commit,
    # Celery queue, worker, search), -> offer on the driver's socket (insert,
    # commit, push through the channel layer and the web process).
    stages_s: tuple[float, float, float] | None = None


async def run_trips(
    fleet: Fleet,
    riders: list[tuple[Session, Socket]],
    *,
    trips: int,
    rate: float,
    concurrency: int,
    label: str,
) -> list[TripOutcome]:
    rng = random.Random(f"{fleet.seed}/trips/{label}")
    pool: asyncio.Queue = asyncio.Queue()
    for rider in riders:
        pool.put_nowait(rider)
    gate = asyncio.Semaphore(concurrency)
    outcomes: list[TripOutcome] = []

    async def one(k: int) -> None:
        async with gate:
            session, socket = await pool.get()
            try:
                outcomes.append(await _one_trip(fleet, rng, session, socket, k, label))
            finally:
                pool.put_nowait((session, socket))

    tasks = []
    start = time.monotonic()
    for k in range(trips):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    return outcomes


async def _one_trip(
    fleet: Fleet, rng: random.Random, session: Session, socket: Socket, k: int, label: str
) -> TripOutcome:
    driver = await fleet.take_idle(rng)
    point = fleet.positions[driver]
    address = f"bench {label} trip {k}"
    body = {
        "pick_up_address": address,
        "pick_up_lat": point.lat,
        "pick_up_lng": point.lng,
        "drop_off_address": "somewhere",
        "drop_off_lat": BBOX.south,
        "drop_off_lng": BBOX.west,
    }
    future = asyncio.get_running_loop().create_future()
    fleet.waiting[address] = future
    via = "ws" if k % 2 == 0 else "rest"
    started, started_wall = time.monotonic(), time.time()
    trip = None
    if via == "ws":
        reply = await socket.request("create.trip", body)
        if not is_error(reply):
            trip = reply["data"]
    else:
        status, data = await fleet.api.call("POST", "/api/trip/", token=session.access, body=body)
        if status == 201:
            trip = data
    trip_id = trip["id"] if trip else None
    if trip_id is None:
        fleet.waiting.pop(address, None)
        fleet.release(driver)
        raise SimError(f"trip create failed ({via})")
    offered_to, latency, stages = None, None, None
    with contextlib.suppress(TimeoutError):
        offered_to, arrived, offer = await asyncio.wait_for(future, OFFER_WAIT_S)
        latency = arrived - started
        stages = _stages(started_wall, started_wall + latency, trip, offer)
    fleet.waiting.pop(address, None)
    reply = await socket.request("cancel.trip", {"id": trip_id})
    if is_error(reply):
        logger.warning("bench.cancel_failed", extra={"trip_id": trip_id})
    if offered_to != driver:
        fleet.release(driver)  # the revocation frees the one actually offered
    return TripOutcome(via=via, latency_s=latency, nearest=offered_to == driver, stages_s=stages)


def _stages(sent: float, arrived: float, trip: dict, offer: dict) -> tuple[float, float, float]:
    created = datetime.fromisoformat(trip["created"].replace("Z", "+00:00")).timestamp()
    expires = datetime.fromisoformat(offer["expires_at"].replace("Z", "+00:00")).timestamp()
    reserved = expires - float(offer["timeout_s"])
    return created - sent, reserved - created, arrived - reserved


def summarise(size: int, outcomes: list[TripOutcome], unmatched: int) -> dict:
    def latencies(via: str | None = None) -> list[float]:
        return [
            o.latency_s
            for o in outcomes
            if o.latency_s is not None and (via is None or o.via == via)
        ]

    return {
        "drivers_online": size,
        "trips": len(outcomes),
        "offered": sum(o.latency_s is not None for o in outcomes),
        "no_offer_within_s": {
            "seconds": OFFER_WAIT_S,
            "count": sum(o.latency_s is None for o in outcomes),
        },
        "nearest_driver_offered": sum(o.nearest for o in outcomes),
        "stray_offers": unmatched,
        "latency_ms": summary_ms(latencies()),
        "latency_ms_ws": summary_ms(latencies("ws")),
        "latency_ms_rest": summary_ms(latencies("rest")),
        "stages_ms": {
            name: summary_ms([o.stages_s[i] for o in outcomes if o.stages_s])
            for i, name in enumerate(STAGES)
        },
    }


async def measure(
    apis: list[Api],
    drivers: list[Session],
    riders: list[Session],
    *,
    sizes: list[int],
    trips: int,
    rate: float,
    concurrency: int,
    seed: int,
    say,
    web_pids: list[int],
    staff_listener: Callable[[], ops_stream.Listener] | None = None,
) -> list[dict]:
    """`staff_listener`: a staff socket on /ops/stream/ listens during each
    size's trips (bench/ops_stream.py)."""
    fleet = Fleet(api=apis[0], apis=apis, sessions=drivers, seed=seed)
    rider_sockets = await open_sockets(apis, riders, lambda i: lambda frame, arrived: None)
    pool = list(zip(riders, rider_sockets, strict=True))
    results = []
    try:
        warmed = False
        for size in sizes:
            began = time.monotonic()
            await fleet.grow(size)
            say(f"dispatch: {size} drivers online ({time.monotonic() - began:.1f}s to connect)")
            if not warmed:
                await run_trips(
                    fleet, pool, trips=20, rate=rate, concurrency=concurrency, label="warm"
                )
                warmed = True
            await asyncio.sleep(1.0)
            fleet.offers_unmatched = 0
            async with contextlib.AsyncExitStack() as listening:
                staff = None
                if staff_listener is not None:
                    staff = await listening.enter_async_context(staff_listener())
                began = time.monotonic()
                outcomes = await run_trips(
                    fleet, pool, trips=trips, rate=rate, concurrency=concurrency, label=str(size)
                )
                await asyncio.sleep(0.5)  # late (stray) offers
                stream = staff.since(began) if staff else None
            result = summarise(size, outcomes, fleet.offers_unmatched)
            if stream is not None:
                result["staff_stream"] = stream
                say(
                    f"dispatch: {size} drivers: the staff stream sent {stream['bytes_per_s']} "
                    f"bytes/s ({stream['frames_per_s']} frames/s) after a "
                    f"{stream['snapshot_bytes']}-byte snapshot"
                )
            result["web_rss_mib"] = [round(rss_bytes(pid) / 1024 / 1024, 1) for pid in web_pids]
            lat = result["latency_ms"]
            say(
                f"dispatch: {size} drivers: p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
                f"p99 {lat['p99']} ms over {lat['count']} trips"
            )
            results.append(result)
    finally:
        await fleet.close()
        await close_sockets(rider_sockets)
    return results
