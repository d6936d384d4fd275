"""The scenario's whole ride: who books ahead, who does not come out, which
drivers give trips up, what each side rates. Seeded, and separate from every
earlier draw."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sim.scenario import (
    GIVE_UP_AFTER_S,
    GIVE_UP_CODES,
    SimConfig,
    build_scenario,
)
from trips.cancellation import DRIVER_CODES
from trips.serializers import MAX_RATING_TAG_CHARS, MAX_RATING_TAGS

CONFIG = SimConfig(drivers=200, riders=8, rate=10.0, duration_s=60.0, seed=7)


def test_the_shares_follow_the_configuration():
    config = replace(
        CONFIG, no_show_share=0.2, driver_cancel_share=0.3, rating_share=0.6, scheduled_share=0.5
    )
    scenario = build_scenario(config)
    requests, drivers = scenario.requests, scenario.drivers

    assert abs(sum(r.no_show for r in requests) / len(requests) - 0.2) < 0.06
    assert abs(sum(d.gives_up for d in drivers) / len(drivers) - 0.3) < 0.1
    assert abs(sum(r.rating is not None for r in requests) / len(requests) - 0.6) < 0.06
    # Only requests that come due within the run are booked ahead, at the lead asked
    due_in_run = [r for r in requests if r.at_s + config.schedule_ahead_s <= config.duration_s]
    booked = [r for r in requests if r.scheduled_ahead_s is not None]
    assert set(booked) <= set(due_in_run)
    assert abs(len(booked) / len(due_in_run) - 0.5) < 0.08
    assert {r.scheduled_ahead_s for r in booked} == {config.schedule_ahead_s}


def test_the_same_seed_gives_the_same_ride_and_another_seed_another():
    first, second = build_scenario(CONFIG), build_scenario(CONFIG)
    other = build_scenario(replace(CONFIG, seed=8))
    draws = [(d, n) for d in range(CONFIG.drivers) for n in range(3)]

    assert [first.give_up(d, n) for d, n in draws] == [second.give_up(d, n) for d, n in draws]
    assert [first.driver_rating(d, n) for d, n in draws] == [
        second.driver_rating(d, n) for d, n in draws
    ]
    assert [r.no_show for r in first.requests] != [r.no_show for r in other.requests]
    assert [d.gives_up for d in first.drivers] != [d.gives_up for d in other.drivers]


def test_the_whole_ride_reshuffles_nothing_else():
    # Each draw has its own named generator: the same city with or without it.
    plain = replace(
        CONFIG, no_show_share=0.0, driver_cancel_share=0.0, rating_share=0.0, scheduled_share=0.0
    )
    full = replace(
        CONFIG, no_show_share=0.5, driver_cancel_share=0.5, rating_share=1.0, scheduled_share=0.5
    )
    a, b = build_scenario(plain), build_scenario(full)

    assert [replace(d, gives_up=False) for d in b.drivers] == a.drivers
    strip = {"no_show": False, "scheduled_ahead_s": None, "rating": None}
    assert [(r.at_s, r.pick_up, r.drop_off, r.via, r.product) for r in a.requests] == [
        (r.at_s, r.pick_up, r.drop_off, r.via, r.product) for r in b.requests
    ]
    # a booked ride's rider waits for its time, so it has no patience to lose
    assert [replace(r, patience_s=None, **strip) for r in a.requests] == [
        replace(r, patience_s=None, **strip) for r in b.requests
    ]
    assert a.decision(3, 2, 15) == b.decision(3, 2, 15)


def test_a_driver_who_gives_up_does_so_soon_with_a_drivers_reason():
    scenario = build_scenario(replace(CONFIG, driver_cancel_share=0.5))
    givers = [d.index for d in scenario.drivers if d.gives_up]
    keepers = [d.index for d in scenario.drivers if not d.gives_up]

    plans = [scenario.give_up(d, n) for d in givers for n in range(5)]
    assert all(plan is not None for plan in plans)
    assert all(GIVE_UP_AFTER_S[0] <= plan.after_s <= GIVE_UP_AFTER_S[1] for plan in plans)
    assert {plan.reason_code for plan in plans} == set(GIVE_UP_CODES)
    # a no-show is not a reason to give a trip up: that one cancels it
    assert set(GIVE_UP_CODES) <= DRIVER_CODES - {"rider_no_show"}
    assert all(scenario.give_up(d, n) is None for d in keepers for n in range(5))


def test_ratings_are_what_the_server_takes():
    scenario = build_scenario(replace(CONFIG, rating_share=1.0))
    ratings = [r.rating for r in scenario.requests]
    ratings += [scenario.driver_rating(d, n) for d in range(50) for n in range(4)]

    assert all(rating is not None for rating in ratings)
    stars = [rating.stars for rating in ratings]
    assert set(stars) <= {1, 2, 3, 4, 5} and len(set(stars)) >= 3
    assert sum(stars) / len(stars) > 4  # mostly good
    for rating in ratings:
        body = rating.body()
        assert body == {"stars": rating.stars, "tags": list(rating.tags)}
        assert len(body["tags"]) <= min(2, MAX_RATING_TAGS)
        assert all(tag.strip() and len(tag) <= MAX_RATING_TAG_CHARS for tag in body["tags"])
        assert len(set(body["tags"])) == len(body["tags"])


def test_a_rider_who_comes_out_does_so_well_within_the_no_show_wait():
    scenario = build_scenario(replace(CONFIG, no_show_wait_s=1.0))

    assert all(0 < r.walk_s <= 0.5 for r in scenario.requests)


def test_a_booked_ride_names_its_time():
    request = build_scenario(replace(CONFIG, scheduled_share=1.0)).requests[0]
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

    body = request.scheduled_body(request.priced_body("q-1"), at)
    assert body["scheduled_for"] == "2030-01-02T03:04:05+00:00"
    assert body["quote_id"] == "q-1" and body["pick_up_lat"] == request.pick_up.lat


@pytest.mark.parametrize(
    "changes",
    [
        {"no_show_share": 1.5},
        {"driver_cancel_share": -0.1},
        {"rating_share": 2},
        {"scheduled_share": -1},
        {"no_show_wait_s": 0},
        {"schedule_ahead_s": -5},
        {"on_time_tolerance_s": -1},
    ],
)
def test_impossible_ride_settings_are_refused(changes):
    with pytest.raises(ValueError):
        replace(CONFIG, **changes)
