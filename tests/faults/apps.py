"""An app's view of the stack: REST calls that keep every token they were
issued, and a socket that reconnects the way an app does (on close, again
with backoff) and keeps every frame it received, across reconnections; a
driver's app answering offers on it.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from sim.client import Api as SimApi
from tests.dispatch.support import PICK_UP

WAIT_S = 30.0


def trip_body(label: str = "Main Street") -> dict:
    return {
        "pick_up_address": f"1 {label}",
        "pick_up_lat": PICK_UP[0],
        "pick_up_lng": PICK_UP[1],
        "drop_off_address": "456 Piney Road",
        "drop_off_lat": PICK_UP[0] + 0.02,
        "drop_off_lng": PICK_UP[1] - 0.01,
    }


async def eventually(
    check: Callable[[], Any], *, within: float, what: str, every: float = 0.2
) -> Any:
    """`wait_until` on the event loop; `check` may return an awaitable."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what}")
        await asyncio.sleep(every)


# --- REST ------------------------------------------------------------------------------


@dataclass
class Account:
    id: int
    username: str
    password: str
    group: str
    access: str
    refresh: str

    def __repr__(self) -> str:  # never print a token or a password
        return f"Account(id={self.id}, username={self.username!r})"


class Api(SimApi):
    """The simulator's REST client (`sim.client.Api`), keeping every token an
    answer carried in `issued` (the secrets test looks for them in the
    processes' output)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.issued: list[str] = []

    async def call(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        status, data = await super().call(method, path, token=token, body=body)
        if isinstance(data, dict):
            self.issued.extend(
                data[k] for k in ("access", "refresh") if isinstance(data.get(k), str)
            )
        return status, data

    async def sign_up_and_log_in(self, username: str, group: str, password: str) -> Account:
        status, body = await self.call(
            "POST",
            "/api/sign_up/",
            body={
                "username": username,
                "password1": password,
                "password2": password,
                "first_name": username.split("@")[0].title(),
                "last_name": "Fault",
                "group": group,
            },
        )
        assert status == 201, (status, body)
        status, body = await self.call(
            "POST", "/api/log_in/", body={"username": username, "password": password}
        )
        assert status == 200, (status, body)
        return Account(body["id"], username, password, group, body["access"], body["refresh"])

    async def create_trip(self, rider: Account, label: str = "Main Street") -> dict:
        status, body = await self.call(
            "POST", "/api/trip/", token=rider.access, body=trip_body(label)
        )
        assert status == 201, (status, body)
        return body

    async def trip(self, account: Account, trip_id: str) -> dict:
        status, body = await self.call("GET", f"/api/trip/{trip_id}/", token=account.access)
        assert status == 200, (status, body)
        return body

    async def nearby(self, account: Account, radius_km: float = 5) -> list[tuple[float, float]]:
        status, body = await self.call(
            "GET",
            f"/api/driver/nearby/?lat={PICK_UP[0]}&lng={PICK_UP[1]}&radius_km={radius_km}",
            token=account.access,
        )
        assert status == 200, (status, body)
        return sorted((d["lat"], d["lng"]) for d in body["drivers"])


def rounded(position: tuple[float, float]) -> tuple[float, float]:
    """As /api/driver/nearby/ shows a position (about 100 m)."""
    return round(position[0], 3), round(position[1], 3)


# --- the socket ------------------------------------------------------------------------

OnConnect = Callable[["LiveSocket"], Awaitable[None]]


class LiveSocket:
    """`/taxi/?token=` kept open the way an app keeps it: when it closes (or a
    handshake fails) it connects again after a backoff of 0.1 s doubling to
    1 s, and `on_connect` runs on every connection (a driver says
    `driver.online` again). Every frame received, over every connection, is
    kept in order in `frames`."""

    MIN_BACKOFF_S = 0.1
    MAX_BACKOFF_S = 1.0
    _ids = itertools.count(1)

    def __init__(self, api: Api, account: Account, on_connect: OnConnect | None = None) -> None:
        self.api = api
        self.account = account
        self.on_connect = on_connect
        self.frames: list[dict] = []
        self.connects: list[float] = []  # monotonic time of each open
        self.drops: list[tuple[float, int | None]] = []  # closes we did not ask for
        self.failed_handshakes = 0
        self._taken: set[int] = set()
        self._arrived = asyncio.Event()
        self._connected = asyncio.Event()
        self._ws = None
        self._closing = False
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        host = self.api.base_url.split("://", 1)[1]
        return f"ws://{host}/taxi/?token={self.account.access}"

    async def start(self) -> LiveSocket:
        self._task = asyncio.create_task(self._run())
        await self.wait_connected()
        return self

    async def wait_connected(self, within: float = WAIT_S) -> None:
        async with asyncio.timeout(within):
            await self._connected.wait()

    def is_open_since_last_drop(self) -> bool:
        """Connected now, on a connection opened after the last one dropped."""
        if not self._connected.is_set():
            return False
        return not self.drops or self.connects[-1] > self.drops[-1][0]

    async def _run(self) -> None:
        backoff = self.MIN_BACKOFF_S
        while not self._closing:
            try:
                async with connect(self.url, open_timeout=5, max_queue=None) as ws:
                    self._ws = ws
                    self.connects.append(time.monotonic())
                    backoff = self.MIN_BACKOFF_S
                    self._connected.set()
                    if self.on_connect is not None:
                        await self.on_connect(self)
                    async for raw in ws:
                        self.frames.append(json.loads(raw))
                        self._arrived.set()
                    if not self._closing:
                        self.drops.append((time.monotonic(), ws.close_code))
            except (OSError, TimeoutError, WebSocketException):
                if not self._closing:
                    if self._ws is None:
                        self.failed_handshakes += 1
                    else:
                        self.drops.append((time.monotonic(), getattr(self._ws, "close_code", None)))
            finally:
                self._ws = None
                self._connected.clear()
            if not self._closing:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF_S)

    async def send(self, type_: str, data: dict | None = None, request_id: str | None = None):
        await self.wait_connected()
        message = {"type": type_, "data": data or {}}
        if request_id is not None:
            message["request_id"] = request_id
        await self._ws.send(json.dumps(message))

    async def request(self, type_: str, data: dict | None = None, within: float = WAIT_S) -> dict:
        """Send a frame with a request_id; the frame that carries it back."""
        request_id = f"q{next(self._ids)}"
        await self.send(type_, data, request_id)
        return await self._take(lambda f: f.get("request_id") == request_id, within, type_)

    async def next(self, type_: str, within: float = WAIT_S, **match: Any) -> dict:
        """Take the first frame of `type_` (its data matching `match`) not
        taken yet: each frame is taken once (a DriverApp takes its offers)."""
        return await self._take(_matcher(type_, None, match), within, f"{type_} {match}")

    async def wait_for(
        self,
        type_: str,
        within: float = WAIT_S,
        where: Callable[[dict], bool] | None = None,
        **match: Any,
    ) -> dict:
        """The first frame of `type_` matching `match` (and `where`, given the
        frame's data), taken or not; waits for it to arrive."""
        return await self._take(
            _matcher(type_, where, match), within, f"{type_} {match}", take=False
        )

    async def _take(
        self, wanted: Callable[[dict], bool], within: float, what: str, take: bool = True
    ) -> dict:
        try:
            async with asyncio.timeout(within):
                while True:
                    self._arrived.clear()
                    for index, frame in enumerate(self.frames):
                        if (not take or index not in self._taken) and wanted(frame):
                            if take:
                                self._taken.add(index)
                            return frame
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.account.username} got no {what} within {within:.0f}s; it got {self.types()}"
            ) from None

    def of_type(self, type_: str) -> list[dict]:
        return [f for f in self.frames if f.get("type") == type_]

    def types(self) -> list[str]:
        return [f.get("type") for f in self.frames]

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with suppress(OSError, WebSocketException):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


