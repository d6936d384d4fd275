"""The `matching` step (`python -m bench --only matching`): `nearest` against
`batch` on the same seeded city, side by side, and the batch solver alone.

The city: the simulator (`sim/`), with the same seed under each policy, run
against a fresh stack of its own per policy (web, worker, beat and, for
`batch`, one matcher), so only the policy differs. Supply is about equal to
demand: drivers spend most of their time on trips, and every rider takes
the quote (none walks away from a surge), so both policies see the same
requests. The solver: the `batch` policy's `assign` on synthetic windows of
100, 500 and 1,000 requests, each with twice as many drivers around them,
timed per window.

The window's own cost: request -> `trip.offer` under `batch` with free
drivers everywhere, so no request waits for supply, only for its window.
It is the dispatch step's measurement (`bench/dispatch_latency.py`: a fleet
of driver sockets, each trip at an idle driver's spot, the clock stopped by
the offer on the socket), run against a stack with a matcher at each of
OFFER_WINDOWS_MS, beside what the matcher logged of its windows meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench import dispatch_latency
from bench.seed import seed_accounts
from bench.stack import Stack
from dispatch.matching import Candidate
from dispatch.policies import WaitingTrip
from dispatch.policies.batch import Batch
from sim.client import Api
from sim.geo import BBox
from sim.kpi import percentile
from sim.run import run
from sim.scenario import SimConfig

POLICIES = ("nearest", "batch")
# A dense district: about 5 km by 5 km.
CITY = BBox(38.88, -77.06, 38.925, -77.002)
FULL_CITY = SimConfig(
    drivers=40,
    riders=90,
    rate=1.6,
    duration_s=150.0,
    accept_prob=0.9,
    silent_prob=0.03,
    cancel_prob=0.0,
    bbox=CITY,
    seed=14,
    drain_s=20.0,
    # The city BENCHMARKS.md measured: every rider comes out, no driver gives
    # a trip up, nobody books ahead or rates.
    no_show_share=0.0,
    driver_cancel_share=0.0,
    scheduled_share=0.0,
    rating_share=0.0,
    # Every rider takes the quote, surged or not: riders who walk away from a
    # surge would make demand depend on the policy (surge follows the free
    # drivers each leaves), and cut it well below supply.
    surge_decline_share=0.0,
)
QUICK_CITY = replace(FULL_CITY, drivers=12, riders=30, rate=0.5, duration_s=30.0, drain_s=10.0)
# The policy at the settings' defaults (DISPATCH_BATCH_CANDIDATES,
# _MAX_PICKUP_KM, _FAIR_WINDOWS, DISPATCH_RADII_KM's first ring), given
# explicitly: this process runs without Django's settings.
K_NEAREST = 8
BATCH = Batch(k=K_NEAREST, ceiling_km=5.0, fair_windows=2, first_ring_km=2.0)
SOLVER_SIZES = (100, 500, 1000)
SOLVER_WINDOWS = 40
DRIVERS_PER_REQUEST = 2
# Free drivers per request in the frozen windows of `static_windows`.
STATIC_RATIOS = (1.0, 1.5, 3.0, 10.0)
# request -> trip.offer with free drivers: the windows, the fleet, the trips.
OFFER_WINDOWS_MS = (2000, 500)
OFFER_PLAN = {"drivers": 200, "riders": 50, "trips": 200, "rate": 10.0, "concurrency": 40}
QUICK_OFFER_PLAN = {"drivers": 40, "riders": 20, "trips": 30, "rate": 10.0, "concurrency": 15}


def solver_times(sizes=SOLVER_SIZES, *, windows: int = SOLVER_WINDOWS, seed: int = 1) -> list:
    """p50/p99 ms of one `batch` window per size (requests per window)."""
    policy = BATCH
    rows = []
    for size in sizes:
        rng = random.Random(f"{seed}/solver/{size}")  # noqa: S311 - a benchmark's city
        taken = []
        for _ in range(windows):
            table = _window(rng, size, size * DRIVERS_PER_REQUEST, K_NEAREST * 2)
            waiting = [
                WaitingTrip(trip_id=trip_id, lat=0.0, lng=0.0, exclude=frozenset())
                for trip_id in table
            ]
            began = time.perf_counter()
            made = list(policy.assign(waiting, lambda trip, t=table: iter(t[trip.trip_id])))
            taken.append((time.perf_counter() - began) * 1000)
            if len({a.candidate.driver_id for a in made}) != len(made):
                raise RuntimeError("the solver gave a driver two trips")
        taken.sort()
        rows.append(
            {
                "requests": size,
                "drivers": size * DRIVERS_PER_REQUEST,
                "windows": windows,
                "p50_ms": round(_quantile(taken, 0.50), 2),
                "p99_ms": round(_quantile(taken, 0.99), 2),
            }
        )
    return rows


def static_windows(
    ratios=STATIC_RATIOS, *, requests: int = 100, windows: int = 20, seed: int = 1
) -> list[dict]:
    """One window of `requests` requests frozen in time, with `ratio` times as
    many free drivers: mean pickup km of nearest-first (in arrival order, each
    the nearest driver still free among its candidates) against `batch`.
    Where idle drivers are plenty, nearest-first is already near the optimum."""
    policy = BATCH
    rows = []
    for ratio in ratios:
        rng = random.Random(f"{seed}/static/{ratio}")  # noqa: S311 - a benchmark's city
        greedy_km, batch_km, greedy_n, batch_n = 0.0, 0.0, 0, 0
        for _ in range(windows):
            table = _window(rng, requests, int(requests * ratio), K_NEAREST * 2)
            taken: set[int] = set()
            for candidates in table.values():
                free = next((c for c in candidates if c.driver_id not in taken), None)
                if free is not None:
                    taken.add(free.driver_id)
                    greedy_km += free.distance_km
                    greedy_n += 1
            waiting = [
                WaitingTrip(trip_id=trip_id, lat=0.0, lng=0.0, exclude=frozenset())
                for trip_id in table
            ]
            for made in policy.assign(waiting, lambda trip, t=table: iter(t[trip.trip_id])):
                batch_km += made.candidate.distance_km
                batch_n += 1
        rows.append(
            {
                "drivers_per_request": ratio,
                "nearest_mean_km": round(greedy_km / max(1, greedy_n), 3),
                "batch_mean_km": round(batch_km / max(1, batch_n), 3),
                "nearest_matched": greedy_n,
                "batch_matched": batch_n,
            }
        )
    return rows


def _window(
    rng: random.Random, requests: int, drivers: int, nearest: int
) -> dict[uuid.UUID, list[Candidate]]:
    """Requests and drivers spread over a 10 km square: each request's
    `nearest` drivers, nearest first (by a coarse grid, as the geo index
    would answer)."""
    side, cell = 10.0, 1.0
    spots = [(rng.uniform(0, side), rng.uniform(0, side)) for _ in range(drivers)]
    grid: dict[tuple[int, int], list[int]] = {}
    for n, (x, y) in enumerate(spots):
        grid.setdefault((int(x // cell), int(y // cell)), []).append(n)
    table = {}
    for _ in range(requests):
        x, y = rng.uniform(0, side), rng.uniform(0, side)
        cx, cy = int(x // cell), int(y // cell)
        near = []
        for reach in itertools.count(1):
            near = [
                n
                for i in range(cx - reach, cx + reach + 1)
                for j in range(cy - reach, cy + reach + 1)
                for n in grid.get((i, j), ())
            ]
            if len(near) >= nearest or reach > side / cell:
                break
        found = sorted((math.dist((x, y), spots[n]), n) for n in near)[:nearest]
        table[uuid.UUID(int=rng.getrandbits(128))] = [Candidate(n, km) for km, n in found]
    return table


def _quantile(ordered: list[float], q: float) -> float:
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def run_city(
    policy: str,
    config: SimConfig,
    *,
    work_dir: Path,
    env: dict[str, str],
    database_url: str | None,
    say: Callable[[str], None],
) -> dict:
    """The seeded city against a fresh stack under `policy`; the simulator's report."""
    stack = Stack(
        work_dir=work_dir,
        workers=1,
        worker_concurrency=2,
        matchers=1 if policy == "batch" else 0,
        database_url=database_url,
        env={**env, "DISPATCH_POLICY": policy, "SECRET_KEY": secrets.token_urlsafe(50)},
    )
    say(f"matching: {policy}: starting a stack under {work_dir.name}")
    with stack:
        city = replace(config, base_url=stack.web_urls[0])
        report = asyncio.run(run(city, json_path=work_dir / f"simulate-{policy}.json"))
    return report


