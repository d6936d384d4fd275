"""Beat faults (issue 6): beat stopped, stopped mid-send, and two beats at once.

Beat only schedules the sweeps; an offer's deadline is its own
`expire_offer` task, queued when the offer is made. So with beat gone,
timeouts still move a trip on. With two beats (the database scheduler: both
read the same periodic-task rows), every sweep runs twice; sweeps and the
dispatch loop are idempotent, so that costs work, never a duplicated offer
or push. A SIGTERM that lands while beat sends a task stops it all the same.
"""

import asyncio
import os
import signal
import time
from collections import Counter
from contextlib import suppress
from datetime import datetime
from pathlib import Path

import pytest
from django.utils import timezone

from dispatch.repair import OVERDUE_GRACE
from tests.dispatch.support import km_north
from tests.faults.apps import (
    ACCEPT,
    DECLINE,
    IGNORE,
    Api,
    DriverApp,
    LiveSocket,
    eventually,
    offer_of,
    report,
)
from tests.faults.processes import (
    add_beat,
    add_worker,
    freeze,
    kill_group,
    log_events,
    log_text,
    redis_port,
    signal_group,
    task_runs,
    terminate_group,
    thaw,
    wait_until,
    wait_worker_ready,
    web_url,
)
from tests.faults.store import (
    StuckWatch,
    offers,
    trip_row,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "Beat-pAssw0rd!7"
OFFER_TIMEOUT_S = 2
SWEEP_EVERY_S = 1
ENV = {
    "DISPATCH_OFFER_TIMEOUT_S": str(OFFER_TIMEOUT_S),
    "DISPATCH_SWEEP_EVERY_S": str(SWEEP_EVERY_S),
    # A trip that runs out of drivers ends at once instead of waiting for
    # supply, so the run can wait for every trip to be final.
    "DISPATCH_SEARCH_TIMEOUT_S": "0",
}
FINAL = {"EXPIRED", "CANCELED", "COMPLETED"}
SWEEP_SENT = "Sending due task taxi: sweep dispatch"


def _log_time(event: dict) -> datetime:
    return datetime.fromisoformat(event["ts"])


def _signal_delivered(pid: int) -> bool:
    """No signal waits for the process any more (/proc's pending masks)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    pending = [line.split()[1] for line in status.splitlines() if line[:6] in ("SigPnd", "ShdPnd")]
    return all(int(mask, 16) == 0 for mask in pending)


def _sent_to_frozen_redis(pid: int, port: int) -> bool:
    """A command of the process's lies unread on the frozen Redis's end of one
    of its connections (/proc/net/tcp's receive queue): it waits for the answer."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]

    def port_of(address: str) -> int:
        return int(address.rsplit(":", 1)[1], 16)

    own_ports = {port_of(row[1]) for row in rows if row[9] in inodes and port_of(row[2]) == port}
    return any(
        port_of(row[1]) == port
        and port_of(row[2]) in own_ports
        and int(row[4].split(":")[1], 16) > 0
        for row in rows
    )


async def test_sigterm_while_beat_sends_a_task_still_stops_it(fault_stack):
    # Given the real processes, and beat caught sending a task: Redis frozen,
    # so the publish after "Sending due task" waits for Redis's answer (what
    # a busy machine makes likely right after that line)
    stack = fault_stack(env=ENV)
    beat, redis = stack.children["beat"], stack.children["redis"]
    await asyncio.to_thread(
        wait_until, lambda: SWEEP_SENT in log_text(beat), within=30, what="beat sending"
    )
    freeze(redis)
    try:
        # (the next send, or the one it was making as Redis froze: its
        # command then waits on Redis's side of the connection)
        sent = log_text(beat).count("Sending due task")
        port = redis_port(stack)
        await asyncio.to_thread(
            wait_until,
            lambda: (
                log_text(beat).count("Sending due task") > sent
                or _sent_to_frozen_redis(beat.pid, port)
            ),
            within=30,
            what="beat sending to the frozen Redis",
        )
        # When the platform stops beat mid-send
        signal_group(beat, signal.SIGTERM)
        await asyncio.to_thread(
            wait_until,
            lambda: _signal_delivered(beat.pid),
            within=10,
            what="SIGTERM delivered to beat",
        )
    finally:
        thaw(redis)

    # Then beat finishes that send and exits cleanly, instead of losing the
    # SIGTERM and running on until it is killed
    await asyncio.to_thread(
        wait_until, lambda: beat.process.poll() is not None, within=30, what="beat exited"
    )
    assert beat.process.returncode == 0
    assert "Couldn't apply scheduled task" not in log_text(beat)


async def test_with_beat_stopped_offers_still_expire_through_their_own_tasks(fault_stack):
    # Given the real processes, and beat stopped as a platform stops it (SIGTERM)
    stack = fault_stack(env=ENV)
    await asyncio.to_thread(
        wait_until, lambda: SWEEP_SENT in log_text(stack.children["beat"]), within=30, what="beat"
    )
    exit_code = await asyncio.to_thread(terminate_group, stack, "beat")
    assert exit_code == 0, "beat stopped cleanly on SIGTERM"
    api = Api(web_url(stack))
    apps: list[DriverApp] = []
    rider_ws = None
    try:
        # and three drivers: the two nearest let their offers run out
        accounts = [
            await api.sign_up_and_log_in(f"{name}@faults.test", "driver", PASSWORD)
            for name in ("first", "second", "third")
        ]
        rider = await api.sign_up_and_log_in("rider@faults.test", "rider", PASSWORD)
        for account, km, then in zip(
            accounts, (0.5, 1.0, 1.5), (IGNORE, IGNORE, ACCEPT), strict=True
        ):
            apps.append(await DriverApp(api, account, km_north(km), then=then, drive=False).start())
        rider_ws = await LiveSocket(api, rider).start()

        # When the rider requests
        requested_at = timezone.now()
        trip = await api.create_trip(rider)

        # Then each timeout moves the trip on, to the third driver, who takes it
        for app in apps:
            await app.live.wait_for("trip.offer", within=20, where=offer_of(trip["id"]))
        for app in apps[:2]:
            revoked = await app.live.wait_for("trip.offer.revoked", within=20)
            assert (revoked["data"]["trip_id"], revoked["data"]["reason"]) == (
                trip["id"],
                "expired",
            )
        updated = await rider_ws.next("trip.updated", within=20, id=trip["id"])
        assert updated["data"]["status"] == "STARTED"
        assert updated["data"]["driver"]["id"] == accounts[2].id
        rows = await offers(trip_id=trip["id"])
        assert [(o["driver_id"], o["status"]) for o in rows] == [
            (accounts[0].id, "EXPIRED"),
            (accounts[1].id, "EXPIRED"),
            (accounts[2].id, "ACCEPTED"),
        ]
        for app in apps:
            app.check()

        # and the expiries were the offers' own tasks, not a sweep: each ran
        # sooner after its deadline than the sweeper's grace, each offer's
        # expire_offer ran, and no sweep reached the worker during the trip
        late_by = [(o["closed_at"] - o["expires_at"]).total_seconds() for o in rows[:2]]
        assert all(0 <= late < OVERDUE_GRACE.total_seconds() for late in late_by), late_by
        worker = stack.children["worker1"]
        expired_by_task = {run["args"] for run in task_runs(worker, "workers.expire_offer")}
        assert all(f"('{o['id']}',)" in expired_by_task for o in rows[:2])
        sweeps = [
            e
            for e in log_events(worker)
            if "workers.sweep_dispatch" in e.get("event", "") and _log_time(e) >= requested_at
        ]
        assert sweeps == []
        report(
            "beat stopped",
            beat_exit_code=exit_code,
            expiry_late_by_s=" / ".join(f"{late:.2f}" for late in late_by),
            sweeps_during_trip=len(sweeps),
        )
    finally:
        for app in apps:
            await app.close()
        if rider_ws is not None:
            await rider_ws.close()
        await api.close()


@pytest.mark.slow
async def test_two_beats_at_once_duplicate_no_offer_and_no_push(fault_stack):
    # Given the real processes with two workers, and a second beat beside the
    # first, both reading the same schedule from the database (so every sweep
    # is sent twice)
    stack = fault_stack(workers=2, env=ENV)
    beats = [stack.children["beat"], await asyncio.to_thread(add_beat, stack, "beat2")]
    for beat in beats:
        await asyncio.to_thread(
            wait_until, lambda b=beat: SWEEP_SENT in log_text(b), within=30, what=beat.name
        )
    api = Api(web_url(stack))
    apps: list[DriverApp] = []
    rider_sockets: list[LiveSocket] = []
    try:
        # and four drivers: two decline everything, one lets offers run out,
        # one takes the first trip it is offered and drives it to the end
        policies = (
            ("decliner1", 0.5, DECLINE),
            ("silent", 0.8, IGNORE),
            ("decliner2", 1.1, DECLINE),
            ("taker", 1.4, "first"),
        )
        for name, km, policy in policies:
            account = await api.sign_up_and_log_in(f"{name}@faults.test", "driver", PASSWORD)
            actions, then = ((ACCEPT,), IGNORE) if policy == "first" else ((), policy)
            app = DriverApp(api, account, km_north(km), actions=actions, then=then)
            apps.append(await app.start())
        riders = [
            await api.sign_up_and_log_in(f"rider{n}@faults.test", "rider", PASSWORD)
            for n in range(4)
        ]
        for rider in riders:
            rider_sockets.append(await LiveSocket(api, rider).start())
        watch = StuckWatch(since=timezone.now(), sweep_every_s=SWEEP_EVERY_S).start()
        started = time.monotonic()

        # When four riders request at once
        trips = await asyncio.gather(
            *(api.create_trip(rider, f"{n} Elm Street") for n, rider in enumerate(riders))
        )
        # and a rider cancels while their trip is offered to the silent driver
        silent = apps[1]
        held = await silent.live.wait_for("trip.offer", within=20)
        held_trip = held["data"]["trip"]["id"]
        (owner,) = [r for r, t in zip(riders, trips, strict=True) if t["id"] == held_trip]
        status, canceled = await api.call(
            "POST", f"/api/trip/{held_trip}/cancel/", token=owner.access, body={}
        )
        assert (status, canceled["status"]) == (200, "CANCELED")
        # and one worker dies with what it held (offers' expiry tasks, maybe a
        # dispatch), so the doubled sweeps have repairs to race on, on two
        # workers again once a new one is up
        await asyncio.to_thread(kill_group, stack, "worker1")
        worker3 = await asyncio.to_thread(add_worker, stack, "worker3")
        await asyncio.to_thread(wait_worker_ready, worker3)

        # Then every trip ends, through declines and timeouts
        async def all_final() -> list[dict]:
            rows = [await trip_row(t["id"]) for t in trips]
            return rows if all(r["status"] in FINAL for r in rows) else []

        final = await eventually(all_final, within=90, what="every trip final")
        elapsed = time.monotonic() - started
        assert await watch.stop() == []
        for app in apps:
            app.check()

        # and the database holds no duplicated offer: one per trip and driver,
        # one live at a time per trip (each made after the previous closed)
        all_offers = await offers(trip_id__in=[t["id"] for t in trips])
        assert all(o["status"] != "PENDING" for o in all_offers)
        pairs = Counter((o["trip_id"], o["driver_id"]) for o in all_offers)
        assert max(pairs.values()) == 1
        for trip in trips:
            mine = [o for o in all_offers if str(o["trip_id"]) == trip["id"]]
            for before, after in zip(mine, mine[1:], strict=False):
                assert before["closed_at"] is not None and before["closed_at"] <= after["created"]

        # and no push was duplicated: each driver's socket got one trip.offer
        # per Offer row and one trip.offer.revoked per offer that expired or
        # was withdrawn, each rider one trip.updated per version, never two.
        # A worker killed with -9 may take with it a push it had not sent yet
        # (the row commits first, the push follows): a push must have arrived
        # when its sender logged the change, which it does after pushing; any
        # other arrived at most once.
        workers = [stack.children[name] for name in ("worker1", "worker2", "worker3")]
        logs = [e for worker in workers for e in log_events(worker)]
        announced = {e["offer_id"] for e in logs if e.get("event") == "dispatch.offered"}
        expiry_told = {e["offer_id"] for e in logs if e.get("event") == "dispatch.offer_expired"}
        trip_expiry_told = {e["trip_id"] for e in logs if e.get("event") == "trip.expired"}
        reasons = {"EXPIRED": {"expired"}, "REVOKED": {"canceled", "expired"}}
        unannounced = 0
        for app in apps:
            rows = {str(o["id"]): o for o in all_offers if o["driver_id"] == app.account.id}
            closed = {i for i, o in rows.items() if o["status"] in reasons}
            must_offer = {i for i in rows if i in announced}
            must_revoke = {i for i in closed if rows[i]["status"] == "REVOKED" or i in expiry_told}
            unannounced += len(rows) - len(must_offer)
            await eventually(
                lambda app=app, o=must_offer, r=must_revoke: (
                    _ids(app.live, "trip.offer") >= o and _ids(app.live, "trip.offer.revoked") >= r
                ),
                within=10,
                what=f"{app.account.username}'s offers and revocations",
            )
            offers_seen = Counter(f["data"]["offer_id"] for f in app.live.of_type("trip.offer"))
            assert set(offers_seen) <= set(rows) and max(offers_seen.values(), default=1) == 1
            revoked = app.live.of_type("trip.offer.revoked")
            revoked_seen = Counter(f["data"]["offer_id"] for f in revoked)
            assert set(revoked_seen) <= closed and max(revoked_seen.values(), default=1) == 1
            for frame in revoked:
                assert frame["data"]["reason"] in reasons[rows[frame["data"]["offer_id"]]["status"]]

        for rider_ws, row in zip(rider_sockets, final, strict=True):
            told = row["status"] != "EXPIRED" or str(row["id"]) in trip_expiry_told
            must = set(range(2, row["version"] + (1 if told else 0)))
            await eventually(
                lambda ws=rider_ws, must=must: _versions(ws) >= must,
                within=10,
                what="the rider's updates",
            )
            seen = Counter(f["data"]["version"] for f in rider_ws.of_type("trip.updated"))
            assert set(seen) <= set(range(2, row["version"] + 1)), seen
            assert max(seen.values(), default=1) == 1, seen

        # and both beats were sending sweeps all along
        sent = [log_text(beat).count(SWEEP_SENT) for beat in beats]
        assert all(count > 0 for count in sent)
        swept = sum(len(task_runs(worker, "workers.sweep_dispatch")) for worker in workers)
        repairs = [e for e in logs if e.get("event") == "dispatch.swept"]
        report(
            "two beats",
            trips=len(trips),
            outcomes="/".join(sorted(r["status"] for r in final)),
            offers=len(all_offers),
            offer_statuses=dict(Counter(o["status"] for o in all_offers)),
            sweeps_sent_per_beat=sent,
            sweeps_run=swept,
            offers_never_announced=unannounced,
            sweep_repairs=(
                f"{sum(e['offers_expired'] for e in repairs)} offers expired, "
                f"{sum(e['trips_redispatched'] for e in repairs)} trips re-dispatched"
            ),
            run_s=elapsed,
        )
    finally:
        for app in apps:
            await app.close()
        for rider_ws in rider_sockets:
            await rider_ws.close()
        await api.close()


def _ids(live: LiveSocket, type_: str) -> set[str]:
    return {f["data"]["offer_id"] for f in live.of_type(type_)}


def _versions(live: LiveSocket) -> set[int]:
    return {f["data"]["version"] for f in live.of_type("trip.updated")}
