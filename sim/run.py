"""One simulated city against a running server, start to report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import httpx

from sim import kpi
from sim.client import Api, Session, SimError, log_in_or_sign_up
from sim.curb import Curb
from sim.drivers import DriverAgent
from sim.report import (
    format_pricing,
    format_report,
    format_ride,
    progress_line,
    ride_hints,
    show_progress,
)
from sim.ride_kpi import compute_ride_kpis
from sim.riders import RiderAgent
from sim.scenario import Scenario, SimConfig, build_scenario

logger = logging.getLogger(__name__)

# Sim accounts live on development and demo servers only; SIM_PASSWORD overrides.
DEFAULT_PASSWORD = "Cruise-Control-4417"  # noqa: S105
LOG_IN_CONCURRENCY = 4
CONNECT_CONCURRENCY = 20
T = TypeVar("T")


async def bounded(jobs: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


def say(message: str) -> None:
    print(f"simulate: {message}", file=sys.stderr, flush=True)


# The server's default LOCATION_MAX_SPEED_KMH: faster positions are kept out of matching.
SERVER_MAX_SPEED_KMH = 250


def _warn_about_speed(config: SimConfig) -> None:
    wall_kmh = config.wall_speed_km_s * 3600
    if wall_kmh > SERVER_MAX_SPEED_KMH:
        say(
            f"drivers move at {wall_kmh:.0f} km/h of wall-clock time (speed x time scale); "
            f"a server that keeps positions faster than {SERVER_MAX_SPEED_KMH} km/h out of "
            "matching (LOCATION_MAX_SPEED_KMH) matches few of them: start it with "
            "LOCATION_MAX_SPEED_KMH=0 (`make demo` does)"
        )


async def run(config: SimConfig, *, json_path: Path | None = None) -> dict:
    """Run the scenario; return (and print, and maybe write) the KPI report."""
    scenario = build_scenario(config)
    recorder = kpi.Recorder()
    api = Api(config.base_url)
    drivers: list[DriverAgent] = []
    riders: list[RiderAgent] = []
    try:
        await _check_server(api)
        _warn_about_speed(config)
        drivers, riders = await _log_in(api, scenario, recorder)
        await _tidy_leftovers(api, drivers, riders, after="an earlier run")
        await _set_up_pricing(api, scenario, drivers, riders)
        say(f"connecting {len(drivers)} drivers and {len(riders)} riders")
        await bounded(
            [lambda a=a: a.connect(api) for a in [*drivers, *riders]], CONNECT_CONCURRENCY
        )
        recorder.started = time.monotonic()
        recorder.events.clear()
        await _play(api, scenario, recorder, drivers, riders)
    finally:
        await _wind_down(recorder, drivers, riders)
        # Whatever raced the wind-down (a create answered as the sockets
        # closed, a reply that timed out), nothing of ours stays active.
        with contextlib.suppress(httpx.HTTPError, OSError):
            await _tidy_leftovers(api, drivers, riders, after="this run")
        await api.close()
    report = {
        "server": config.base_url,
        "config": {**asdict(config), "bbox": str(config.bbox)},
        "scenario": {
            "drivers": len(scenario.drivers),
            "riders": len(scenario.rider_usernames),
            "requests_planned": len(scenario.requests),
        },
        "kpis": {
            **kpi.compute_kpis(recorder.events, recorder.counters, drivers=len(scenario.drivers)),
            **kpi.compute_pricing_kpis(recorder.events),
            **compute_ride_kpis(recorder.events, on_time_tolerance_s=config.on_time_tolerance_s),
        },
    }
    print(format_report(report["kpis"]), flush=True)
    print(format_pricing(report["kpis"]), flush=True)
    print(format_ride(report["kpis"]), flush=True)
    for hint in ride_hints(report["kpis"], config):
        say(hint)
    if json_path is not None:
        write_json(json_path, report)
        say(f"wrote {json_path}")
    return report


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


async def _check_server(api: Api) -> None:
    try:
        status, _body = await api.call("GET", "/healthz")
    except OSError as error:
        raise SimError(
            f"no server answers at {api.base_url} ({error}); start one with `make run`"
        ) from None
    if status != 200:
        raise SimError(f"{api.base_url}/healthz answered {status}; is the stack healthy?")


async def _log_in(
    api: Api, scenario: Scenario, recorder: kpi.Recorder
) -> tuple[list[DriverAgent], list[RiderAgent]]:
    password = os.environ.get("SIM_PASSWORD") or DEFAULT_PASSWORD
    accounts = [(plan.username, "driver") for plan in scenario.drivers]
    accounts += [(username, "rider") for username in scenario.rider_usernames]
    say(f"logging in {len(accounts)} accounts (signing up the ones that do not exist yet)")

    async def one(username: str, group: str) -> Session:
        first_name = username.split("@")[0].rstrip("0123456789").title()
        return await log_in_or_sign_up(
            api, username=username, password=password, group=group, first_name=first_name
        )

    sessions = await bounded([lambda u=u, g=g: one(u, g) for u, g in accounts], LOG_IN_CONCURRENCY)
    n = len(scenario.drivers)
    curb = Curb()
    drivers = [
        DriverAgent(plan, scenario, recorder, s, curb)
        for plan, s in zip(scenario.drivers, sessions[:n], strict=True)
    ]
    riders = [RiderAgent(i, recorder, s, curb) for i, s in enumerate(sessions[n:])]
    return drivers, riders


async def _set_up_pricing(
    api: Api, scenario: Scenario, drivers: list[DriverAgent], riders: list[RiderAgent]
) -> None:
    """Every driver records its car (and so the products it serves); riders
    quote before they request. A server without products (Part 1 only) gets
    unquoted requests and no vehicles."""
    status, catalogue = await api.call("GET", "/api/products/", token=riders[0].session.access)
    if status == 404:
        say("the server has no /api/products/: riders request unquoted, drivers record no car")
        for rider in riders:
            rider.quoting = False
        return
    if status != 200 or not isinstance(catalogue, list):
        raise SimError(f"GET /api/products/ answered {status}")
    offered = {item.get("code") for item in catalogue if isinstance(item, dict)}
    wanted = {p for d in scenario.drivers for p in d.products}
    wanted |= {plan.product for plan in scenario.requests}
    if wanted - offered:
        raise SimError(
            f"the server's catalogue has no {', '.join(sorted(wanted - offered))}; run with "
            "--xl-driver-share 0 --xl-request-share 0, or add the product in the admin"
        )
    xl = sum(len(d.plan.products) > 1 for d in drivers)
    say(f"recording {len(drivers)} cars ({xl} also serve xl)")
    await bounded([lambda d=d: d.record_vehicle(api) for d in drivers], CONNECT_CONCURRENCY)


async def _tidy_leftovers(
    api: Api, drivers: list[DriverAgent], riders: list[RiderAgent], *, after: str
) -> None:
    """Close the sim accounts' active trips: at the start, what an interrupted
    earlier run left (it would block new requests); at the end, our own."""

    async def tidy(session: Session, moves: dict[str, tuple[str, dict]]) -> int:
        tidied = 0
        for status, (action, body) in moves.items():
            code, trips = await api.call("GET", f"/api/trip/?status={status}", token=session.access)
            if code != 200 or not isinstance(trips, list):
                continue
            for trip in trips:
                code, _ = await api.call(
                    "POST", f"/api/trip/{trip['id']}/{action}/", token=session.access, body=body
                )
                tidied += code == 200
        return tidied

    # Before the pick-up only the rider cancels: a driver's cancel would send
    # the trip back to dispatch (PROTOCOL.md Part 2).
    driver_moves = {
        "IN_PROGRESS": ("status", {"status": "COMPLETED"}),
    }
    rider_moves = {
        "SCHEDULED": ("cancel", {"reason": "sim_restart"}),
        "REQUESTED": ("cancel", {"reason": "sim_restart"}),
        "STARTED": ("cancel", {"reason": "sim_restart"}),
        "ARRIVED": ("cancel", {"reason": "sim_restart"}),
    }
    jobs = [lambda s=d.session: tidy(s, driver_moves) for d in drivers]
    jobs += [lambda s=r.session: tidy(s, rider_moves) for r in riders]
    tidied = sum(await bounded(jobs, CONNECT_CONCURRENCY))
    if tidied:
        say(f"closed {tidied} trips {after} left open")


async def _play(
    api: Api,
    scenario: Scenario,
    recorder: kpi.Recorder,
    drivers: list[DriverAgent],
    riders: list[RiderAgent],
) -> None:
    config = scenario.config
    stop_driving, stop_progress = asyncio.Event(), asyncio.Event()
    driving = [asyncio.create_task(driver.drive(stop_driving)) for driver in drivers]

    def render() -> str:
        online = sum(1 for d in drivers if d.socket and not d.socket.closed.is_set())
        return progress_line(
            recorder,
            duration_s=config.duration_s,
            online=online,
            waiting=sum(rider.waiting for rider in riders),
        )

    progress = asyncio.create_task(show_progress(render, stop_progress))
    requests: set[asyncio.Task] = set()
    try:
        for plan in scenario.requests:
            delay = plan.at_s - recorder.now()
            if delay > 0:
                await asyncio.sleep(delay)
            rider = next((r for r in riders if not r.busy), None)
            if rider is None:
                recorder.emit(kpi.SKIPPED, request=plan.number)
                continue
            rider.busy = True
            task = asyncio.create_task(rider.request(api, plan))
            requests.add(task)
            task.add_done_callback(requests.discard)
        await asyncio.sleep(max(0.0, config.duration_s - recorder.now()))
        await _drain(riders, config.drain_s)
    finally:
        stop_driving.set()
        for task in requests:
            task.cancel()
        await asyncio.gather(*driving, *requests, return_exceptions=True)
        stop_progress.set()
        await progress


async def _drain(riders: list[RiderAgent], timeout_s: float) -> None:
    """Give trips still waiting for a driver a chance to resolve: until no
    rider waits at once (a trip its driver gave up waits again), or for at
    most `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while waiting := [rider for rider in riders if not rider.settled.is_set()]:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(rider.settled.wait() for rider in waiting)), remaining
            )


async def _wind_down(
    recorder: kpi.Recorder, drivers: list[DriverAgent], riders: list[RiderAgent]
) -> None:
    """Leave the server as we found it: no trip left active, drivers offline."""
    dropped = [a for a in [*drivers, *riders] if a.socket and a.socket.dropped_by_server]
    if dropped:
        recorder.count("sockets_dropped_by_server", len(dropped))
        codes = sorted({str(a.socket.connection.close_code) for a in dropped if a.socket})
        say(f"warning: the server closed {len(dropped)} sockets during the run (codes {codes})")
    to_cancel = [rider.close_books() for rider in riders]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(
                *(driver.finish() for driver in drivers),
                *(rider.finish(trip) for rider, trip in zip(riders, to_cancel, strict=True)),
                return_exceptions=True,
            ),
            timeout=30,
        )
