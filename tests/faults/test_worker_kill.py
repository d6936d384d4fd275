"""`kill -9` of the worker while an offer is pending (issue 6, faults).

The worker held the offer's `expire_offer` task (queued with a countdown,
acknowledged late): it dies with the worker, and Redis would hand it out
again only after the visibility timeout (an hour). The trip must not wait
that long: a new worker's sweeper closes the overdue offer and the trip goes
on to the next driver.
"""

import asyncio
import time
from datetime import datetime

import pytest
from django.utils import timezone

from tests.dispatch.support import km_north
from tests.faults.apps import (
    ACCEPT,
    IGNORE,
    Api,
    DriverApp,
    LiveSocket,
    offer_of,
    report,
)
from tests.faults.processes import (
    add_worker,
    kill_group,
    log_events,
    queued_tasks,
    reserved_tasks,
    wait_until,
    wait_worker_ready,
    web_url,
)
from tests.faults.store import (
    StuckWatch,
    offers,
    trip_row,
)
from workers.queue import EXPIRE_OFFER

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "Kill-9-pAssw0rd!"
OFFER_TIMEOUT_S = 2
SWEEP_EVERY_S = 1
ENV = {
    "DISPATCH_OFFER_TIMEOUT_S": str(OFFER_TIMEOUT_S),
    "DISPATCH_SWEEP_EVERY_S": str(SWEEP_EVERY_S),
}
RECOVERY_LIMIT_S = 60


async def test_a_worker_killed_while_an_offer_is_pending_loses_no_trip(fault_stack):
    # Given the real web, worker and beat, two drivers online over real sockets
    # (the nearer one lets every offer run out) and a rider
    stack = fault_stack(env=ENV)
    api = Api(web_url(stack))
    apps: list[DriverApp] = []
    rider_ws = None
    try:
        near = await api.sign_up_and_log_in("near@faults.test", "driver", PASSWORD)
        far = await api.sign_up_and_log_in("far@faults.test", "driver", PASSWORD)
        rider = await api.sign_up_and_log_in("rider@faults.test", "rider", PASSWORD)
        near_app = await DriverApp(api, near, km_north(0.5), then=IGNORE).start()
        apps.append(near_app)
        far_app = await DriverApp(api, far, km_north(1.5), then=ACCEPT, drive=False).start()
        apps.append(far_app)
        rider_ws = await LiveSocket(api, rider).start()

        # When the rider requests and the nearest driver is offered the trip
        trip = await api.create_trip(rider)
        offer = await near_app.live.wait_for("trip.offer", where=offer_of(trip["id"]))
        deadline = datetime.fromisoformat(offer["data"]["expires_at"])

        # and the worker is killed, its pool with it, before the offer's
        # deadline, once it holds the offer's expiry (a task still in the
        # queue would go to the next worker, and no sweep would be needed)
        expiry = (EXPIRE_OFFER, [offer["data"]["offer_id"]])
        await asyncio.to_thread(
            wait_until,
            lambda: expiry in reserved_tasks(stack) and expiry not in queued_tasks(stack),
            within=OFFER_TIMEOUT_S,
            what="the worker holding the offer's expiry",
            every=0.02,
        )
        killed_at = await asyncio.to_thread(kill_group, stack, "worker1")
        assert timezone.now() < deadline, "the kill came after the offer's deadline"
        assert [o["status"] for o in await offers(trip_id=trip["id"])] == ["PENDING"]

        # and a new worker starts
        worker = await asyncio.to_thread(add_worker, stack, "worker2")
        ready_at = await asyncio.to_thread(wait_worker_ready, worker)
        watch = StuckWatch(since=timezone.now(), sweep_every_s=SWEEP_EVERY_S).start()

        # Then within 60 s the trip reaches the next driver, the first offer
        # having timed out, and the next driver can take it
        await far_app.live.wait_for(
            "trip.offer", within=RECOVERY_LIMIT_S, where=offer_of(trip["id"])
        )
        next_at = time.monotonic()
        revoked = await near_app.live.wait_for("trip.offer.revoked")
        assert revoked["data"] == {
            "trip_id": trip["id"],
            "offer_id": offer["data"]["offer_id"],
            "reason": "expired",
        }
        updated = await rider_ws.next("trip.updated", id=trip["id"])
        assert (updated["data"]["status"], updated["data"]["driver"]["id"]) == ("STARTED", far.id)

        # and nothing stayed stuck: no live offer past its deadline, no
        # REQUESTED trip without a live offer, beyond the sweeper's delays
        assert await watch.stop() == []
        rows = await offers(trip_id=trip["id"])
        assert [(o["driver_id"], o["status"]) for o in rows] == [
            (near.id, "EXPIRED"),
            (far.id, "ACCEPTED"),
        ]
        stored = await trip_row(trip["id"])
        assert (stored["status"], stored["driver_id"], stored["version"]) == ("STARTED", far.id, 2)
        # and the first driver was offered the trip once, the second once
        assert near_app.offered_trips() == [trip["id"]]
        assert far_app.offered_trips() == [trip["id"]]
        for app in apps:
            app.check()

        # The new worker's sweeper closed the overdue offer: its expire task
        # died with the old worker.
        swept = [
            e
            for e in log_events(worker)
            if e.get("event") == "dispatch.swept" and e.get("offers_expired", 0) >= 1
        ]
        assert swept, "the overdue offer was closed by the sweeper"
        report(
            "worker kill -9",
            worker_ready_after_kill_s=ready_at - killed_at,
            kill_to_next_offer_s=next_at - killed_at,
            offer_closed_late_by_s=(rows[0]["closed_at"] - deadline).total_seconds(),
            stuck_samples=watch.samples,
        )
    finally:
        for app in apps:
            await app.close()
        if rider_ws is not None:
            await rider_ws.close()
        await api.close()
