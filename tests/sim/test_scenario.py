"""The simulator's scenario is a pure function of its configuration and seed."""

from collections import Counter
from dataclasses import replace

import pytest

from sim.geo import DEFAULT_BBOX, BBox, Point, distance_km
from sim.scenario import ANSWER_BEFORE_TIMEOUT, Action, SimConfig, build_scenario

CONFIG = SimConfig(drivers=12, riders=8, rate=2.0, duration_s=30.0, seed=7)


def test_the_same_seed_gives_the_same_city():
    # Given one configuration, built twice
    first, second = build_scenario(CONFIG), build_scenario(CONFIG)

    # Then agents, positions, the request schedule and every decision agree
    assert first.drivers == second.drivers
    assert first.rider_usernames == second.rider_usernames
    assert first.requests == second.requests
    decisions = [(d, n) for d in range(CONFIG.drivers) for n in range(5)]
    assert [first.decision(d, n, 15) for d, n in decisions] == [
        second.decision(d, n, 15) for d, n in decisions
    ]
    assert [first.wander_target(d, 3) for d in range(CONFIG.drivers)] == [
        second.wander_target(d, 3) for d in range(CONFIG.drivers)
    ]


def test_another_seed_gives_another_city():
    first, other = build_scenario(CONFIG), build_scenario(replace(CONFIG, seed=8))

    assert [d.start for d in first.drivers] != [d.start for d in other.drivers]
    assert [r.at_s for r in first.requests] != [r.at_s for r in other.requests]


def test_more_drivers_leave_the_first_drivers_and_the_requests_alone():
    # Each draw has its own named generator: growing the fleet reshuffles nothing.
    small, large = build_scenario(CONFIG), build_scenario(replace(CONFIG, drivers=40))

    assert large.drivers[: CONFIG.drivers] == small.drivers
    assert large.requests == small.requests
    assert large.decision(3, 2, 15) == small.decision(3, 2, 15)


def test_requests_arrive_within_the_run_inside_the_box():
    scenario = build_scenario(CONFIG)
    times = [r.at_s for r in scenario.requests]
    bbox = CONFIG.bbox

    assert times == sorted(times) and 0 < times[0] and times[-1] < CONFIG.duration_s
    # About rate x duration arrivals (Poisson: 60 expected; far outside is a bug).
    assert 30 < len(times) < 100
    assert [r.number for r in scenario.requests] == list(range(len(times)))
    for request in scenario.requests:
        for point in (request.pick_up, request.drop_off):
            assert bbox.clamp(point) == point
        assert distance_km(request.pick_up, request.drop_off) >= 0.1
        assert request.via in ("ws", "rest")
        body = request.body()
        assert (
            body["pick_up_lat"] == request.pick_up.lat
            and body["drop_off_lng"] == request.drop_off.lng
        )


def test_decisions_follow_the_probabilities_and_beat_the_timeout():
    config = replace(CONFIG, accept_prob=0.6, silent_prob=0.25)
    scenario = build_scenario(config)
    decisions = [scenario.decision(d, n, 10.0) for d in range(50) for n in range(40)]
    shares = Counter(d.action for d in decisions)

    assert abs(shares[Action.ACCEPT] / len(decisions) - 0.6) < 0.05
    assert abs(shares[Action.SILENT] / len(decisions) - 0.25) < 0.05
    assert abs(shares[Action.DECLINE] / len(decisions) - 0.15) < 0.05
    assert all(0 < d.delay_s <= 10.0 * ANSWER_BEFORE_TIMEOUT for d in decisions)


def test_every_driver_accepts_when_told_to():
    scenario = build_scenario(replace(CONFIG, accept_prob=1.0, silent_prob=0.0))

    assert {scenario.decision(d, n, 15).action for d in range(10) for n in range(10)} == {
        Action.ACCEPT
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"accept_prob": 0.8, "silent_prob": 0.3},
        {"accept_prob": 1.5},
        {"rate": 0},
        {"riders": 0},
        {"time_scale": -1},
    ],
)
def test_impossible_configurations_are_refused(changes):
    with pytest.raises(ValueError):
        replace(CONFIG, **changes)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "39,-77,38,-76", "0,190,1,191"])
def test_a_bad_bbox_is_refused(text):
    with pytest.raises(ValueError):
        BBox.parse(text)


def test_the_default_bbox_round_trips():
    assert BBox.parse(str(DEFAULT_BBOX)) == DEFAULT_BBOX
    assert DEFAULT_BBOX.point_at(0, 0) == Point(DEFAULT_BBOX.south, DEFAULT_BBOX.west)
