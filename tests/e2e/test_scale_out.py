"""Scale-out: two web processes and two workers on one Redis and one database.

A rider on web A and a driver on web B complete a whole trip; every push
crosses processes (worker -> B for the offer, B -> A for positions and
status changes), which is the claim DESIGN.md makes for running more `web`
and `worker` processes.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from dispatch.models import Offer
from sim.client import Api, Socket, log_in_or_sign_up
from trips.models import Trip

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "pAssw0rd!x9-e2e"
WAIT_S = 15.0
PICK_UP = {"lat": 38.8977, "lng": -77.0365}


class Inbox:
    """Every frame a socket received, in order, and a way to wait for one."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.arrived = asyncio.Condition()

    def on_frame(self, frame: dict, _arrived: float) -> None:
        self.frames.append(frame)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.arrived:
            self.arrived.notify_all()

    async def wait_for(self, type_: str, **match: object) -> dict:
        def found() -> dict | None:
            for frame in self.frames:
                data = frame.get("data") or {}
                if frame.get("type") == type_ and all(data.get(k) == v for k, v in match.items()):
                    return frame
            return None

        async with asyncio.timeout(WAIT_S):
            async with self.arrived:
                await self.arrived.wait_for(lambda: found() is not None)
        return found()

    def of_type(self, type_: str) -> list[dict]:
        return [f for f in self.frames if f.get("type") == type_]


async def _connect(api: Api, username: str, group: str) -> tuple[Socket, Inbox, int]:
    session = await log_in_or_sign_up(
        api, username=username, password=PASSWORD, group=group, first_name=group.title()
    )
    inbox = Inbox()
    return await Socket.open(api, session, inbox.on_frame), inbox, session.user_id


async def test_rider_on_one_web_and_driver_on_another_complete_a_trip(e2e_stack):
    # Given two web processes and two workers on the same Redis and database
    stack = await asyncio.to_thread(e2e_stack, webs=2, workers=2)
    url_a, url_b = stack.web_urls
    assert stack.children["web1"].pid != stack.children["web2"].pid
    api_a, api_b = Api(url_a), Api(url_b)
    sockets: list[Socket] = []
    try:
        rider, rider_inbox, _rider_id = await _connect(api_a, "rider@e2e.test", "rider")
        sockets.append(rider)
        driver, driver_inbox, driver_id = await _connect(api_b, "driver@e2e.test", "driver")
        sockets.append(driver)

        # and the driver online on web B
        reply = await driver.request("driver.online", PICK_UP)
        assert reply["type"] == "driver.status" and reply["data"]["status"] == "online"

        # When the rider asks for a trip on web A
        reply = await rider.request(
            "create.trip",
            {
                "pick_up_address": "1600 Pennsylvania Ave",
                "pick_up_lat": PICK_UP["lat"] + 0.001,
                "pick_up_lng": PICK_UP["lng"],
                "drop_off_address": "Union Station",
                "drop_off_lat": 38.8973,
                "drop_off_lng": -77.0063,
            },
        )
        assert reply["type"] == "trip.created"
        trip_id = reply["data"]["id"]

        # Then the driver on web B is offered it, without the rider's identity
        offer = await driver_inbox.wait_for("trip.offer")
        assert offer["data"]["trip"]["id"] == trip_id
        assert "rider" not in offer["data"]["trip"]

        # When the driver accepts, the rider on web A sees it
        reply = await driver.request("accept.trip", {"id": trip_id})
        assert reply["type"] == "trip.updated" and reply["data"]["status"] == "STARTED"
        await rider_inbox.wait_for("trip.updated", id=trip_id, status="STARTED")

        # and the driver's positions stream from web B to the rider on web A
        sent = []
        for step in range(3):
            position = {"lat": PICK_UP["lat"] + 0.0001 * (step + 1), "lng": PICK_UP["lng"]}
            await driver.send("update.location", {**position, "heading": 0})
            sent.append(position)
            await asyncio.sleep(0.35)  # above the forwarding interval
        last = sent[-1]
        await rider_inbox.wait_for("driver.location", trip_id=trip_id, lat=last["lat"])
        seen = [
            (f["data"]["lat"], f["data"]["lng"]) for f in rider_inbox.of_type("driver.location")
        ]
        assert seen == [(p["lat"], p["lng"]) for p in sent]

        # and the pick-up and drop-off reach the rider in order
        for status in ("IN_PROGRESS", "COMPLETED"):
            reply = await driver.request("update.trip", {"id": trip_id, "status": status})
            assert reply["data"]["status"] == status
            await rider_inbox.wait_for("trip.updated", id=trip_id, status=status)

        updates = [f["data"] for f in rider_inbox.of_type("trip.updated")]
        assert [u["status"] for u in updates] == ["STARTED", "IN_PROGRESS", "COMPLETED"]
        versions = [u["version"] for u in updates]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        # The rider was never offered anything; the driver got exactly one offer.
        assert rider_inbox.of_type("trip.offer") == []
        assert len(driver_inbox.of_type("trip.offer")) == 1
        assert driver_inbox.of_type("error") == [] and rider_inbox.of_type("error") == []

        trip, offers = await _stored(trip_id)
        assert trip.status == Trip.Status.COMPLETED and trip.driver_id == driver_id
        assert [(o.driver_id, o.status) for o in offers] == [(driver_id, Offer.Status.ACCEPTED)]
    finally:
        for socket in sockets:
            await socket.close()
        await api_a.close()
        await api_b.close()


@database_sync_to_async
def _stored(trip_id: str) -> tuple[Trip, list[Offer]]:
    try:
        trip = Trip.objects.get(pk=trip_id)
        return trip, list(Offer.objects.filter(trip=trip))
    finally:
        # This executor thread's connection would outlive the test and keep
        # PostgreSQL from dropping the test database.
        connection.close()
