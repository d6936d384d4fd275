"""Surge per H3 cell (pricing/surge.py) on the real Redis test database:
counting requests, supply from presence, the smoothed and capped multiplier,
its fall-back to 1.0, the staff map and its endpoint, the beat task."""

import logging
import math
import random
import socket
import threading
import time
from decimal import Decimal

import h3
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dispatch import keys as dispatch_keys
from dispatch import presence
from pricing import keys, surge
from taxi.infra.redis import get_redis
from workers import tasks
from workers.schedules import schedules

HERE = (38.8977, -77.0365)
SURGE_MAP = "/api/ops/surge/"


def cell() -> str:
    return surge.cell_of(*HERE)


def ring_cell(k: int) -> str:
    """A cell exactly `k` rings from HERE's."""
    return sorted(h3.grid_ring(cell(), k))[0]


def centre(of: str) -> tuple[float, float]:
    return h3.cell_to_latlng(of)


@pytest.fixture
def clock(monkeypatch):
    """One notion of now for presence (its last-seen stamps) and for the
    test's calls to surge, moved by the test."""

    class Clock:
        now = math.floor(time.time()) + 0.5  # never on a bucket's edge

        def advance(self, seconds: float) -> float:
            self.now += seconds
            return self.now

    c = Clock()
    monkeypatch.setattr(presence, "_now", lambda: c.now)
    return c


def drivers_online(count: int, at: tuple[float, float] = HERE, first_id: int = 1) -> None:
    """`count` free drivers at `at` (presence's own writes; presence's clock)."""
    for driver_id in range(first_id, first_id + count):
        presence.set_online(driver_id, lat=at[0], lng=at[1])


def requests(count: int, now: float, at: tuple[float, float] = HERE) -> None:
    for _ in range(count):
        surge.record_request(*at, now=now)