def offer_latency(
    window_ms: int,
    plan: dict,
    *,
    work_dir: Path,
    env: dict[str, str],
    database_url: str | None,
    seed: int,
    say: Callable[[str], None],
) -> dict:
    """request -> trip.offer under `batch` at `window_ms`, with `plan`'s
    drivers all idle between trips: the dispatch step's figures for one
    fleet size, plus the matcher's windows (from its log) meanwhile."""
    stack = Stack(
        work_dir=work_dir,
        workers=1,
        worker_concurrency=2,
        matchers=1,
        database_url=database_url,
        env={
            **env,
            "DISPATCH_POLICY": "batch",
            "DISPATCH_BATCH_WINDOW_MS": str(window_ms),
            "SECRET_KEY": secrets.token_urlsafe(50),
        },
    )
    say(f"matching: batch at {window_ms} ms, {plan['drivers']} free drivers: starting a stack")
    with stack:
        accounts = seed_accounts(stack, plan["drivers"], plan["riders"])
        web = stack.children["web1"]

        async def trips() -> dict:
            api = Api(web.url, max_connections=200)
            try:
                [result] = await dispatch_latency.measure(
                    [api], accounts.drivers, accounts.riders, sizes=[plan["drivers"]],
                    trips=plan["trips"], rate=plan["rate"], concurrency=plan["concurrency"],
                    seed=seed, say=say, web_pids=[web.pid],
                )  # fmt: skip
            finally:
                await api.close()
            return result

        result = asyncio.run(trips())
        windows = matcher_windows(stack.children["matcher1"].log_path)
    return {"window_ms": window_ms, **result, "windows": windows}


