"""Location ingest: `update.location` frames per second from drivers on
trips, and the delay until the rider's socket shows each as `driver.location`.

Setup goes through the public protocol: each driver goes online, a rider
requests a trip at that driver's position, the offered driver accepts. Then
every driver on a trip sends positions on a fixed schedule (a random phase
each, so the load is smooth), one step per target rate. Each frame's position
is unique, so the rider-side frame is matched to the exact driver frame; the
latency is measured on one clock (both ends live in this process).

The server forwards at most one position per driver every
FORWARD_MIN_INTERVAL_S (dispatch/keys.py: 0.25 s), so per-driver rates stay
below 4 a second and the rate is raised with more drivers instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

from bench.load import close_sockets, open_sockets, summary_ms
from bench.stack import cpu_seconds
from sim.client import Api, Session, SimError, Socket, is_error
from sim.geo import BBox, Point

BBOX = BBox(38.85, -77.10, 38.95, -76.98)
PAIR_CONCURRENCY = 16
OFFER_WAIT_S = 10.0
STEP = 1e-6  # degrees added per frame, to make each position unique
# A step "holds" when riders got this share of the positions within the step.
HOLDS_DELIVERED = 0.99
DRAIN_MAX_S = 30.0
WARM_UP_S = 5.0


@dataclass
class Pairs:
    """Drivers on trips, their riders, and what is in flight between them."""

    drivers: list[Socket] = field(default_factory=list)
    riders: list[Socket] = field(default_factory=list)
    positions: list[Point] = field(default_factory=list)
    offers: dict[str, asyncio.Future] = field(default_factory=dict)
    trip_of_driver: dict[int, str] = field(default_factory=dict)
    rider_of_trip: dict[str, int] = field(default_factory=dict)
    sent: dict[tuple, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    received: int = 0

    def driver_handler(self, index: int):
        def on_frame(frame: dict, arrived: float) -> None:
            if frame.get("type") == "trip.offer":
                trip = (frame.get("data") or {}).get("trip") or {}
                future = self.offers.pop(trip.get("pick_up_address"), None)
                if future is not None and not future.done():
                    future.set_result((index, trip.get("id")))

        return on_frame

    def rider_handler(self, _index: int):
        def on_frame(frame: dict, arrived: float) -> None:
            if frame.get("type") != "driver.location":
                return
            data = frame.get("data") or {}
            key = (data.get("trip_id"), round(data.get("lat", 0), 6), round(data.get("lng", 0), 6))
            sent = self.sent.pop(key, None)
            if sent is not None:
                self.received += 1
                self.latencies.append(arrived - sent)

        return on_frame


async def _pair(pairs: Pairs, rider_index: int, driver_index: int) -> None:
    rider = pairs.riders[rider_index]
    point = pairs.positions[driver_index]
    address = f"ingest pair {driver_index}"
    future = asyncio.get_running_loop().create_future()
    pairs.offers[address] = future
    body = {
        "pick_up_address": address,
        "pick_up_lat": point.lat,
        "pick_up_lng": point.lng,
        "drop_off_address": "far away",
        "drop_off_lat": BBOX.north,
        "drop_off_lng": BBOX.east,
    }
    reply = await rider.request("create.trip", body)
    if is_error(reply):
        raise SimError(f"ingest: create.trip refused: {reply}")
    offered_to, trip_id = await asyncio.wait_for(future, OFFER_WAIT_S)
    reply = await pairs.drivers[offered_to].request("accept.trip", {"id": trip_id})
    if is_error(reply):
        raise SimError(f"ingest: accept refused: {reply}")
    pairs.trip_of_driver[offered_to] = trip_id
    pairs.rider_of_trip[trip_id] = rider_index


async def setup(apis: list[Api], drivers: list[Session], riders: list[Session], seed: int) -> Pairs:
    pairs = Pairs()
    rng = random.Random(f"{seed}/ingest")
    pairs.positions = [BBOX.point_at(rng.random(), rng.random()) for _ in drivers]
    # With several web processes, each rider sits on another process than
    # the driver it is paired with: every position crosses processes.
    pairs.drivers = await open_sockets(apis, drivers, pairs.driver_handler)
    pairs.riders = await open_sockets(apis, riders, pairs.rider_handler, offset=1)
    gate = asyncio.Semaphore(PAIR_CONCURRENCY)

    async def online(socket: Socket, point: Point) -> None:
        async with gate:
            reply = await socket.request("driver.online", {"lat": point.lat, "lng": point.lng})
        if is_error(reply):
            raise SimError(f"ingest: driver.online refused: {reply}")

    await asyncio.gather(
        *(online(s, p) for s, p in zip(pairs.drivers, pairs.positions, strict=True))
    )

    async def pair(i: int) -> None:
        async with gate:
            await _pair(pairs, i, i)

    await asyncio.gather(*(pair(i) for i in range(len(riders))))
    return pairs


async def _stream(
    pairs: Pairs, driver: int, per_driver: float, until: float, lateness: list
) -> int:
    socket, trip_id = pairs.drivers[driver], pairs.trip_of_driver[driver]
    base = pairs.positions[driver]
    interval = 1.0 / per_driver
    due = time.monotonic() + random.random() * interval
    seq = 0
    while due < until:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lateness.append(-delay)
        seq += 1
        lat, lng = round(base.lat + seq * STEP, 6), round(base.lng + seq * STEP, 6)
        pairs.sent[(trip_id, lat, lng)] = time.monotonic()
        await socket.send("update.location", {"lat": lat, "lng": lng, "heading": 90.0})
        due += interval
    return seq


async def run_step(pairs: Pairs, *, per_driver: float, seconds: float, web_pids: list[int]) -> dict:
    pairs.sent.clear()
    pairs.latencies, pairs.received = [], 0
    lateness: list[float] = []
    cpu_before, began = sum(map(cpu_seconds, web_pids)), time.monotonic()
    until = began + seconds
    counts = await asyncio.gather(
        *(_stream(pairs, d, per_driver, until, lateness) for d in pairs.trip_of_driver)
    )
    elapsed = time.monotonic() - began
    cpu = sum(map(cpu_seconds, web_pids)) - cpu_before
    await asyncio.sleep(1.0)  # the last frames' way to the riders
    sent = sum(counts)
    late = sorted(lateness)
    third = len(pairs.latencies) // 3
    return {
        "drivers_on_trips": len(pairs.trip_of_driver),
        "per_driver_hz": per_driver,
        "target_frames_per_s": round(per_driver * len(pairs.trip_of_driver)),
        "seconds": round(elapsed, 2),
        "frames_sent": sent,
        "frames_per_s": round(sent / elapsed, 1),
        "delivered": pairs.received,
        "delivered_ratio": round(pairs.received / sent, 4) if sent else None,
        "latency_ms": summary_ms(pairs.latencies),
        "latency_ms_last_third": summary_ms(pairs.latencies[-third:] if third else []),
        "web_processes": len(web_pids),
        "web_cpu_percent": round(100.0 * cpu / elapsed, 1),
        "generator_late_sends": len(late),
        "generator_lateness_p99_ms": round(late[int(len(late) * 0.99)] * 1000, 1) if late else 0.0,
    }


async def _drain(pairs: Pairs) -> None:
    """Wait until positions stop arriving, so one step's backlog does not
    count against the next (bounded)."""
    deadline = time.monotonic() + DRAIN_MAX_S
    last = -1
    while pairs.received != last and time.monotonic() < deadline:
        last = pairs.received
        await asyncio.sleep(1.0)


async def teardown(pairs: Pairs) -> None:
    gate = asyncio.Semaphore(PAIR_CONCURRENCY * 4)

    async def cancel(rider: Socket, trip_id: str) -> None:
        async with gate:
            with contextlib.suppress(SimError, TimeoutError):
                await rider.request("cancel.trip", {"id": trip_id})

    await asyncio.gather(
        *(cancel(pairs.riders[rider], trip) for trip, rider in pairs.rider_of_trip.items())
    )
    await close_sockets(pairs.drivers + pairs.riders)


async def measure(
    apis: list[Api],
    drivers: list[Session],
    riders: list[Session],
    *,
    rates: list[float],
    seconds: float,
    web_pids: list[int],
    seed: int,
    say,
) -> list[dict]:
    count = min(len(drivers), len(riders))
    began = time.monotonic()
    pairs = await setup(apis, drivers[:count], riders[:count], seed)
    say(f"ingest: {len(pairs.trip_of_driver)} drivers on trips ({time.monotonic() - began:.1f}s)")
    results = []
    try:
        # Steady state only: a few seconds at the first rate, not recorded.
        await run_step(pairs, per_driver=rates[0] / count, seconds=WARM_UP_S, web_pids=web_pids)
        await _drain(pairs)
        for total in rates:
            per_driver = total / len(pairs.trip_of_driver)
            result = await run_step(
                pairs, per_driver=per_driver, seconds=seconds, web_pids=web_pids
            )
            lat = result["latency_ms"]
            say(
                f"ingest: {result['frames_per_s']} frames/s sent, {result['delivered_ratio']} "
                f"delivered, p50 {lat['p50']} ms, p99 {lat['p99']} ms, web CPU "
                f"{result['web_cpu_percent']} %"
            )
            results.append(result)
            if (result["delivered_ratio"] or 0) < HOLDS_DELIVERED:
                say("ingest: the server fell behind; higher rates are not tried")
                break
            await _drain(pairs)
    finally:
        await teardown(pairs)
    return results
