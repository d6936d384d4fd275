"""A whole trip through the real processes: the Procfile's `web`, `worker`
and `beat` with its `release` steps, started by the shared launcher
(`tests/e2e/stack.py`) against the test database and a Redis of their own.

Everything goes over HTTP and real WebSockets (the `websockets` library), as
the apps would: sign up, log in, drivers online at known places, a rider's
request, the nearest driver's offer, acceptance, positions streaming to the
rider, pick-up, drop-off.
"""

import asyncio
import http.client
import json
import time
from contextlib import suppress
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect

from tests.dispatch.support import km_north
from tests.e2e.stack import E2E_ENV
from tests.trips.factories import TRIP_REQUEST

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "pAssw0rd!x9"
OFFER_TIMEOUT_S = int(E2E_ENV["DISPATCH_OFFER_TIMEOUT_S"])


class App:
    """What a rider's or driver's app does over HTTP, against one web process."""

    def __init__(self, base_url: str) -> None:
        self.netloc = urlsplit(base_url).netloc

    def call(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection(self.netloc, timeout=10)
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
        return connect(f"ws://{self.netloc}/taxi/?token={user['access']}")


@pytest.fixture
def stack(e2e_stack) -> App:
    return App(e2e_stack().web_urls[0])


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
            TRIP_REQUEST,
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
        # 10 m a step, at an app's pace: a car's speed, which the speed check lets through
        route = [km_north(0.5 - step * 0.01) for step in range(3)]
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
