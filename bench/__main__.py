"""`python -m bench` (`make bench`): the taxi benchmark on this machine.

Starts its own stack (a private Redis, a fresh SQLite database or the
PostgreSQL one DATABASE_URL names, daphne web, Celery worker and beat from the
Procfile, on free ports, DEBUG off), seeds
accounts, runs the load generator in this process against 127.0.0.1 only,
prints a table per measurement (on PostgreSQL also the most database
connections the stack held) and writes JSON. Every child is stopped on the
way out, whatever happened. See BENCHMARKS.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

from bench import (
    connections,
    database,
    dispatch_latency,
    echo,
    ingest,
    matching,
    ops_stream,
    quotes,
)
from bench.load import Accounts, raise_fd_limit
from bench.machine import describe
from bench.report import format_results
from bench.seed import seed_accounts
from bench.stack import ROOT, Stack
from sim.client import Api

MEASUREMENTS = ("dispatch", "quotes", "ingest", "ops", "connections", "echo", "matching")
# Steps that start stacks of their own instead of sharing the main one.
OWN_STACKS = ("matching",)
FULL = {
    "sizes": [100, 1000, 5000],
    "trips": 300,
    "trip_rate": 10.0,
    "ingest_drivers": 1000,
    "ingest_rates": [250.0, 500.0, 1000.0, 1500.0, 2000.0],
    "ingest_seconds": 20.0,
    "conn_steps": [1000, 2000, 3000, 4000, 5000],
    "echo_sockets": 50,
    "echo_window": 4,
    "echo_seconds": 5.0,
    "ops_drivers": 5000,
    "ops_seconds": 20.0,
    "quotes_drivers": 1000,
    "quotes_requests": 500,
    "quotes_concurrency": 8,
}
QUICK = {
    "sizes": [100],
    "trips": 30,
    "trip_rate": 10.0,
    "ingest_drivers": 50,
    "ingest_rates": [100.0],
    "ingest_seconds": 3.0,
    "conn_steps": [200],
    "echo_sockets": 10,
    "echo_window": 4,
    "echo_seconds": 2.0,
    "ops_drivers": 200,
    "ops_seconds": 5.0,
    "quotes_drivers": 100,
    "quotes_requests": 50,
    "quotes_concurrency": 4,
}
# Throttles and limits that would refuse a load generator on one address.
STACK_ENV = {
    "DEBUG": "0",
    "SECURE_SSL_REDIRECT": "0",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "THROTTLE_LOG_IN": "1000000/min",
    "THROTTLE_SIGN_UP": "1000000/min",
    "THROTTLE_TRIP_CREATE": "1000000/min",
    "THROTTLE_QUOTES": "1000000/min",
    "WS_RATE_PER_S": "1000000",
    "WS_RATE_BURST": "1000000",
    # Idle drivers of the dispatch fleet hold sockets but do not ping.
    "DRIVER_PRESENCE_TTL_S": "3600",
    "JWT_ACCESS_LIFETIME_S": "7200",
    # Each step places the same seeded drivers afresh at random points of the
    # city, seconds after the last step left them elsewhere: by the speed
    # rule that is a jump, and their positions would be refused.
    "LOCATION_MAX_SPEED_KMH": "0",
}
RIDER_POOL = 50


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(MEASUREMENTS), help="comma-separated subset of %(default)s"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "results.json")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--webs", type=int, default=1, help="web processes for dispatch, ingest")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--sizes", help="drivers online for dispatch, e.g. 100,1000,5000")
    parser.add_argument("--trips", type=int, help="trips per size")
    parser.add_argument("--ingest-drivers", type=int)
    parser.add_argument("--ingest-rates", help="total frames/s per step, e.g. 1000,2000,3000")
    parser.add_argument("--ingest-seconds", type=float)
    parser.add_argument("--conn-steps", help="sockets per step, e.g. 1000,2000,5000")
    parser.add_argument("--quotes-drivers", type=int, help="drivers online for quotes")
    parser.add_argument("--quotes-requests", type=int, help="quote requests per pass")
    parser.add_argument("--redis-url", help="use this Redis instead of a private one (written to)")
    parser.add_argument(
        "--database-url",
        default=database.database_url_from_environment(),
        help="use this database (written to) instead of a fresh SQLite file; default DATABASE_URL",
    )
    parser.add_argument(
        "--settings",
        help="Django settings module for the stack (default taxi.settings), to measure a change",
    )
    args = parser.parse_args(argv)
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(args.only) - set(MEASUREMENTS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {', '.join(MEASUREMENTS)}")
    plan = dict(QUICK if args.quick else FULL)
    for name, cast in (("sizes", int), ("ingest_rates", float), ("conn_steps", int)):
        if getattr(args, name):
            plan[name] = [cast(v) for v in getattr(args, name).split(",")]
    for name in ("trips", "ingest_drivers", "ingest_seconds", "quotes_drivers", "quotes_requests"):
        if getattr(args, name) is not None:
            plan[name] = getattr(args, name)
    args.plan = plan
    return args


def accounts_needed(args: argparse.Namespace) -> tuple[int, int]:
    plan, drivers, riders = args.plan, 0, 0
    if "dispatch" in args.only:
        drivers, riders = max(plan["sizes"]), RIDER_POOL
    if "quotes" in args.only:
        drivers, riders = max(drivers, plan["quotes_drivers"]), max(riders, RIDER_POOL)
    if "ingest" in args.only:
        drivers, riders = max(drivers, plan["ingest_drivers"]), max(riders, plan["ingest_drivers"])
    if "connections" in args.only:
        drivers = max(drivers, max(plan["conn_steps"]))
    if "ops" in args.only:
        drivers = max(drivers, plan["ops_drivers"])
    if "echo" in args.only:
        riders = max(riders, plan["echo_sockets"])
    return drivers, riders


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def measure_all(args: argparse.Namespace, stack: Stack, accounts: Accounts) -> dict:
    plan, results = args.plan, {}
    webs = [child for name, child in stack.children.items() if name.startswith("web")]
    apis = [Api(web.url, max_connections=200) for web in webs]
    pids = [web.pid for web in webs]
    # A staff console listens to /ops/stream/ during the dispatch and ops steps.
    cookie = ""
    if {"dispatch", "ops"} & set(args.only):
        password = ops_stream.new_password()
        ops_stream.make_staff(ROOT, stack.base_env, password)
        cookie = ops_stream.session_cookie(webs[0].url, password)
    try:
        if "dispatch" in args.only:
            results["dispatch"] = await dispatch_latency.measure(
                apis, accounts.drivers, accounts.riders[:RIDER_POOL], sizes=plan["sizes"],
                trips=plan["trips"], rate=plan["trip_rate"], concurrency=20, seed=args.seed,
                say=say, web_pids=pids,
                staff_listener=lambda: ops_stream.Listener(webs[0].url, cookie),
            )  # fmt: skip
        if "quotes" in args.only:
            results["quotes"] = await quotes.measure(
                apis, accounts.drivers, accounts.riders[:RIDER_POOL],
                size=plan["quotes_drivers"], requests=plan["quotes_requests"],
                concurrency=plan["quotes_concurrency"], seed=args.seed, say=say,
            )  # fmt: skip
        if "ingest" in args.only:
            n = plan["ingest_drivers"]
            results["ingest"] = await ingest.measure(
                apis, accounts.drivers[:n], accounts.riders[:n], rates=plan["ingest_rates"],
                seconds=plan["ingest_seconds"], web_pids=pids, seed=args.seed, say=say,
            )  # fmt: skip
        if "ops" in args.only:
            n = plan["ops_drivers"]
            results["ops"] = await ops_stream.measure_moving_city(
                stack.base_env["REDIS_URL"], webs[0].url, cookie,
                [session.user_id for session in accounts.drivers[:n]],
                seconds=plan["ops_seconds"], web_pid=webs[0].pid, seed=args.seed, say=say,
            )  # fmt: skip
    finally:
        for api in apis:
            await api.close()
    if "connections" in args.only:
        fresh = stack.add_web("web-connections", wait=True)
        try:
            results["connections"] = await connections.measure(
                fresh.url, fresh.pid, accounts.drivers, steps=plan["conn_steps"], say=say
            )
        finally:
            stack.stop_child("web-connections")
    if "echo" in args.only:
        fresh = stack.add_web("web-echo", wait=True)
        try:
            results["echo"] = await echo.measure(
                fresh.url, fresh.pid, accounts.riders, sockets=plan["echo_sockets"],
                window=plan["echo_window"], seconds=plan["echo_seconds"], say=say,
            )  # fmt: skip
        finally:
            stack.stop_child("web-echo")
    return results


def server_errors(log_dir: Path) -> dict[str, int]:
    """Error-level lines per process log: a healthy run has none."""
    return {
        path.stem: path.read_text(errors="replace").count('"level": "error"')
        for path in sorted(log_dir.glob("*.log"))
        if path.stem not in ("redis", "release")
    }


def database_processes(args: argparse.Namespace) -> int:
    """Processes of a run that each hold a pool: the webs (one more for each
    of the connection and echo measurements), every worker's pool children,
    beat, and the seeding step."""
    webs = args.webs + sum(m in args.only for m in ("connections", "echo"))
    return webs + args.workers * args.worker_concurrency + 1 + 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    fd_limit = raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    work_dir = ROOT / "var" / "bench" / "run"
    shutil.rmtree(work_dir, ignore_errors=True)
    env = {**STACK_ENV, "SECRET_KEY": secrets.token_urlsafe(50)}
    if args.settings:
        env["DJANGO_SETTINGS_MODULE"] = args.settings
    began = time.monotonic()
    stack = Stack(
        work_dir=work_dir, webs=args.webs, workers=args.workers,
        worker_concurrency=args.worker_concurrency, redis_url=args.redis_url,
        database_url=args.database_url, env=env,
    )  # fmt: skip
    say(f"starting the stack under {work_dir.relative_to(ROOT)} (logs in logs/)")
    load_before = load_average()
    with stack:
        took = time.monotonic() - began
        say(f"stack up in {took:.1f}s: web {stack.web_urls}, fd limit {fd_limit}")
        drivers, riders = accounts_needed(args)
        watch = database.ConnectionWatch(args.database_url).start()
        try:
            accounts = seed_accounts(stack, drivers, riders)
            say(f"seeded {drivers} driver and {riders} rider accounts")
            machine = describe(stack.base_env["REDIS_URL"])
            results = asyncio.run(measure_all(args, stack, accounts))
        finally:
            watch.stop()
    if "matching" in args.only:
        results["matching"] = matching.measure(
            quick=args.quick, work_dir=work_dir / "matching", env=env,
            database_url=args.database_url, seed=args.seed, say=say,
        )  # fmt: skip
    db_summary = watch.summary(processes=database_processes(args), env=stack.base_env)
    errors = server_errors(work_dir / "logs")
    if any(errors.values()):
        say(f"warning: error-level lines in the stack's logs: {errors} (see {work_dir}/logs)")
    report = {
        "machine": machine,
        "plan": args.plan,
        "stack": {
            "webs": args.webs,
            "workers": args.workers,
            "worker_concurrency": args.worker_concurrency,
            "settings": args.settings or "taxi.settings",
            "env": dict(STACK_ENV),
        },
        "load_average_before_after": [load_before, load_average()],
        "seconds": round(time.monotonic() - began, 1),
        "server_error_log_lines": errors,
        "database": db_summary,
        "results": results,
    }
    print(format_results(results), flush=True)
    print(f"\n{database.describe_summary(db_summary)}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {args.out} ({report['seconds']}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