def flood(count: int, now: float) -> None:
    """`count` requests at HERE, written as `record_request` counts them."""
    get_redis().hincrby(keys.demand(int(now // keys.DEMAND_BUCKET_S)), cell(), count)


def published() -> dict[str, str]:
    return get_redis().hgetall(keys.MULTIPLIERS)


def map_cell(of: str) -> dict | None:
    return next((row for row in surge.snapshot()["cells"] if row["cell"] == of), None)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_down(monkeypatch):
    """Surge's Redis client points at a port nobody listens on: a real
    refused connection, not a stand-in."""
    dead = redis.Redis(
        host="127.0.0.1",
        port=closed_port(),
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),  # fail at once rather than after backing off
        decode_responses=True,
    )
    monkeypatch.setattr(surge, "get_redis", lambda: dead)
    return dead


# --- cells and requests -------------------------------------------------------------


def test_a_point_s_cell_is_h3_s_at_the_configured_resolution(settings):
    assert surge.cell_of(*HERE) == h3.latlng_to_cell(*HERE, 8)
    settings.SURGE_H3_RES = 6
    assert surge.cell_of(*HERE) == h3.latlng_to_cell(*HERE, 6)
    assert h3.get_resolution(surge.cell_of(*HERE)) == 6


def test_a_request_counts_in_its_cell_for_the_demand_window_and_then_not(settings, clock):
    t = clock.now
    requests(3, now=t)
    surge.record_request(*centre(ring_cell(3)), now=t)

    surge.refresh(now=t)
    assert map_cell(cell())["demand"] == 3
    assert map_cell(ring_cell(3))["demand"] == 1

    # Still inside the window a minute before its end (buckets are a minute).
    surge.refresh(now=t + settings.SURGE_DEMAND_WINDOW_S - 60)
    assert map_cell(cell())["demand"] == 3

    surge.refresh(now=t + settings.SURGE_DEMAND_WINDOW_S)
    cells = surge.snapshot()["cells"]
    assert map_cell(cell())["demand"] == 0, "no request older than the window counts"
    assert [row["demand"] for row in cells] == [0] * len(cells)
    assert map_cell(ring_cell(3)) is None, "no surge, no drivers, no requests: off the map"


def test_the_request_buckets_expire_on_their_own(settings, clock):
    surge.record_request(*HERE, now=clock.now)

    bucket = keys.demand(int(clock.now // keys.DEMAND_BUCKET_S))
    ttl = get_redis().ttl(bucket)
    assert settings.SURGE_DEMAND_WINDOW_S < ttl <= keys.demand_ttl_s()


def test_a_request_at_an_impossible_position_is_not_counted_and_does_not_raise(clock):
    surge.record_request(float("nan"), 0.0, now=clock.now)

    assert get_redis().keys(keys.PREFIX + "*") == []


# --- the multiplier -----------------------------------------------------------------


def test_no_surge_while_drivers_keep_up_with_requests(clock):
    drivers_online(4)
    requests(4, now=clock.now)

    summary = surge.refresh(now=clock.now)

    assert summary.published and summary.drivers == 4 and summary.requests == 4
    assert surge.multiplier_at(*HERE) == Decimal("1.0")
    assert published() == {}, "a cell at 1.0 is not in the published hash"


def test_surge_climbs_at_most_one_step_a_refresh_to_what_demand_calls_for(settings, clock):
    # 2 drivers, 6 requests: three times as many, raw 1 + 0.5 x (3 - 1) = 2.0.
    requests(6, now=clock.now)
    seen = []
    for _ in range(5):
        drivers_online(2)
        surge.refresh(now=clock.now)
        seen.append(surge.multiplier_at(*HERE))
        clock.advance(settings.SURGE_REFRESH_S)

    assert seen == [Decimal(v) for v in ("1.5", "2.0", "2.0", "2.0", "2.0")]
    assert all(m.as_tuple().exponent == -1 for m in seen), "one decimal place"
    assert surge.raw_multiplier(6, 2) == Decimal("2.0")


def test_a_smaller_step_setting_makes_smaller_steps(settings, clock):
    settings.SURGE_MAX_STEP = 0.25  # on the one-decimal grid: 0.2, never more
    requests(30, now=clock.now)
    seen = []
    for _ in range(4):
        surge.refresh(now=clock.now)
        seen.append(surge.multiplier_at(*HERE))
        clock.advance(settings.SURGE_REFRESH_S)

    assert seen == [Decimal(v) for v in ("1.2", "1.4", "1.6", "1.8")]


@pytest.mark.parametrize(("surge_max", "cap"), [(3.0, "3.0"), (2.0, "2.0"), (2.55, "2.5")])
def test_surge_never_passes_surge_max_however_extreme(settings, clock, surge_max, cap):
    settings.SURGE_MAX = surge_max
    flood(10**12, now=clock.now)
    seen = []
    for _ in range(8):
        surge.refresh(now=clock.now)
        seen.append(surge.multiplier_at(*HERE))
        clock.advance(settings.SURGE_REFRESH_S)

    assert max(seen) == seen[-1] == Decimal(cap)
    assert all(Decimal("1.0") <= m <= Decimal(str(surge_max)) for m in seen)
    assert all(b - a <= Decimal("0.5") for a, b in zip(seen, seen[1:], strict=False))
    assert surge.raw_multiplier(10**12, 0) == Decimal(cap)


def test_whatever_is_stored_what_is_read_lies_within_one_and_surge_max(clock):
    get_redis().hset(
        keys.MULTIPLIERS,
        mapping={cell(): "99", ring_cell(2): "0.2", ring_cell(3): "nan", ring_cell(4): "x"},
    )

    assert surge.multiplier_at(*HERE) == Decimal("3.0")
    for k in (2, 3, 4):
        assert surge.multiplier_at(*centre(ring_cell(k))) == Decimal("1.0")


def test_surge_decays_step_by_step_to_one_when_demand_goes(settings, clock):
    requests(40, now=clock.now)
    for _ in range(4):
        surge.refresh(now=clock.now)
        clock.advance(settings.SURGE_REFRESH_S)
    assert surge.multiplier_at(*HERE) == Decimal("3.0")

    clock.advance(settings.SURGE_DEMAND_WINDOW_S)  # every request is out of the window
    seen = []
    for _ in range(5):
        surge.refresh(now=clock.now)
        seen.append(surge.multiplier_at(*HERE))
        clock.advance(settings.SURGE_REFRESH_S)

    assert seen == [Decimal(v) for v in ("2.5", "2.0", "1.5", "1.0", "1.0")]
    assert published() == {}, "back at 1.0, the cell left the hash"


def test_a_cell_s_pressure_counts_its_neighbours(settings, clock):
    # Demand in one cell, the drivers one ring away: no surge there.
    requests(4, now=clock.now)
    drivers_online(4, at=centre(ring_cell(1)))
    surge.refresh(now=clock.now)
    assert surge.multiplier_at(*HERE) == Decimal("1.0")

    # The same drivers two rings away are not around: surge, in the cell
    # and in its neighbours (a pick-up across the border pays alike).
    clock.advance(settings.SURGE_REFRESH_S)
    for driver_id in range(1, 5):
        presence.set_offline(driver_id)
    drivers_online(4, at=centre(ring_cell(2)), first_id=11)
    surge.refresh(now=clock.now)
    assert surge.multiplier_at(*HERE) == Decimal("1.5")
    far_from_drivers = [
        c for c in h3.grid_ring(cell(), 1) if ring_cell(2) not in h3.grid_disk(c, 1)
    ]
    assert far_from_drivers
    for neighbour in far_from_drivers:
        assert surge.multiplier_at(*centre(neighbour)) > Decimal("1.0")


def test_drivers_not_heard_from_lately_are_not_supply(settings, clock):
    drivers_online(5)
    requests(5, now=clock.now)
    clock.advance(settings.DRIVER_PRESENCE_TTL_S + 1)

    summary = surge.refresh(now=clock.now)

    assert summary.drivers == 0
    assert surge.multiplier_at(*HERE) == Decimal("1.5")
    assert get_redis().zcard(dispatch_keys.AVAILABLE) == 5, "still in the index, yet stale"


def test_drivers_not_free_are_not_supply(clock):
    drivers_online(3)
    presence.mark_offered(1)
    presence.set_offline(2)

    assert surge.refresh(now=clock.now).drivers == 1


def test_thousands_of_drivers_are_all_counted(clock):
    rng = random.Random(7)
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    positions = [
        (HERE[0] + rng.uniform(-0.1, 0.1), HERE[1] + rng.uniform(-0.1, 0.1)) for _ in range(6000)
    ]
    for driver_id, (lat, lng) in enumerate(positions, start=1):
        pipe.geoadd(dispatch_keys.AVAILABLE, (lng, lat, driver_id))
        pipe.zadd(dispatch_keys.LAST_SEEN, {driver_id: clock.now})
    pipe.execute()
    requests(1, now=clock.now)

    summary = surge.refresh(now=clock.now)

    assert summary.published and summary.drivers == 6000
    cells = {row["cell"]: row["supply"] for row in surge.snapshot()["cells"]}
    assert sum(cells.values()) == 6000
    stored = client.geopos(dispatch_keys.AVAILABLE, *range(1, 6001))
    assert {c for c in cells if cells[c]} == {surge.cell_of(lat, lng) for lng, lat in stored}


# --- when beat or Redis stops ---------------------------------------------------------


def test_what_is_published_lives_a_few_refreshes(settings, clock):
    requests(4, now=clock.now)
    surge.refresh(now=clock.now)

    client = get_redis()
    ttl_ms = keys.published_ttl_s() * 1000
    assert ttl_ms >= max(90_000, 3 * settings.SURGE_REFRESH_S * 1000)
    for key in (keys.MULTIPLIERS, keys.CELL_COUNTS, keys.UPDATED_AT):
        assert 0.9 * ttl_ms < client.pttl(key) <= ttl_ms, key


def test_surge_falls_back_to_one_when_refreshes_stop(monkeypatch, clock):
    monkeypatch.setattr(keys, "published_ttl_s", lambda: 0.3)
    requests(4, now=clock.now)
    surge.refresh(now=clock.now)
    assert surge.multiplier_at(*HERE) == Decimal("1.5")

    deadline = time.monotonic() + 5
    while surge.multiplier_at(*HERE) != Decimal("1.0"):
        assert time.monotonic() < deadline, "surge outlived its TTL"
        time.sleep(0.05)
    assert surge.snapshot()["updated_at"] is None


def test_without_redis_the_multiplier_is_one_and_requests_are_dropped_quietly(redis_down, caplog):
    caplog.set_level(logging.WARNING, logger="pricing.surge")

    assert surge.multiplier_at(*HERE) == Decimal("1.0")
    surge.record_request(*HERE)

    events = [record.msg for record in caplog.records]
    assert events == ["pricing.surge_unavailable", "pricing.surge_request_not_counted"]
    with pytest.raises(redis.RedisError):
        surge.refresh()  # the task's retry policy takes it from there


# --- refreshes side by side -----------------------------------------------------------


@pytest.mark.parametrize("later_s", [0, 7.5])
def test_a_refresh_right_after_another_publishes_nothing(settings, clock, later_s):
    now = clock.now + 0.0006  # the stored stamp, to the millisecond, is later than this
    requests(10, now=now)
    assert surge.refresh(now=now).outcome == "published"
    stamp = get_redis().get(keys.UPDATED_AT)

    again = surge.refresh(now=now + later_s)

    assert again.outcome == "recent" and not again.published
    assert get_redis().get(keys.UPDATED_AT) == stamp
    assert surge.multiplier_at(*HERE) == Decimal("1.5"), "no second step"


def test_the_task_run_twice_steps_once():
    requests(10, now=time.time())

    tasks.refresh_surge.apply().get()
    stamp = get_redis().get(keys.UPDATED_AT)
    tasks.refresh_surge.apply().get()

    assert surge.multiplier_at(*HERE) == Decimal("1.5")
    assert get_redis().get(keys.UPDATED_AT) == stamp


def test_concurrent_refreshes_publish_one_whole_map_a_round(settings, clock):
    ring = ring_cell(1)
    expected = [Decimal(v) for v in ("1.5", "2.0", "2.5")] + [Decimal("3.0")] * 27
    for round_, multiplier in enumerate(expected):
        now = clock.advance(settings.SURGE_REFRESH_S) if round_ else clock.now
        drivers_online(2)
        if round_ % 5 == 0:
            requests(10, now=now)  # a steady 2 a minute: 10 over the window
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def run(now=now, start=start, outcomes=outcomes):
            start.wait()
            outcomes.append(surge.refresh(now=now).outcome)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(outcomes) == 2 and outcomes.count("published") == 1, outcomes
        assert surge.multiplier_at(*HERE) == multiplier, "one step a round, never two"
        assert surge.multiplier_at(*centre(ring)) == multiplier
        assert float(get_redis().get(keys.UPDATED_AT)) == pytest.approx(now, abs=0.001)
        counts = get_redis().hgetall(keys.CELL_COUNTS)
        assert counts[cell()].startswith("2 "), "the map's counts come from the same refresh"


# --- schedule -----------------------------------------------------------------------


def test_beat_refreshes_surge_every_surge_refresh_s(settings):
    refresh = next(s for s in schedules() if s.task == "workers.refresh_surge")

    assert refresh.every_s == round(settings.SURGE_REFRESH_S)
    assert tasks.refresh_surge.name == "workers.refresh_surge"
    assert 0 < tasks.refresh_surge.soft_time_limit < tasks.refresh_surge.time_limit


# --- the staff map ------------------------------------------------------------------


def test_the_map_is_empty_before_any_refresh():
    assert surge.snapshot() == {
        "resolution": 8,
        "updated_at": None,
        "max": "3.0",
        "cells": [],
    }


@pytest.fixture
def staff(make_user):
    return make_user("rider", is_staff=True)


def test_only_staff_read_the_surge_map(api, client_for, rider, driver, staff):
    anonymous = api.get(SURGE_MAP)
    as_rider = client_for(rider).get(SURGE_MAP)
    as_driver = client_for(driver).get(SURGE_MAP)
    as_staff = client_for(staff).get(SURGE_MAP)

    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    for refused in (as_rider, as_driver):
        assert refused.status_code == 403
        assert set(refused.json()) == {"detail", "code"}
        assert refused.json()["code"] == "forbidden"
    assert as_staff.status_code == 200


def test_the_surge_map_shows_surging_and_busy_cells_with_their_outlines(
    client, staff, clock, settings
):
    drivers_online(1, at=centre(ring_cell(3)))
    requests(6, now=clock.now)
    surge.refresh(now=clock.now)
    client.force_login(staff)  # the console's session

    body = client.get(SURGE_MAP).json()

    assert body["resolution"] == settings.SURGE_H3_RES
    assert body["max"] == "3.0"
    assert body["updated_at"].startswith(time.strftime("%Y-", time.gmtime(clock.now)))
    rows = {row["cell"]: row for row in body["cells"]}
    here = rows[cell()]
    assert body["cells"][0]["multiplier"] == "1.5", "surging cells first"
    assert here == {
        "cell": cell(),
        "multiplier": "1.5",
        "supply": 0,
        "demand": 6,
        "boundary": here["boundary"],
    }
    assert len(here["boundary"]) == 6
    for lat, lng in here["boundary"]:
        assert abs(lat - HERE[0]) < 0.02 and abs(lng - HERE[1]) < 0.02
    # The neighbours surge with it though nothing happened in them.
    assert {rows[c]["multiplier"] for c in h3.grid_ring(cell(), 1)} == {"1.5"}
    quiet = rows[surge.cell_of(*centre(ring_cell(3)))]
    assert (quiet["multiplier"], quiet["supply"], quiet["demand"]) == ("1.0", 1, 0)


def test_the_surge_map_caps_its_cells(monkeypatch, clock):
    monkeypatch.setattr(surge, "MAP_MAX_CELLS", 5)
    for k in range(1, 9):
        surge.record_request(*centre(ring_cell(k)), now=clock.now)
    requests(10, now=clock.now)
    surge.refresh(now=clock.now)

    cells = surge.snapshot()["cells"]

    assert len(cells) == 5
    assert cells[0]["cell"] == cell()


def test_the_surge_map_answers_503_when_redis_is_down(client_for, staff, redis_down):
    response = client_for(staff).get(SURGE_MAP)

    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