def _matcher(
    type_: str, where: Callable[[dict], bool] | None, match: dict
) -> Callable[[dict], bool]:
    def wanted(frame: dict) -> bool:
        data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
        return (
            frame.get("type") == type_
            and all(data.get(k) == v for k, v in match.items())
            and (where is None or where(data))
        )

    return wanted


def offer_of(trip_id: str) -> Callable[[dict], bool]:
    """`where` for a `trip.offer` of that trip."""
    return lambda data: data.get("trip", {}).get("id") == trip_id


def online_at(position: tuple[float, float]) -> OnConnect:
    """A driver app's `on_connect`: online again at its position."""

    async def say_online(live: LiveSocket) -> None:
        await live.send("driver.online", {"lat": position[0], "lng": position[1]})

    return say_online


ACCEPT, DECLINE, IGNORE = "accept", "decline", "ignore"


class DriverApp:
    """A driver's app on a LiveSocket, online at `position` on every
    connection, answering each `trip.offer` with the next of `actions`, then
    with `then`. A trip it accepts it drives to the end (IN_PROGRESS, then
    COMPLETED) when `drive` is set. What it did is kept in `answers`."""

    def __init__(
        self,
        api: Api,
        account: Account,
        position: tuple[float, float],
        *,
        actions: tuple[str, ...] = (),
        then: str = ACCEPT,
        drive: bool = True,
    ) -> None:
        self.account = account
        self.position = position
        self.live = LiveSocket(api, account, online_at(position))
        self.actions = list(actions)
        self.then = then
        self.drive = drive
        self.answers: list[tuple[str, str, str]] = []  # (trip id, action, reply type)
        self._task: asyncio.Task | None = None

    async def start(self) -> DriverApp:
        await self.live.start()
        await self.live.next("driver.status", status="online")
        self._task = asyncio.create_task(self._answer_offers())
        return self

    async def _answer_offers(self) -> None:
        while True:
            offer = await self.live.next("trip.offer", within=3600)
            trip_id = offer["data"]["trip"]["id"]
            action = self.actions.pop(0) if self.actions else self.then
            if action == IGNORE:
                self.answers.append((trip_id, action, ""))
                continue
            reply = await self.live.request(f"{action}.trip", {"id": trip_id})
            self.answers.append((trip_id, action, reply["type"]))
            if action == ACCEPT and reply["type"] == "trip.updated" and self.drive:
                for status in ("IN_PROGRESS", "COMPLETED"):
                    moved = await self.live.request(
                        "update.trip", {"id": trip_id, "status": status}
                    )
                    assert moved["data"]["status"] == status, moved

    def offered_trips(self) -> list[str]:
        return [f["data"]["trip"]["id"] for f in self.live.of_type("trip.offer")]

    def check(self) -> None:
        """Raise what went wrong while answering offers, if anything did."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            if error is not None:
                raise error

    async def close(self) -> None:
        try:
            if self._task is not None:
                self._task.cancel()
                with suppress(asyncio.CancelledError):
                    await self._task
        finally:
            await self.live.close()


def report(scenario: str, **numbers: Any) -> None:
    """One line per scenario with its measured numbers (run pytest with -s to see them)."""
    shown = ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items()
    )
    print(f"\nFAULTS {scenario}: {shown}", flush=True)
