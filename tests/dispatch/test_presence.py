"""Presence in Redis: the Lua scripts' availability rules, forwarding, TTLs.

Real Redis (the test database); the clock is the only thing set by hand.
"""

from datetime import UTC, datetime

import pytest
from django.conf import settings

from dispatch import keys, presence
from taxi.infra.redis import get_redis
from tests.dispatch.support import driver_state

HERE = (38.8977, -77.0365)
DRIVER, OTHER = 101, 102
TRIP_ID = "3f1c0000-0000-4000-8000-000000000001"
OTHER_TRIP_ID = "3f1c0000-0000-4000-8000-000000000002"
RIDER = 7


def available() -> set[int]:
    return {int(m) for m in get_redis().zrange(keys.AVAILABLE, 0, -1)}


def position(driver_id: int) -> tuple[float, float]:
    lng, lat = get_redis().geopos(keys.AVAILABLE, driver_id)[0]
    return lat, lng


def assert_every_key_expires():
    client = get_redis()
    names = client.keys(keys.PREFIX + "*")
    assert names, "nothing stored"
    for name in names:
        assert client.ttl(name) > 0, f"{name} has no TTL"


def test_online_puts_a_free_driver_in_the_available_set(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])

    assert available() == {DRIVER}
    assert position(DRIVER) == pytest.approx(HERE, abs=1e-5)
    state = driver_state(DRIVER)
    assert state["online"] == "1" and state["state"] == keys.STATE_FREE
    assert get_redis().zscore(keys.LAST_SEEN, DRIVER) == pytest.approx(clock.now)
    assert_every_key_expires()


def test_online_while_on_a_trip_keeps_the_driver_out_of_the_available_set(clock):
    presence.set_online(
        DRIVER, lat=HERE[0], lng=HERE[1], state=keys.STATE_ON_TRIP, trip_id=TRIP_ID, rider_id=RIDER
    )

    assert available() == set()
    assert driver_state(DRIVER)["trip"] == TRIP_ID
    assert presence.ping(DRIVER, lat=HERE[0], lng=HERE[1]) == presence.Forward(TRIP_ID, RIDER)


