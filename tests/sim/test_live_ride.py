"""The whole ride in a simulated town against a real stack: no-shows, drivers
who give trips up, rides booked ahead, the ride PIN and ratings. Each run's
KPIs are checked against what the database says happened."""

from dataclasses import replace

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from sim.run import run
from sim.scenario import SimConfig, build_scenario
from tests.sim.live import SMALL_TOWN, sim_stack, trips_left_open
from trips.models import Rating, Trip, TripEvent

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Every driver accepts every offer, at once; every car serves every request;
# no rider runs out of patience or walks away from a price. Each test turns
# on the part of the ride it is about.
TOWN = SimConfig(
    drivers=6,
    riders=4,
    rate=1.0,
    duration_s=8.0,
    accept_prob=1.0,
    silent_prob=0.0,
    cancel_prob=0.0,
    bbox=SMALL_TOWN,
    time_scale=100.0,
    ping_every_s=0.5,
    drain_s=15.0,
    xl_driver_share=0.0,
    xl_request_share=0.0,
    surge_decline_share=0.0,
    no_show_share=0.0,
    driver_cancel_share=0.0,
    scheduled_share=0.0,
    rating_share=0.0,
)


@pytest.fixture
def stack_with(transactional_db, catalogue, tmp_path):
    """`with stack_with(NAME=value, ...) as stack`: a stack with those settings."""

    def start(**env: str):
        return sim_stack(tmp_path / "stack", **env)

    return start


async def test_riders_who_never_come_out_are_canceled_as_no_shows(stack_with):
    # Given a server whose drivers may cancel for a no-show after 1 s, and
    # riders none of whom comes out to the car (the drivers wait 1.5 s)
    config = replace(TOWN, seed=3, duration_s=10.0, no_show_share=1.0, no_show_wait_s=1.5)
    with stack_with(NO_SHOW_WAIT_S="1") as stack:
        # When the town runs
        report = await run(replace(config, base_url=stack.web_urls[0]))

    # Then every pick-up that resolved was a no-show, and nobody rode
    kpis = report["kpis"]
    no_shows = kpis["no_shows"]
    assert no_shows["count"] >= 2
    assert kpis["no_show_rate"] == 1.0
    assert no_shows["too_early"] == 0  # the drivers waited long enough
    assert kpis["trips"]["completed"] == 0 and kpis["driver_cancels"]["count"] == 0
    assert kpis["errors"] == 0
    # and the database has exactly those trips canceled for a no-show, each
    # charged the cancellation fee, and none picked up
    canceled = await _no_show_trips()
    assert len(canceled) == no_shows["count"]
    assert all(fee is not None and fee > 0 for fee in canceled.values())
    assert await _trips_that_reached(Trip.Status.IN_PROGRESS) == 0
    assert await trips_left_open() == 0


async def test_a_trip_its_driver_gives_up_is_dispatched_again_and_served(stack_with):
    # Given a town where three of the six drivers give up every trip they
    # accept (dispatch leaves a driver out of a trip it gave up: the fourth
    # offer at the latest goes to one who keeps it, within DISPATCH_MAX_OFFERS)
    config = replace(TOWN, seed=12, riders=6, rate=1.5, duration_s=6.0, driver_cancel_share=0.5)
    givers = [d.index for d in build_scenario(config).drivers if d.gives_up]
    assert len(givers) == 3  # the seed's draw
    with stack_with() as stack:
        # When the town runs
        report = await run(replace(config, base_url=stack.web_urls[0]))

    # Then trips went back to dispatch, and each one was matched again, by a
    # driver who kept it (or, given up as the run ended, was still waiting
    # for one): none expired
    kpis = report["kpis"]
    back, gave_up = kpis["redispatches"], kpis["driver_cancels"]
    assert gave_up["count"] >= 1
    assert set(gave_up["by_reason"]) <= {"vehicle_issue", "other"}
    assert 1 <= back["trips"] <= back["count"] <= gave_up["count"]
    assert back["rematched"] >= 1
    assert back["rematched"] + back["open_at_end"] >= back["trips"]
    assert back["expired"] == 0 and kpis["trips"]["expired"] == 0
    assert 0 < back["share"] <= 1
    assert kpis["trips"]["matched"] == kpis["trips"]["requested"]
    # and in the database every trip given up went back to REQUESTED
    # (driver_canceled) and was then taken by another driver, or canceled
    # by its rider as the run ended
    histories = await _given_up_histories()
    assert len(histories) >= back["trips"]
    for moves in histories.values():
        last_return = max(i for i, move in enumerate(moves) if move[1] == "driver_canceled")
        assert moves[last_return][0] == "REQUESTED"
        after = moves[last_return + 1 :]
        assert ("STARTED", None) in after or after[-1:] == [("CANCELED", "sim_ended")]
        assert "EXPIRED" not in {to for to, _ in moves}
    assert await trips_left_open() == 0


