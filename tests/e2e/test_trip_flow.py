"""A whole trip through the real processes: the Procfile's `web` (daphne),
`worker` (Celery) and `beat`, started as a platform would start them, against
real Redis (the test database number) and a database made for this test.

Everything goes over HTTP and real WebSockets (the `websockets` library), as
the apps would: sign up, log in, drivers online at known places, a rider's
request, the nearest driver's offer, acceptance, positions streaming to the
rider, pick-up, drop-off.
"""

import asyncio
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
from django.conf import settings
from websockets.asyncio.client import connect

from tests.dispatch.support import PICK_UP, km_north

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pAssw0rd!x9"
OFFER_TIMEOUT_S = 5
START_TIMEOUT_S = 40
STOP_TIMEOUT_S = 10


def procfile() -> dict[str, str]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    return commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Database:
    """A fresh database for the processes: a temp SQLite file, or a new
    PostgreSQL database beside the test one (created here, dropped after)."""

    def __init__(self, tmp: Path) -> None:
        conf = settings.DATABASES["default"]
        self.postgres = conf["ENGINE"] == "django.db.backends.postgresql"
        if not self.postgres:
            self.url = f"sqlite:///{tmp / 'e2e.sqlite3'}"
            return
        import psycopg

        self.name = f"taxi_e2e{settings.TEST_RUN_ID}_{secrets.token_hex(4)}"
        self.server = {
            "host": conf["HOST"] or "127.0.0.1",
            "port": conf["PORT"] or 5432,
            "user": conf["USER"],
            "password": conf["PASSWORD"] or None,
            "dbname": "postgres",
        }
        with psycopg.connect(**self.server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        auth = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
        self.url = f"postgres://{auth}@{self.server['host']}:{self.server['port']}/{self.name}"

    def drop(self) -> None:
        if not self.postgres:
            return
        import psycopg

        with psycopg.connect(**self.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.db = Database(tmp)
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))},
            "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "taxi.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "0",
            "SECURE_SSL_REDIRECT": "0",
            "REDIS_URL": settings.REDIS_URL,
            "DATABASE_URL": self.db.url,
            "TAXI_VAR_DIR": str(tmp / "var"),
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "DISPATCH_OFFER_TIMEOUT_S": str(OFFER_TIMEOUT_S),
            "DISPATCH_SWEEP_EVERY_S": "2",
            "LOG_LEVEL": "INFO",
        }

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, name: str, command: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed whole
        )
        log.close()

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        healthy = worker_ready = False
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited early:\n{self.log(name)[-3000:]}")
            if not healthy:
                with suppress(OSError, http.client.HTTPException):
                    healthy = self.call("GET", "/healthz")[0] == 200
            worker_ready = worker_ready or " ready." in self.log("worker")
            if healthy and worker_ready:
                return
            time.sleep(0.2)
        logs = "\n".join(f"--- {n}\n{self.log(n)[-2000:]}" for n in self.processes)
        raise AssertionError(f"the stack did not come up in {START_TIMEOUT_S}s\n{logs}")

    def stop(self) -> None:
        for process in self.processes.values():
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Whatever a process left in its group (a prefork child) goes too.
        for process in self.processes.values():
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    # --- HTTP, as an app would ---

    def call(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            payload = None if body is None else json.dumps(body)
            connection.request(method, path, body=payload, headers=headers)
            reply = connection.getresponse()
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
        finally:
            connection.close()

    def sign_up_and_log_in(self, username: str, group: str) -> dict:
        status, _ = self.call(
            "POST",
            "/api/sign_up/",
            {
                "username": username,
                "password1": PASSWORD,
                "password2": PASSWORD,
                "first_name": username.split("@")[0],
                "last_name": "Example",
                "group": group,
            },
        )
        assert status == 201
        status, user = self.call(
            "POST", "/api/log_in/", {"username": username, "password": PASSWORD}
        )
        assert status == 200
        return user

    def socket(self, user: dict):
        return connect(f"ws://127.0.0.1:{self.port}/taxi/?token={user['access']}")


@pytest.fixture
def stack(tmp_path):
    commands = procfile()
    assert {"web", "worker", "beat"} <= set(commands), "the Procfile names every process"
    stack = Stack(tmp_path)
    try:
        stack.manage("migrate", "--noinput")
        stack.manage("setup_periodic_tasks")
        for name in ("web", "worker", "beat"):
            stack.start(name, commands[name])
        stack.wait_until_ready()
        yield stack
    finally:
        stack.stop()
        stack.db.drop()


class Inbox:
    """Every frame a socket receives, in order, read in the background; a
    test takes the next one of a type without losing the others."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[dict] = []
        self._taken: dict[str, int] = {}
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with suppress(Exception):
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
                self._arrived.set()

    async def send(self, type_: str, data: dict) -> None:
        await self.ws.send(json.dumps({"type": type_, "data": data}))

    async def next(self, type_: str, within: float = 10) -> dict:
        async with asyncio.timeout(within):
            while True:
                self._arrived.clear()
                for index in range(self._taken.get(type_, 0), len(self.frames)):
                    if self.frames[index]["type"] == type_:
                        self._taken[type_] = index + 1
                        return self.frames[index]
                await self._arrived.wait()

    def types(self) -> list[str]:
        return [frame["type"] for frame in self.frames]

    def close(self) -> None:
        self._reader.cancel()


async def test_a_whole_trip_over_the_real_processes(stack):
    near_user = stack.sign_up_and_log_in("near@example.com", "driver")
    far_user = stack.sign_up_and_log_in("far@example.com", "driver")
    rider_user = stack.sign_up_and_log_in("rider@example.com", "rider")

    async with (
        stack.socket(near_user) as near_ws,
        stack.socket(far_user) as far_ws,
        stack.socket(rider_user) as rider_ws,
    ):
        near, far, rider = Inbox(near_ws), Inbox(far_ws), Inbox(rider_ws)
        for driver, km in ((near, 0.5), (far, 2.5)):
            lat, lng = km_north(km)
            await driver.send("driver.online", {"lat": lat, "lng": lng})
            assert (await driver.next("driver.status"))["data"] == {"status": "online"}

        # The rider requests; the nearest driver hears of it, the farther one does not.
        asked_at = time.perf_counter()
        status, trip = await asyncio.to_thread(
            stack.call,
            "POST",
            "/api/trip/",
            {
                "pick_up_address": "123 Main Street",
                "pick_up_lat": PICK_UP[0],
                "pick_up_lng": PICK_UP[1],
                "drop_off_address": "456 Piney Road",
                "drop_off_lat": 38.9,
                "drop_off_lng": -77.04,
            },
            rider_user["access"],
        )
        offer = await near.next("trip.offer")
        request_to_offer_ms = (time.perf_counter() - asked_at) * 1000
        assert status == 201 and trip["status"] == "REQUESTED"
        assert offer["data"]["trip"]["id"] == trip["id"]
        assert offer["data"]["timeout_s"] == OFFER_TIMEOUT_S
        assert "rider" not in offer["data"]["trip"]

        # The driver accepts and drives: the rider sees them move.
        await near.send("accept.trip", {"id": trip["id"]})
        assert (await near.next("trip.updated"))["data"]["status"] == "STARTED"
        route = [km_north(0.5 - step * 0.2) for step in range(3)]
        for lat, lng in route:
            await near.send("update.location", {"lat": lat, "lng": lng, "heading": 180})
            located = (await rider.next("driver.location", within=5))["data"]
            assert (located["trip_id"], located["lat"], located["lng"]) == (trip["id"], lat, lng)
            assert located["heading"] == 180
            await asyncio.sleep(0.3)  # an app's pace, past the 4-a-second forwarding limit

        for next_status in ("IN_PROGRESS", "COMPLETED"):
            await near.send("update.trip", {"id": trip["id"], "status": next_status})
            assert (await near.next("trip.updated"))["data"]["status"] == next_status

        # The rider saw every change, in order of version.
        seen = []
        while len(seen) < 3:
            updated = (await rider.next("trip.updated"))["data"]
            seen.append((updated["version"], updated["status"]))
        assert seen == [(2, "STARTED"), (3, "IN_PROGRESS"), (4, "COMPLETED")]
        assert far.types() == ["driver.status"], "the farther driver heard of no trip"
        for inbox in (near, far, rider):
            inbox.close()

    status, final = stack.call("GET", f"/api/trip/{trip['id']}/", token=rider_user["access"])
    assert (status, final["status"], final["driver"]["id"]) == (200, "COMPLETED", near_user["id"])
    print(f"\ne2e request to trip.offer: {request_to_offer_ms:.1f} ms")