def test_a_ping_moves_an_available_driver_in_one_call(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(10)  # 400 m: a plausible drive in that time

    forward = presence.ping(DRIVER, lat=38.9, lng=-77.04)

    assert forward is None
    assert position(DRIVER) == pytest.approx((38.9, -77.04), abs=1e-5)
    assert get_redis().zscore(keys.LAST_SEEN, DRIVER) == pytest.approx(clock.now)
    assert_every_key_expires()


def test_a_ping_from_a_driver_who_never_went_online_makes_nobody_available(clock):
    presence.ping(DRIVER, lat=HERE[0], lng=HERE[1])

    assert available() == set()
    assert get_redis().zscore(keys.LAST_SEEN, DRIVER) is None
    assert_every_key_expires()


def test_an_offered_driver_leaves_the_set_and_pings_do_not_bring_them_back(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.set_online(OTHER, lat=HERE[0], lng=HERE[1])

    presence.mark_offered(DRIVER)
    presence.ping(DRIVER, lat=HERE[0], lng=HERE[1])

    assert available() == {OTHER}
    assert driver_state(DRIVER)["state"] == keys.STATE_OFFERED


def test_release_brings_an_online_fresh_driver_back_where_they_last_were(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.mark_offered(DRIVER)
    clock.advance(5)
    presence.ping(DRIVER, lat=38.899, lng=-77.037)

    assert presence.on_driver_released(DRIVER) is True

    assert available() == {DRIVER}
    assert position(DRIVER) == pytest.approx((38.899, -77.037), abs=1e-5)
    assert driver_state(DRIVER)["state"] == keys.STATE_FREE


def test_release_leaves_an_offline_driver_out(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.mark_offered(DRIVER)
    presence.set_offline(DRIVER)

    assert presence.on_driver_released(DRIVER) is False
    assert available() == set()


def test_release_leaves_a_silent_driver_out(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.mark_offered(DRIVER)
    clock.advance(settings.DRIVER_PRESENCE_TTL_S + 1)

    assert presence.on_driver_released(DRIVER) is False
    assert available() == set()


def test_release_of_a_driver_redis_never_heard_of_creates_nothing(clock):
    assert presence.on_driver_released(DRIVER) is False
    assert get_redis().keys(keys.PREFIX + "*") == []


def test_an_assigned_driver_streams_to_the_rider_at_most_every_quarter_second(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.on_driver_assigned(DRIVER, trip_id=TRIP_ID, rider_id=RIDER)
    assert available() == set()

    first = presence.ping(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(0.1)
    too_soon = presence.ping(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(keys.FORWARD_MIN_INTERVAL_S)
    again = presence.ping(DRIVER, lat=HERE[0], lng=HERE[1])

    assert first == presence.Forward(trip_id=TRIP_ID, rider_id=RIDER)
    assert too_soon is None
    assert again == first
    assert available() == set(), "pings on a trip never make the driver available"
    assert_every_key_expires()


async def test_the_async_ping_makes_the_same_decisions(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.on_driver_assigned(DRIVER, trip_id=TRIP_ID, rider_id=RIDER)

    first = await presence.aping(DRIVER, lat=HERE[0], lng=HERE[1])
    too_soon = await presence.aping(DRIVER, lat=HERE[0], lng=HERE[1])

    assert first == presence.Forward(trip_id=TRIP_ID, rider_id=RIDER)
    assert too_soon is None


def test_after_the_trip_positions_stop_going_to_the_rider(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.on_driver_assigned(DRIVER, trip_id=TRIP_ID, rider_id=RIDER)

    presence.on_driver_released(DRIVER)
    clock.advance(1)

    assert presence.ping(DRIVER, lat=HERE[0], lng=HERE[1]) is None
    assert available() == {DRIVER}
    assert "trip" not in driver_state(DRIVER)


def test_a_late_assignment_of_a_trip_already_over_changes_nothing(clock):
    # Given a driver whose trip ended (a cancel's release ran) before the
    # accept's after-commit assignment of that same trip arrived
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.on_driver_released(DRIVER, trip_id=TRIP_ID)
    presence.on_driver_assigned(DRIVER, trip_id=TRIP_ID, rider_id=RIDER)
    clock.advance(1)

    # Then the driver is still free: available, and nothing goes to that rider
    assert presence.ping(DRIVER, lat=HERE[0], lng=HERE[1]) is None
    assert available() == {DRIVER}
    assert driver_state(DRIVER)["state"] == "free"
    # while the driver's next trip is assigned as usual
    presence.on_driver_assigned(DRIVER, trip_id=OTHER_TRIP_ID, rider_id=RIDER)
    assert presence.ping(DRIVER, lat=HERE[0], lng=HERE[1]) == presence.Forward(
        trip_id=OTHER_TRIP_ID, rider_id=RIDER
    )


def test_offline_during_a_trip_keeps_the_trip_and_its_stream(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.on_driver_assigned(DRIVER, trip_id=TRIP_ID, rider_id=RIDER)

    presence.set_offline(DRIVER)

    assert presence.ping(DRIVER, lat=HERE[0], lng=HERE[1]) == presence.Forward(TRIP_ID, RIDER)
    assert available() == set()
    assert get_redis().zscore(keys.LAST_SEEN, DRIVER) is None


def test_the_silent_sweep_removes_only_the_silent(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.set_online(OTHER, lat=HERE[0], lng=HERE[1])
    presence.on_driver_assigned(OTHER, trip_id=TRIP_ID, rider_id=RIDER)
    clock.advance(settings.DRIVER_PRESENCE_TTL_S / 2)
    presence.set_online(103, lat=HERE[0], lng=HERE[1])
    clock.advance(settings.DRIVER_PRESENCE_TTL_S / 2 + 1)

    removed = presence.sweep_silent(batch=100)

    assert sorted(removed) == [DRIVER, OTHER]
    assert available() == {103}
    assert driver_state(OTHER)["trip"] == TRIP_ID, "a driver on a trip keeps it"
    assert presence.sweep_silent(batch=100) == [], "a second run finds nothing"


def test_a_swept_driver_who_speaks_again_is_available_again(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(settings.DRIVER_PRESENCE_TTL_S + 1)
    presence.sweep_silent(batch=100)
    assert available() == set()

    presence.ping(DRIVER, lat=HERE[0], lng=HERE[1])

    assert available() == {DRIVER}


def test_the_silent_sweep_is_bounded_per_run(clock):
    for driver_id in range(1, 11):
        presence.set_online(driver_id, lat=HERE[0], lng=HERE[1])
    clock.advance(settings.DRIVER_PRESENCE_TTL_S + 1)

    assert len(presence.sweep_silent(batch=4)) == 4
    assert len(available()) == 6


def test_search_returns_fresh_drivers_nearest_first_skipping_the_excluded(clock):
    presence.set_online(1, lat=HERE[0] + 0.010, lng=HERE[1])  # ~1.1 km
    presence.set_online(2, lat=HERE[0] + 0.004, lng=HERE[1])  # ~0.45 km
    presence.set_online(3, lat=HERE[0] + 0.030, lng=HERE[1])  # ~3.3 km
    presence.set_online(4, lat=HERE[0] + 0.200, lng=HERE[1])  # ~22 km: out of range
    presence.set_online(5, lat=HERE[0] + 0.001, lng=HERE[1])
    presence.set_offline(5)

    found = list(presence.nearest_available(lat=HERE[0], lng=HERE[1], exclude={1}))

    assert [c.driver_id for c in found] == [2, 3]
    assert found[0].distance_km == pytest.approx(0.445, abs=0.01)


def test_search_skips_drivers_silent_too_long_even_before_the_sweep(clock):
    presence.set_online(1, lat=HERE[0] + 0.001, lng=HERE[1])
    clock.advance(settings.DRIVER_PRESENCE_TTL_S + 1)
    presence.set_online(2, lat=HERE[0] + 0.010, lng=HERE[1])

    found = list(presence.nearest_available(lat=HERE[0], lng=HERE[1]))

    assert [c.driver_id for c in found] == [2]


def test_nearby_gives_rounded_positions_of_fresh_available_drivers_only(clock):
    presence.set_online(1, lat=38.89771, lng=-77.03652)
    presence.set_online(2, lat=38.90012, lng=-77.03001)
    presence.set_online(3, lat=38.9, lng=-77.03)
    presence.mark_offered(3)
    clock.advance(settings.DRIVER_PRESENCE_TTL_S + 1)
    presence.set_online(4, lat=38.91, lng=-77.04)

    positions = presence.nearby(lat=HERE[0], lng=HERE[1], radius_km=5, limit=10)

    assert positions == [(38.91, -77.04)]


def test_nearby_is_capped(clock):
    for driver_id in range(1, 8):
        presence.set_online(driver_id, lat=HERE[0] + driver_id / 1000, lng=HERE[1])

    positions = presence.nearby(lat=HERE[0], lng=HERE[1], radius_km=5, limit=3)

    assert positions == [(38.899, -77.037), (38.9, -77.037), (38.901, -77.037)]


# --- positions implying an impossible speed (LOCATION_MAX_SPEED_KMH) ---------------

FAR = (47.0, -77.0365)  # about 900 km north of HERE


def km_from_here(km: float) -> tuple[float, float]:
    return HERE[0] + km / 111.19, HERE[1]


def rejected_events(caplog) -> list:
    return [r for r in caplog.records if r.getMessage() == "dispatch.location_rejected"]


def test_a_jump_at_an_impossible_speed_is_kept_out_of_matching_logged_and_counted(clock, caplog):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(1)

    forward = presence.ping(DRIVER, lat=FAR[0], lng=FAR[1])

    assert forward is None
    assert available() == set(), "out of matching: where the driver is, is in doubt"
    state = driver_state(DRIVER)
    assert (float(state["lat"]), float(state["lng"])) == HERE, "the last accepted position"
    assert presence.location_rejections() == {DRIVER: 1}
    (event,) = rejected_events(caplog)
    assert event.driver_id == DRIVER and event.source == "location"
    assert event.speed_kmh > 3_000_000 and event.distance_km == pytest.approx(904, abs=5)
    assert_every_key_expires()


def test_position_seen_is_the_last_accepted_position_and_when_the_driver_last_spoke(clock):
    # Given a driver online here whose next position, a second later, is refused
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(1)
    presence.ping(DRIVER, lat=FAR[0], lng=FAR[1])

    position_, seen_at = presence.position_seen(DRIVER)

    # Then the position is the accepted one, heard from at the refused ping
    assert position_ == HERE
    assert seen_at == datetime.fromtimestamp(clock.now, tz=UTC)
    # ... and a driver Redis never heard of has none
    assert presence.position_seen(OTHER) is None


def test_gps_jitter_over_a_fraction_of_a_second_is_no_teleport(clock, caplog):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(0.2)

    presence.ping(DRIVER, lat=km_from_here(0.06)[0], lng=HERE[1])  # 60 m: 1,080 km/h

    assert available() == {DRIVER}
    assert position(DRIVER) == pytest.approx(km_from_here(0.06), abs=1e-5)
    assert presence.location_rejections() == {} and rejected_events(caplog) == []


def test_jitter_allowances_do_not_add_up_ping_after_ping(clock):
    # Each ping within the jitter allowance of the one before, ten a second:
    # 500 m in a second, 1,800 km/h, is a drive no car makes
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    for step in range(1, 11):
        clock.advance(0.1)
        presence.ping(DRIVER, lat=km_from_here(0.05 * step)[0], lng=HERE[1])

    assert available() == set()
    assert presence.location_rejections()[DRIVER] >= 5


def test_a_plausible_position_after_a_jump_brings_the_driver_back(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(1)
    presence.ping(DRIVER, lat=FAR[0], lng=FAR[1])
    clock.advance(4)

    presence.ping(DRIVER, lat=km_from_here(0.2)[0], lng=HERE[1])

    assert available() == {DRIVER}
    assert position(DRIVER) == pytest.approx(km_from_here(0.2), abs=1e-5)
    assert presence.location_rejections() == {DRIVER: 1}


def test_going_offline_and_online_again_does_not_launder_a_jump(clock, caplog):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.set_offline(DRIVER)
    clock.advance(60)

    presence.set_online(DRIVER, lat=FAR[0], lng=FAR[1])

    assert available() == set()
    assert driver_state(DRIVER)["online"] == "1"
    assert presence.location_rejections() == {DRIVER: 1}
    assert [e.source for e in rejected_events(caplog)] == ["online"]


def test_a_driver_is_never_locked_out_for_longer_than_the_check_remembers(clock):
    # Given a driver whose every position since going online was refused
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(1)
    presence.ping(DRIVER, lat=FAR[0], lng=FAR[1])

    # When the last accepted position is older than the check looks back
    clock.advance(presence.LOCATION_MEMORY_S)
    presence.ping(DRIVER, lat=FAR[0], lng=FAR[1])

    # Then the new place is taken as it comes
    assert available() == {DRIVER}
    assert position(DRIVER) == pytest.approx(FAR, abs=1e-5)


def test_a_released_driver_whose_position_is_in_doubt_stays_out(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.mark_offered(DRIVER)
    clock.advance(1)
    presence.ping(DRIVER, lat=FAR[0], lng=FAR[1])

    assert presence.on_driver_released(DRIVER) is False
    assert available() == set()


def test_a_jump_during_a_trip_is_not_forwarded_to_the_rider(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    presence.on_driver_assigned(DRIVER, trip_id=TRIP_ID, rider_id=RIDER)
    clock.advance(1)

    assert presence.ping(DRIVER, lat=FAR[0], lng=FAR[1]) is None
    clock.advance(1)
    assert presence.ping(DRIVER, lat=HERE[0], lng=HERE[1]) == presence.Forward(TRIP_ID, RIDER)


async def test_the_async_ping_refuses_the_same_jumps(clock):
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(1)

    await presence.aping(DRIVER, lat=FAR[0], lng=FAR[1])

    assert available() == set()
    assert presence.location_rejections() == {DRIVER: 1}


def test_the_check_is_off_at_a_limit_of_zero(clock, settings):
    settings.LOCATION_MAX_SPEED_KMH = 0
    presence.set_online(DRIVER, lat=HERE[0], lng=HERE[1])
    clock.advance(1)

    presence.ping(DRIVER, lat=FAR[0], lng=FAR[1])

    assert position(DRIVER) == pytest.approx(FAR, abs=1e-5)
    assert presence.location_rejections() == {}
