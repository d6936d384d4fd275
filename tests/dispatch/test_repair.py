"""The repair sweep (`dispatch.repair`): lost expiry tasks and stranded trips,
repaired once however many sweepers run."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from dispatch import presence
from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from dispatch.repair import SweepResult, dispatch_repair
from taxi.infra.redis import get_redis
from tests.dispatch.support import available, dispatch_tasks_for, queued_tasks, request_trip
from trips.models import Trip

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_sweeper_expires_an_offer_whose_task_was_lost(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)
    lost = Offer.objects.create(
        trip=trip, driver=near, expires_at=timezone.now() - timedelta(seconds=10)
    )
    presence.mark_offered(near.pk)

    first = dispatch_repair()
    second = dispatch_repair()

    assert first.offers_expired == 1 and second.offers_expired == 0
    lost.refresh_from_db()
    assert lost.status == Offer.Status.EXPIRED
    assert near.pk in available()
    assert dispatch_tasks_for(trip) >= 1


def test_two_sweepers_at_once_expire_a_lost_offer_once(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)
    Offer.objects.create(trip=trip, driver=near, expires_at=timezone.now() - timedelta(seconds=10))
    get_redis().delete("celery")
    barrier = threading.Barrier(2)
    results = []

    def sweep():
        try:
            barrier.wait()
            results.append(dispatch_repair())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.offers_expired for r in results) == [0, 1]
    assert dispatch_tasks_for(trip) == 1, "one next dispatch, not two"


def test_the_sweeper_requeues_a_trip_left_without_an_offer_but_not_a_fresh_one(rider, make_user):
    stranded = request_trip(rider)
    Trip.objects.filter(pk=stranded.pk).update(
        created=timezone.now() - timedelta(seconds=30),
        updated=timezone.now() - timedelta(seconds=30),
    )
    fresh = request_trip(make_user("rider"))
    get_redis().delete("celery")

    result = dispatch_repair()

    assert result.trips_redispatched == 1
    assert queued_tasks() == [("workers.dispatch_trip", [str(stranded.pk)])]
    assert dispatch_tasks_for(fresh) == 0


def test_the_sweeper_leaves_a_trip_with_a_live_offer_alone(rider, driver_at):
    driver_at(0.4)
    trip = request_trip(rider)
    trip_offer_next(trip_id=trip.pk)
    then = timezone.now() - timedelta(seconds=30)
    Trip.objects.filter(pk=trip.pk).update(created=then, updated=then)
    get_redis().delete("celery")

    result = dispatch_repair()

    assert result == SweepResult()
    assert queued_tasks() == []
