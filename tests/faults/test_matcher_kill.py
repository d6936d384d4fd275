"""`kill -9` of the matcher holding the lease (issue 14, DISPATCH_POLICY=batch).

Two real matcher processes (the Procfile's `matcher`) run beside web, worker
and beat: one holds the area's lease in Redis, the other stands by. The
holder is killed without a chance to release its lease; the standby must take
over within 10 s, and requests made after the kill must still reach drivers,
each offered once.
"""

import asyncio
import time

import pytest

from tests.dispatch.support import km_north
from tests.faults.apps import ACCEPT, Api, DriverApp, LiveSocket, offer_of, report
from tests.faults.processes import kill_group, log_events, wait_until, web_url
from tests.faults.store import offers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "Matcher-k1ll-pAss!"
ENV = {"DISPATCH_POLICY": "batch", "DISPATCH_BATCH_WINDOW_MS": "500"}
TAKEOVER_LIMIT_S = 10


def lease_events(child, event: str) -> list[dict]:
    return [e for e in log_events(child) if e.get("event") == event]


def holder_of_the_lease(stack) -> str | None:
    holding = [
        name
        for name in ("matcher1", "matcher2")
        if lease_events(stack.children[name], "matcher.lease_taken")
    ]
    return holding[0] if len(holding) == 1 else None


async def test_a_killed_matcher_is_replaced_within_ten_seconds_and_trips_get_offers(fault_stack):
    # Given the real stack under `batch` with two matchers, one of them holding the lease
    stack = fault_stack(env=ENV, matchers=2)
    api = Api(web_url(stack))
    apps: list[DriverApp] = []
    riders_ws: list[LiveSocket] = []
    try:
        holder = await asyncio.to_thread(
            wait_until, lambda: holder_of_the_lease(stack), within=60, what="a matcher holds it"
        )
        standby = "matcher2" if holder == "matcher1" else "matcher1"
        drivers = [
            await api.sign_up_and_log_in(f"driver{n}@matcher.test", "driver", PASSWORD)
            for n in range(2)
        ]
        riders = [
            await api.sign_up_and_log_in(f"rider{n}@matcher.test", "rider", PASSWORD)
            for n in range(2)
        ]
        for n, driver in enumerate(drivers):
            app = DriverApp(api, driver, km_north(0.4 + n), then=ACCEPT, drive=False)
            apps.append(await app.start())
        for rider in riders:
            riders_ws.append(await LiveSocket(api, rider).start())

        # and a first request is offered by the holder
        first = await api.create_trip(riders[0])
        await apps[0].live.wait_for("trip.offer", within=30, where=offer_of(first["id"]))

        # When the holder is killed (no clean exit: its lease stays in Redis)
        killed_at = await asyncio.to_thread(kill_group, stack, holder)
        second = await api.create_trip(riders[1])

        # Then the standby takes the lease over within 10 s
        await asyncio.to_thread(
            wait_until,
            lambda: lease_events(stack.children[standby], "matcher.lease_taken"),
            within=30,
            what="the standby takes the lease",
        )
        took_over_at = time.monotonic()
        assert took_over_at - killed_at < TAKEOVER_LIMIT_S

        # and the request made after the kill reaches the free driver, once
        offer = await apps[1].live.wait_for("trip.offer", within=30, where=offer_of(second["id"]))
        offered_at = time.monotonic()
        assert offer["data"]["trip"]["id"] == second["id"]
        rows = await offers(trip_id=second["id"])
        assert [row["driver_id"] for row in rows] == [drivers[1].id]
        assert [row["driver_id"] for row in await offers(trip_id=first["id"])] == [drivers[0].id]
        for app in apps:
            app.check()
        report(
            "matcher kill -9",
            takeover_after_kill_s=took_over_at - killed_at,
            kill_to_next_offer_s=offered_at - killed_at,
        )
    finally:
        for app in apps:
            await app.close()
        for ws in riders_ws:
            await ws.close()
        await api.close()
