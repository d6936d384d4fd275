"""Each task run twice, late, or with garbage changes nothing it should not.

Tasks are run in-process with `apply()` (the worker's code path without the
broker); what they queue is read back from the real broker."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError
from django.utils import timezone

from dispatch import keys
from dispatch.models import Offer
from taxi.celery import app
from taxi.infra.redis import get_redis
from tests.dispatch.support import driver_state, next_frame, put_online, queued_tasks, request_trip
from trips.models import Trip
from workers import tasks

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_sync_thread_connections"),
]

ALL_TASKS = [
    tasks.dispatch_trip,
    tasks.expire_offer,
    tasks.sweep_dispatch,
    tasks.expire_stale_trips,
    tasks.sweep_silent_drivers,
    tasks.refresh_surge,
]


def run(task, *args):
    return database_sync_to_async(lambda: task.apply(args=args).get())()


def setup_offer(rider, near, second=None):
    put_online(near, 0.4)
    if second is not None:
        put_online(second, 1.2)
    trip = request_trip(rider)
    tasks.dispatch_trip.apply(args=[str(trip.pk)])
    get_redis().delete("celery")  # the broker forgets what was queued so far
    return trip, Offer.objects.get(trip=trip)


def make_overdue(offer):
    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=5))


def test_every_task_is_named_json_late_acked_time_limited_and_retried_on_transient_errors():
    for task in ALL_TASKS:
        assert task.name.startswith("workers.") and task.name in app.tasks
        assert task.serializer == "json"
        assert task.acks_late and task.reject_on_worker_lost
        assert 0 < task.soft_time_limit < task.time_limit
        assert OperationalError in task.autoretry_for
        assert task.ignore_result


async def test_dispatch_trip_twice_offers_once(rider, make_user, ws_connect):
    near = await database_sync_to_async(make_user)("driver")
    await database_sync_to_async(put_online)(near, 0.4)
    near_ws, _, _ = await ws_connect(near)
    trip = await database_sync_to_async(request_trip)(rider)

    await run(tasks.dispatch_trip, str(trip.pk))
    await run(tasks.dispatch_trip, str(trip.pk))

    await next_frame(near_ws, "trip.offer")
    assert await near_ws.receive_nothing(timeout=0.3), "exactly one trip.offer"
    assert await database_sync_to_async(Offer.objects.filter(trip=trip).count)() == 1


async def test_expire_offer_twice_revokes_once_and_moves_on_once(rider, make_user, ws_connect):
    near, second = [await database_sync_to_async(make_user)("driver") for _ in range(2)]
    trip, offer = await database_sync_to_async(setup_offer)(rider, near, second)
    near_ws, _, _ = await ws_connect(near)
    await database_sync_to_async(make_overdue)(offer)

    await run(tasks.expire_offer, str(offer.pk))
    await run(tasks.expire_offer, str(offer.pk))

    revoked = await next_frame(near_ws, "trip.offer.revoked")
    assert revoked["data"]["reason"] == "expired"
    assert await near_ws.receive_nothing(timeout=0.3), "one revoke"
    assert queued_tasks() == [("workers.dispatch_trip", [str(trip.pk)])], "one next dispatch"
    assert driver_state(near.pk)["state"] == keys.STATE_FREE


def test_expire_offer_run_early_waits_for_the_rest_of_the_timeout(rider, make_user):
    trip, offer = setup_offer(rider, make_user("driver"))

    tasks.expire_offer.apply(args=[str(offer.pk)])

    offer.refresh_from_db()
    assert offer.status == Offer.Status.PENDING
    assert queued_tasks() == [("workers.expire_offer", [str(offer.pk)])]
    message = get_redis().lindex("celery", 0)
    assert '"eta": "' in message, "re-queued for later, not for now"


def test_expire_offer_after_an_accept_changes_nothing(rider, make_user):
    from trips.services import trip_accept

    near = make_user("driver")
    trip, offer = setup_offer(rider, near)
    trip_accept(trip_id=trip.pk, driver=near)
    make_overdue(offer)

    tasks.expire_offer.apply(args=[str(offer.pk)])

    offer.refresh_from_db()
    trip.refresh_from_db()
    assert (offer.status, trip.status) == (Offer.Status.ACCEPTED, Trip.Status.STARTED)
    assert queued_tasks() == []


def test_sweep_dispatch_twice_expires_a_lost_offer_once(rider, make_user):
    trip, offer = setup_offer(rider, make_user("driver"))
    make_overdue(offer)

    tasks.sweep_dispatch.apply()
    tasks.sweep_dispatch.apply()

    offer.refresh_from_db()
    assert offer.status == Offer.Status.EXPIRED
    assert queued_tasks() == [("workers.dispatch_trip", [str(trip.pk)])]


async def test_expire_stale_trips_twice_tells_the_rider_once(
    rider, make_user, ws_connect, settings
):
    near = await database_sync_to_async(make_user)("driver")
    trip, _ = await database_sync_to_async(setup_offer)(rider, near)
    age = timedelta(seconds=settings.TRIP_STALE_AFTER_S + 1)
    await database_sync_to_async(
        lambda: Trip.objects.filter(pk=trip.pk).update(
            created=timezone.now() - age, updated=timezone.now() - age
        )
    )()
    rider_ws, _, _ = await ws_connect(rider)

    await run(tasks.expire_stale_trips)
    await run(tasks.expire_stale_trips)

    updated = await next_frame(rider_ws, "trip.updated")
    assert (updated["data"]["status"], updated["data"]["status_reason"]) == ("EXPIRED", "stale")
    assert await rider_ws.receive_nothing(timeout=0.3), "one trip.updated"


def test_sweep_silent_drivers_twice_is_the_same_as_once(make_user):
    fresh, silent = make_user("driver"), make_user("driver")
    put_online(fresh, 0.5)
    put_online(silent, 0.6)
    get_redis().zadd(keys.LAST_SEEN, {silent.pk: 1.0})

    tasks.sweep_silent_drivers.apply()
    tasks.sweep_silent_drivers.apply()

    assert get_redis().zrange(keys.AVAILABLE, 0, -1) == [str(fresh.pk)]


@pytest.mark.parametrize("task", [tasks.dispatch_trip, tasks.expire_offer])
@pytest.mark.parametrize("argument", ["not-a-uuid", "", "00000000-0000-4000-8000-000000000000"])
def test_a_bad_or_unknown_id_is_shrugged_off(task, argument):
    result = task.apply(args=[argument])

    assert result.successful()
    assert queued_tasks() == []
    assert not Offer.objects.exists()
