"""`/api/driver/nearby/` must not locate a driver better than its map does
(issue 10, item 6): a binary search on the radius from three centres, run
against a real web process over HTTP as the attacker did, learns nothing
finer than the driver's grid cell (about 100 m), however many queries it
spends. Throttling, which slows the attack down, is raised out of the way
here; it has its own test (tests/dispatch/test_driver_rest.py).
"""

import json
import math
import urllib.parse
import urllib.request

import pytest

from dispatch import matching, presence
from trips.auth import tokens_for

# A driver somewhere inside a cell, off its centre (the cell's centre is
# the rounded position the map shows, (38.898, -77.037)).
TRUTH = (38.89771, -77.03652)
# Where the attacker stands: about 1.5 km from the driver, in three directions.
CENTRES_KM = [(1.5, 0.0), (-0.75, 1.3), (-0.75, -1.3)]
KM_PER_DEG_LAT = 111.19
# The attacker stops when the radius is known to a metre.
RESOLUTION_KM = 0.001
SEARCH_TO_KM = 5.0


def offset(point: tuple[float, float], north_km: float, east_km: float) -> tuple[float, float]:
    lat, lng = point
    km_per_deg_lng = KM_PER_DEG_LAT * math.cos(math.radians(lat))
    return lat + north_km / KM_PER_DEG_LAT, lng + east_km / km_per_deg_lng


def locate(ask, near: tuple[float, float]) -> tuple[list, tuple[float, float]]:
    """The attack: from three centres around `near`, binary-search the
    smallest radius that shows a driver; then intersect the three circles.
    Returns every (question, answer) asked, and the estimated position."""
    transcript, circles = [], []
    for north, east in CENTRES_KM:
        centre = offset(near, north, east)
        low, high = RESOLUTION_KM, SEARCH_TO_KM
        while high - low > RESOLUTION_KM:
            radius = (low + high) / 2
            answer = ask(centre, radius)
            transcript.append(((centre, radius), answer))
            if answer["count"]:
                high = radius
            else:
                low = radius
        circles.append((centre, high))
    return transcript, trilaterate(circles, origin=near)


def trilaterate(circles, origin: tuple[float, float]) -> tuple[float, float]:
    """The point whose distances to the three centres are the three radii
    (local flat projection around `origin`, exact enough over a few km)."""
    km_per_deg_lng = KM_PER_DEG_LAT * math.cos(math.radians(origin[0]))

    def xy(point):
        return (point[1] - origin[1]) * km_per_deg_lng, (point[0] - origin[0]) * KM_PER_DEG_LAT

    (x1, y1), r1 = xy(circles[0][0]), circles[0][1]
    rows = []
    for centre, r in circles[1:]:
        x, y = xy(centre)
        rows.append((2 * (x - x1), 2 * (y - y1), r1**2 - r**2 - x1**2 + x**2 - y1**2 + y**2))
    (a, b, e), (c, d, f) = rows
    det = a * d - b * c
    x, y = (e * d - b * f) / det, (a * f - e * c) / det
    return origin[0] + y / KM_PER_DEG_LAT, origin[1] + x / km_per_deg_lng


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return matching.haversine_km(*a, *b) * 1000


def cell_corners(point: tuple[float, float], inset_deg: float = 0.00002) -> list:
    """The four corners of the grid cell holding `point`, a couple of metres in."""
    lat, lng = matching.round_position(*point)
    half = matching.GRID_DEG / 2 - inset_deg
    return [(lat + dy, lng + dx) for dy in (-half, half) for dx in (-half, half)]


@pytest.fixture
def web(tmp_path, transactional_db):
    from tests.web import web_process

    with web_process(tmp_path / "web.log", THROTTLE_NEARBY="100000/min") as running:
        yield running


@pytest.fixture
def ask(web, make_user):
    token = tokens_for(make_user("rider"))["access"]

    def ask(centre: tuple[float, float], radius_km: float) -> dict:
        query = urllib.parse.urlencode(
            {"lat": f"{centre[0]:.7f}", "lng": f"{centre[1]:.7f}", "radius_km": f"{radius_km:.7f}"}
        )
        request = urllib.request.Request(  # noqa: S310 - our own server
            f"{web.base}/api/driver/nearby/?{query}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    return ask


def put_driver_at(position: tuple[float, float], driver_id: int) -> None:
    """The only available driver is `driver_id`, at `position`."""
    presence.set_offline(driver_id - 1)
    presence.set_online(driver_id, lat=position[0], lng=position[1])


def test_radius_search_from_three_centres_cannot_locate_a_driver_within_its_cell(ask):
    # Given one available driver, off the centre of its cell
    put_driver_at(TRUTH, 1001)

    # When the attacker binary-searches the radius from three centres
    transcript, estimate = locate(ask, near=TRUTH)

    # Then the map still shows the driver, in its cell
    shown = [answer["drivers"] for _question, answer in transcript if answer["count"]]
    assert shown and all(drivers == [{"lat": 38.898, "lng": -77.037}] for drivers in shown)
    # and every answer would have been the same with the driver anywhere
    # else in that cell: no estimate, from these queries or any others like
    # them, can tell those places apart
    for n, elsewhere in enumerate(cell_corners(TRUTH), start=1002):
        put_driver_at(elsewhere, n)
        replay, _ = locate(ask, near=TRUTH)
        assert replay == transcript, (
            f"answers differ with the driver {metres(elsewhere, TRUTH):.0f} m away in the "
            f"same cell; the attack's estimate was {metres(estimate, TRUTH):.1f} m off "
            f"after {len(transcript)} queries"
        )
    # so the attacker's estimate is off by at least half the cell, for one
    # of the places the driver could be
    worst = max(metres(estimate, p) for p in [TRUTH, *cell_corners(TRUTH)])
    assert worst >= 0.5 * metres(*cell_corners(TRUTH)[0:4:3])