async def test_rides_booked_ahead_are_served_on_time_with_the_pin_and_rated(stack_with):
    # Given a server that books rides from 4 s ahead, dispatches them 6 s
    # before their time, wants the rider's PIN to start a ride, and a town
    # with drivers to spare whose riders book every ride they can 8 s ahead,
    # and rate every ride both ways
    config = replace(
        TOWN,
        seed=5,
        rate=0.6,
        duration_s=14.0,
        scheduled_share=1.0,
        schedule_ahead_s=8.0,
        on_time_tolerance_s=5.0,
        rating_share=1.0,
    )
    booked = [r for r in build_scenario(config).requests if r.scheduled_ahead_s is not None]
    assert len(booked) >= 2
    env = {
        "SCHEDULE_MIN_AHEAD_S": "4",
        "SCHEDULE_DISPATCH_LEAD_S": "6",
        "SCHEDULE_SWEEP_EVERY_S": "1",
        "RIDE_PIN_REQUIRED": "1",
    }
    with stack_with(**env) as stack:
        # When the town runs
        report = await run(replace(config, base_url=stack.web_urls[0]))

    # Then every ride booked ahead was booked, and a driver reached it in time
    kpis = report["kpis"]
    scheduled = kpis["scheduled"]
    assert scheduled["refused"] == 0
    assert scheduled["count"] == scheduled["asked"] >= 2
    assert scheduled["on_time"] == scheduled["count"]
    assert scheduled["late"] == scheduled["expired"] == scheduled["unserved"] == 0
    assert scheduled["late_not_reached"] == 0
    assert scheduled["arrival_vs_time_s"]["max"] <= 5.0
    # and waiting for their time did not count as waiting for a driver
    immediate = kpis["trips"]["matched"] - scheduled["count"]
    assert kpis["time_to_match_ms"]["count"] == immediate
    # and the server has them as booked ahead, dispatched by the service
    assert await _dispatched_from_schedule() == scheduled["count"]
    # and every ride started with the rider's PIN (a wrong one is an error)
    assert kpis["errors"] == 0
    assert kpis["trips"]["completed"] >= 2
    # and every ride completed was rated by its rider, the drivers rated
    # theirs, and the database holds those ratings and nothing else
    ratings = kpis["ratings"]
    assert ratings["failed"] == 0
    assert ratings["rider_to_driver"]["count"] == kpis["trips"]["completed"]
    assert ratings["driver_to_rider"]["count"] >= 1
    assert 1 <= ratings["rider_to_driver"]["mean_stars"] <= 5
    stored = await _ratings_by_side()
    assert stored == {
        Rating.Side.RIDER: ratings["rider_to_driver"]["count"],
        Rating.Side.DRIVER: ratings["driver_to_rider"]["count"],
    }
    assert await trips_left_open() == 0


@database_sync_to_async
def _no_show_trips() -> dict:
    try:
        return dict(
            Trip.objects.filter(
                status=Trip.Status.CANCELED, cancel_reason_code="rider_no_show"
            ).values_list("pk", "cancellation_fee")
        )
    finally:
        connection.close()


@database_sync_to_async
def _trips_that_reached(status: str) -> int:
    try:
        return TripEvent.objects.filter(to_status=status).values("trip").distinct().count()
    finally:
        connection.close()


@database_sync_to_async
def _given_up_histories() -> dict:
    """Each trip a driver gave up: its moves, oldest first, as (to, reason)."""
    try:
        given_up = TripEvent.objects.filter(reason=Trip.Reason.DRIVER_CANCELED).values("trip")
        histories: dict = {}
        for event in TripEvent.objects.filter(trip__in=given_up).order_by("at", "pk"):
            histories.setdefault(event.trip_id, []).append((event.to_status, event.reason))
        return histories
    finally:
        connection.close()


@database_sync_to_async
def _dispatched_from_schedule() -> int:
    try:
        return (
            TripEvent.objects.filter(
                from_status=Trip.Status.SCHEDULED,
                to_status=Trip.Status.REQUESTED,
                by=TripEvent.By.SERVICE,
                trip__scheduled_for__isnull=False,
            )
            .values("trip")
            .distinct()
            .count()
        )
    finally:
        connection.close()


@database_sync_to_async
def _ratings_by_side() -> dict:
    try:
        sides: dict = {}
        for side in Rating.objects.values_list("side", flat=True):
            sides[side] = sides.get(side, 0) + 1
        return sides
    finally:
        connection.close()