def matcher_windows(log_path: Path) -> dict:
    """What the matcher logged of the windows that had trips: how many, trips
    per window, the whole window's time and the policy's part (`dispatch.
    window`), and each offer's time from its window's start to its
    reservation (`dispatch.offered`'s `dispatch_ms`), p50/p95 in ms."""
    trips, took, policy, to_offer = [], [], [], []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "dispatch.window" and record.get("waiting"):
            trips.append(float(record["waiting"]))
            took.append(float(record["took_ms"]))
            policy.append(float(record["policy_ms"]))
        elif record.get("event") == "dispatch.offered":
            to_offer.append(float(record["dispatch_ms"]))

    def p50_p95(values: list[float]) -> dict:
        return {
            name: None if (v := percentile(values, q)) is None else round(v, 1)
            for name, q in (("p50", 50), ("p95", 95))
        }

    return {
        "count": len(took),
        "trips": p50_p95(trips),
        "took_ms": p50_p95(took),
        "policy_ms": p50_p95(policy),
        "start_to_offer_ms": p50_p95(to_offer),
    }


def measure(
    *,
    quick: bool,
    work_dir: Path,
    env: dict[str, str],
    database_url: str | None,
    seed: int,
    say: Callable[[str], None],
) -> dict:
    config = replace(QUICK_CITY if quick else FULL_CITY, seed=seed + 13)
    work_dir.mkdir(parents=True, exist_ok=True)
    # First, while the database holds no trip the cities left waiting: a
    # fresh SQLite file per window, or the database given.
    offers = []
    for window_ms in OFFER_WINDOWS_MS[:1] if quick else OFFER_WINDOWS_MS:
        offers.append(offer_latency(
            window_ms, QUICK_OFFER_PLAN if quick else OFFER_PLAN,
            work_dir=work_dir / f"offer-{window_ms}", env=env, database_url=database_url,
            seed=seed, say=say,
        ))  # fmt: skip
    # One database for both runs: the simulator signs its accounts up in the
    # first and only logs them in in the second (password hashing is most of
    # a sign-up, and the city's clock starts after it either way).
    shared = database_url or f"sqlite:///{work_dir.resolve() / 'city.sqlite3'}"
    cities = {}
    for policy in POLICIES:
        report = run_city(
            policy, config, work_dir=work_dir / policy, env=env, database_url=shared, say=say,
        )  # fmt: skip
        cities[policy] = report["kpis"]
    say("matching: timing the batch solver")
    solver = solver_times(SOLVER_SIZES[:1] if quick else SOLVER_SIZES, windows=10 if quick else 40)
    return {
        "city": {
            "drivers": config.drivers,
            "rate_per_s": config.rate,
            "duration_s": config.duration_s,
            "seed": config.seed,
            "bbox": str(config.bbox),
            "window_ms": int(env.get("DISPATCH_BATCH_WINDOW_MS", 2000)),
        },
        "policies": cities,
        "solver": solver,
        "static_windows": static_windows(windows=5 if quick else 20),
        "offer_latency": offers,
    }
