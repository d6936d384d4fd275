"""`kill -9` of the worker and beat while a ride is booked (PROTOCOL.md
Part 2, "Statuses, extended"). A SCHEDULED trip lives in the database only:
no task holds it, so nothing of it dies with the processes. Once they are
back, the next sweep promotes it and dispatch offers it to an online driver.

The real processes run with a short booking window and lead, and a sweep
every second, so the test takes seconds."""

import asyncio
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from tests.dispatch.support import km_north
from tests.faults.apps import (
    ACCEPT,
    Api,
    DriverApp,
    LiveSocket,
    eventually,
    offer_of,
    report,
    trip_body,
)
from tests.faults.processes import (
    add_beat,
    add_worker,
    kill_group,
    wait_worker_ready,
    web_url,
)
from tests.faults.store import offers, trip_row

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "Booked-pAssw0rd!3"
MIN_AHEAD_S = 8
LEAD_S = 4
BOOK_AHEAD_S = 10
ENV = {
    "SCHEDULE_MIN_AHEAD_S": str(MIN_AHEAD_S),
    "SCHEDULE_DISPATCH_LEAD_S": str(LEAD_S),
    "SCHEDULE_SWEEP_EVERY_S": "1",
    "DISPATCH_SWEEP_EVERY_S": "1",
    "DISPATCH_SEARCH_TIMEOUT_S": "300",
}
RECOVERY_LIMIT_S = 60


async def test_a_booking_survives_the_worker_and_beat_killed_and_is_still_dispatched(
    fault_stack,
):
    # Given the real web, worker and beat, a driver online near the pick-up
    stack = fault_stack(env=ENV)
    api = Api(web_url(stack))
    app = rider_ws = None
    try:
        driver = await api.sign_up_and_log_in("driver@faults.test", "driver", PASSWORD)
        rider = await api.sign_up_and_log_in("rider@faults.test", "rider", PASSWORD)
        app = await DriverApp(api, driver, km_north(0.5), then=ACCEPT, drive=False).start()
        rider_ws = await LiveSocket(api, rider).start()

        # and a ride booked a few seconds ahead
        when = timezone.now() + timedelta(seconds=BOOK_AHEAD_S)
        status, trip = await api.call(
            "POST",
            "/api/trip/",
            token=rider.access,
            body={**trip_body(), "scheduled_for": when.isoformat()},
        )
        assert status == 201, trip
        assert trip["status"] == "SCHEDULED"
        due_at = datetime.fromisoformat(trip["scheduled_for"]) - timedelta(seconds=LEAD_S)

        # When the worker and beat are killed before it is due
        killed_at = await asyncio.to_thread(kill_group, stack, "worker1")
        await asyncio.to_thread(kill_group, stack, "beat")
        assert timezone.now() < due_at, "the kill came after the booking was due"

        # and stay dead past its dispatch time: nothing promotes it meanwhile
        await eventually(
            lambda: timezone.now() > due_at + timedelta(seconds=1),
            within=BOOK_AHEAD_S + 5,
            what="the booking's dispatch time passed",
        )
        row = await trip_row(trip["id"])
        assert (row["status"], row["version"]) == ("SCHEDULED", 1)
        assert app.offered_trips() == []

        # and then both start again
        worker = await asyncio.to_thread(add_worker, stack, "worker2")
        await asyncio.to_thread(add_beat, stack, "beat2")
        ready_at = await asyncio.to_thread(wait_worker_ready, worker)

        # Then the booking is promoted and offered to the driver, who takes it.
        await app.live.wait_for("trip.offer", within=RECOVERY_LIMIT_S, where=offer_of(trip["id"]))
        offered_at = asyncio.get_running_loop().time()
        updated = await rider_ws.next("trip.updated", id=trip["id"], status="STARTED")
        assert updated["data"]["driver"]["id"] == driver.id
        row = await trip_row(trip["id"])
        assert (row["status"], row["driver_id"]) == ("STARTED", driver.id)
        assert [(o["driver_id"], o["status"]) for o in await offers(trip_id=trip["id"])] == [
            (driver.id, "ACCEPTED")
        ]
        assert app.offered_trips() == [trip["id"]], "offered once"
        app.check()
        report(
            "scheduled trip, worker and beat kill -9",
            worker_ready_after_kill_s=ready_at - killed_at,
            ready_to_offer_s=offered_at - ready_at,
        )
    finally:
        if app is not None:
            await app.close()
        if rider_ws is not None:
            await rider_ws.close()
        await api.close()
