"""Quotes: `POST /api/quotes/` through the web process with a fleet online.

The dispatch step's fleet (one socket per driver, `driver.online` at seeded
random points of the same city box) goes online, and a share of it records
a vehicle that also serves `xl` (`PUT /api/driver/vehicle/`), so the pick-up
ETA of each product searches a mixed fleet. Riders then ask for quotes for
every product (the app's default: no `product` in the body) between seeded
random places of the box, 1-4 km apart.

Two passes. "serial": one request in flight, so a request's latency is what
quoting costs the web process, not a queue; it alternates each quote with a
`GET /api/products/` (an authenticated read of the catalogue: no route, no
surge, no search, no write), the floor any REST call pays here, so that both
meet the same machine and their ratio means something on a busy one.
"concurrent": `concurrency` quotes in flight, for requests per second.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.dispatch_latency import BBOX, Fleet
from bench.load import summary_ms
from sim.client import Api, Session, SimError
from sim.geo import Point, offset

WARM_UP = 20
XL_SHARE = 0.2
XL_VEHICLE = {"make": "Bench", "model": "Van", "color": "grey", "capacity": 6}
TRIP_KM = (1.0, 4.0)


@dataclass
class Pass:
    label: str
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    surges: list[float] = field(default_factory=list)
    etas_null: int = 0
    etas: int = 0

    def fail(self, what: str) -> None:
        self.failures[what] = self.failures.get(what, 0) + 1

    def summary(self) -> dict:
        done = len(self.latencies_s)
        return {
            "kind": self.label,
            "concurrency": self.concurrency,
            "requests": done + sum(self.failures.values()),
            "failed": dict(sorted(self.failures.items())),
            "latency_ms": summary_ms(self.latencies_s),
            "requests_per_s": round(done / self.seconds, 1) if self.seconds else None,
            "surge_max": max(self.surges) if self.surges else None,
            "pickup_eta_null_share": (round(self.etas_null / self.etas, 3) if self.etas else None),
        }


def _route(rng: random.Random) -> dict:
    pick_up = BBOX.point_at(rng.random(), rng.random())
    km = rng.uniform(*TRIP_KM)
    bearing = rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)
    norm = max(1e-9, (bearing[0] ** 2 + bearing[1] ** 2) ** 0.5)
    drop_off: Point = BBOX.clamp(offset(pick_up, km * bearing[0] / norm, km * bearing[1] / norm))
    return {
        "pick_up_lat": pick_up.lat,
        "pick_up_lng": pick_up.lng,
        "drop_off_lat": drop_off.lat,
        "drop_off_lng": drop_off.lng,
    }


async def _ask_quote(api: Api, session: Session, body: dict, run: Pass) -> None:
    began = time.monotonic()
    status, data = await api.call("POST", "/api/quotes/", token=session.access, body=body)
    took = time.monotonic() - began
    if status != 201 or not isinstance(data, dict) or not data.get("quotes"):
        run.fail(str(data.get("code", status)) if isinstance(data, dict) else str(status))
        return
    run.latencies_s.append(took)
    for quote in data["quotes"]:
        run.surges.append(float(quote["surge_multiplier"]))
        run.etas += 1
        run.etas_null += quote.get("pickup_eta_s") is None


async def _ask_products(api: Api, session: Session, body: dict, run: Pass) -> None:
    began = time.monotonic()
    status, data = await api.call("GET", "/api/products/", token=session.access)
    took = time.monotonic() - began
    if status != 200 or not isinstance(data, list):
        run.fail(str(status))
        return
    run.latencies_s.append(took)


async def _run_pass(
    api: Api,
    riders: Sequence[Session],
    asks: Sequence[tuple[Callable, Pass]],
    *,
    requests: int,
    concurrency: int,
    seed: int,
) -> None:
    """`requests` rounds; each round sends one request of every kind in
    `asks`, one after the other, with `concurrency` rounds in flight."""
    label = "/".join(run.label for _, run in asks)
    rng = random.Random(f"{seed}/quotes/{label}")
    queue: asyncio.Queue = asyncio.Queue()
    for k in range(requests):
        queue.put_nowait((riders[k % len(riders)], _route(rng)))

    async def worker() -> None:
        while not queue.empty():
            session, body = queue.get_nowait()
            for ask, run in asks:
                began = time.monotonic()
                await ask(api, session, body, run)
                run.seconds += time.monotonic() - began

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if len(asks) == 1:  # wall time: with several in flight, their times overlap
        asks[0][1].seconds = time.monotonic() - began


async def _record_vehicles(api: Api, drivers: Sequence[Session], seed: int) -> int:
    """A seeded share of the fleet drives an xl-capable car; the rest keep no
    vehicle on record (eligible for DEFAULT_PRODUCT only)."""
    rng = random.Random(f"{seed}/quotes/vehicles")
    chosen = [d for d in drivers if rng.random() < XL_SHARE]
    semaphore = asyncio.Semaphore(10)

    async def one(session: Session) -> None:
        body = {**XL_VEHICLE, "plate": f"B{session.user_id}", "products": ["standard", "xl"]}
        async with semaphore:
            status, data = await api.call(
                "PUT", "/api/driver/vehicle/", token=session.access, body=body
            )
        if status != 200:
            raise SimError(f"PUT /api/driver/vehicle/ answered {status}: {data}")

    await asyncio.gather(*(one(s) for s in chosen))
    return len(chosen)


async def measure(
    apis: list[Api],
    drivers: list[Session],
    riders: list[Session],
    *,
    size: int,
    requests: int,
    concurrency: int,
    seed: int,
    say,
) -> dict:
    api = apis[0]
    fleet = Fleet(api=api, apis=apis, sessions=drivers, seed=seed)
    try:
        began = time.monotonic()
        await fleet.grow(size)
        xl = await _record_vehicles(api, drivers[:size], seed)
        say(
            f"quotes: {size} drivers online, {xl} of them xl-capable "
            f"({time.monotonic() - began:.1f}s)"
        )
        warm = Pass("warm", 1)
        await _run_pass(api, riders, [(_ask_quote, warm), (_ask_products, warm)],
                        requests=WARM_UP, concurrency=1, seed=seed)  # fmt: skip
        await asyncio.sleep(0.5)
        serial, floor = Pass("serial", 1), Pass("products", 1)
        await _run_pass(api, riders, [(_ask_quote, serial), (_ask_products, floor)],
                        requests=requests, concurrency=1, seed=seed)  # fmt: skip
        concurrent = Pass("concurrent", concurrency)
        await _run_pass(api, riders, [(_ask_quote, concurrent)], requests=requests,
                        concurrency=concurrency, seed=seed)  # fmt: skip
    finally:
        await fleet.close()
    passes = [serial.summary(), concurrent.summary(), floor.summary()]
    s = passes[0]["latency_ms"]
    say(
        f"quotes: {size} drivers: serial p50 {s['p50']} ms, p95 {s['p95']} ms, "
        f"p99 {s['p99']} ms; {passes[1]['requests_per_s']} requests/s at "
        f"{concurrency} in flight"
    )
    ratio = None
    if s["p50"] and passes[2]["latency_ms"]["p50"]:
        ratio = round(s["p50"] / passes[2]["latency_ms"]["p50"], 2)
    return {
        "drivers_online": size,
        "xl_capable_drivers": xl,
        "passes": passes,
        "serial_p50_over_products_p50": ratio,
    }
