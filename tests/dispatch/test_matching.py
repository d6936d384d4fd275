"""Ring search and ranking: pure functions, checked against a model of GEOSEARCH."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch import matching
from dispatch.matching import Candidate

PICK_UP = (38.8977, -77.0365)
KM_PER_DEG_LAT = 2 * math.pi * matching.EARTH_RADIUS_KM / 360


class FakeGeoIndex:
    """What GEOSEARCH ... BYRADIUS r km ASC COUNT n WITHDIST answers, plus the
    last-seen score, over an in-memory list: the contract `ring_search` relies on."""

    def __init__(self, drivers: dict[int, tuple[float, float, float | None]]) -> None:
        self.drivers = drivers  # id -> (km north of the pick-up, lng offset, last seen)
        self.queries: list[tuple[float, int]] = []

    def __call__(self, radius_km: float, count: int):
        self.queries.append((radius_km, count))
        hits = []
        for driver_id, (km_north, _, seen) in self.drivers.items():
            lat = PICK_UP[0] + km_north / KM_PER_DEG_LAT
            distance = matching.haversine_km(lat, PICK_UP[1], *PICK_UP)
            if distance <= radius_km:
                hits.append((str(driver_id), distance, seen))
        hits.sort(key=lambda hit: hit[1])
        return hits[:count]


def search(index: FakeGeoIndex, *, exclude=(), rings=(2, 5, 10), fresh_after=0.0):
    return matching.ring_search(index, rings=list(rings), exclude=exclude, fresh_after=fresh_after)


def ids(candidates) -> list[int]:
    return [c.driver_id for c in candidates]


# --- ranking ---------------------------------------------------------------------


def test_rank_orders_nearest_first_and_breaks_ties_by_id():
    found = [("7", 1.5, 100.0), ("3", 0.5, 100.0), ("9", 1.5, 100.0), ("1", 0.9, 100.0)]

    ranked = matching.rank(found, exclude=set(), fresh_after=50.0)

    assert ids(ranked) == [3, 1, 7, 9]
    assert ranked[0] == Candidate(driver_id=3, distance_km=0.5)


def test_rank_skips_excluded_and_stale_and_never_seen_drivers():
    found = [
        ("1", 0.1, 100.0),
        ("2", 0.2, 40.0),
        ("3", 0.3, None),
        ("4", 0.4, 50.0),
        ("5", 0.5, 51),
    ]

    ranked = matching.rank(found, exclude={1}, fresh_after=50.0)

    # 2 is stale, 3 was never seen, 4 was seen exactly at the cut-off (stale too).
    assert ids(ranked) == [5]


@given(
    st.lists(
        st.tuples(
            st.integers(1, 10_000),
            st.floats(0, 50, allow_nan=False),
            st.one_of(st.none(), st.floats(0, 200, allow_nan=False)),
        ),
        unique_by=lambda t: t[0],
    ),
    st.sets(st.integers(1, 10_000)),
)
def test_rank_keeps_exactly_the_usable_drivers_in_order(rows, exclude):
    found = [(str(i), d, s) for i, d, s in rows]

    ranked = matching.rank(found, exclude=exclude, fresh_after=100.0)

    expected = {i for i, _, s in rows if i not in exclude and s is not None and s > 100.0}
    assert set(ids(ranked)) == expected
    keys = [(c.distance_km, c.driver_id) for c in ranked]
    assert keys == sorted(keys)


# --- rings -----------------------------------------------------------------------


def test_rings_are_sorted_deduplicated_and_must_exist():
    assert matching.search_rings([10, 2, 5, 2.0]) == [2.0, 5.0, 10.0]
    with pytest.raises(ValueError):
        matching.search_rings([0, -1, float("nan")])


def test_the_nearest_ring_with_anyone_is_searched_alone():
    index = FakeGeoIndex({1: (1.5, 0, 100.0), 2: (0.4, 0, 100.0), 3: (4.0, 0, 100.0)})

    first = next(search(index))

    assert first.driver_id == 2
    assert index.queries == [(2.0, matching.search_count(0))], "no outer ring was searched"


def test_an_empty_inner_ring_falls_through_to_the_next():
    index = FakeGeoIndex({1: (4.5, 0, 100.0), 2: (8.0, 0, 100.0)})

    found = list(search(index))

    assert ids(found) == [1, 2]
    assert [radius for radius, _ in index.queries] == [2.0, 5.0, 10.0]


def test_nobody_within_the_last_ring_means_no_candidates():
    index = FakeGeoIndex({1: (25.0, 0, 100.0)})

    assert list(search(index)) == []


def test_each_driver_comes_up_once_across_rings():
    index = FakeGeoIndex({1: (0.5, 0, 100.0), 2: (3.0, 0, 100.0), 3: (1.0, 0, 100.0)})

    assert ids(search(index)) == [1, 3, 2]


def test_drivers_already_offered_the_trip_are_skipped():
    index = FakeGeoIndex({1: (0.5, 0, 100.0), 2: (1.0, 0, 100.0), 3: (3.0, 0, 100.0)})

    assert ids(search(index, exclude={1, 2})) == [3]


def test_a_ring_crowded_with_stale_drivers_is_asked_again_for_more():
    stale = {i: (0.1 + i / 1000, 0, 10.0) for i in range(1, 40)}
    index = FakeGeoIndex({**stale, 99: (1.9, 0, 100.0)})

    first = next(search(index, fresh_after=50.0))

    assert first.driver_id == 99
    asked = [count for radius, count in index.queries if radius == 2.0]
    assert asked[0] == matching.search_count(0)
    assert len(asked) > 1 and asked == sorted(set(asked)), "asked again, each time for more"
    assert all(radius == 2.0 for radius, _ in index.queries), "found within the first ring"


def test_the_count_asked_grows_with_the_drivers_to_skip_but_is_bounded():
    assert matching.search_count(0) > 0
    assert matching.search_count(5) == matching.search_count(0) + 5
    assert matching.search_count(10**6) == matching.MAX_SEARCH_COUNT
    assert not matching.should_widen(
        returned=matching.MAX_SEARCH_COUNT,
        asked=matching.MAX_SEARCH_COUNT,
        usable=0,
    )


def test_positions_for_the_public_map_are_rounded_to_about_100_m():
    assert matching.round_position(38.897712, -77.036543) == (38.898, -77.037)


def test_haversine_matches_known_distances():
    # One degree of latitude, and Washington to Baltimore (about 56 km).
    assert matching.haversine_km(0, 0, 1, 0) == pytest.approx(111.2, abs=0.1)
    assert matching.haversine_km(38.8977, -77.0365, 39.2904, -76.6122) == pytest.approx(56, abs=2)


def test_the_public_map_judges_cells_never_exact_positions():
    # Given two drivers 135 m apart in one cell, whose centre is 444.9 m
    # from the map's centre, and one of them only 394 m from it
    centre = (38.898, -77.037)
    one_cell = [(38.90152, -77.03652), (38.90248, -77.03748)]
    assert {matching.round_position(*p) for p in one_cell} == {(38.902, -77.037)}

    # Then either both show, at the cell's centre, or neither does
    assert matching.on_the_grid(one_cell, centre=centre, radius_km=0.444, limit=10) == []
    assert matching.on_the_grid(one_cell, centre=centre, radius_km=0.445, limit=10) == [
        (38.902, -77.037),
        (38.902, -77.037),
    ]
