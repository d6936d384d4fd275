"""Choosing whom to offer a trip: pure functions, no I/O.

The geo index answers one ring at a time (`presence.nearest_available` asks
Redis); these functions decide what to ask and what to make of the answer,
so the rules are tested without Redis and read in one place:

- rings are searched nearest first, and the first ring holding anyone usable
  wins, so a driver 1 km away is never passed over for one 9 km away;
- within a ring, nearer first, ties broken by driver id (deterministic);
- a driver already offered this trip, or silent for longer than the presence
  TTL, is not usable.
"""

import math
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

EARTH_RADIUS_KM = 6372.7976  # the radius Redis' GEO commands use
# Members asked for beyond those that may be excluded, per ring.
SEARCH_HEADROOM = 8
# Largest COUNT asked of one ring, however many are filtered out.
MAX_SEARCH_COUNT = 1024
# The public map's grid (PROTOCOL.md: positions rounded to about 100 m): cells
# of 0.001 degree, 111 m north to south and less east to west away from the
# equator. GRID_MARGIN_KM: the farthest a position lies from its cell's centre.
GRID_PLACES = 3
GRID_DEG = 10.0**-GRID_PLACES
GRID_MARGIN_KM = 0.08


@dataclass(frozen=True, slots=True)
class Candidate:
    driver_id: int
    distance_km: float


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance, as Redis computes it for GEODIST and GEOSEARCH."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lng2 - lng1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def search_rings(radii_km: Iterable[float]) -> list[float]:
    """The radii to search, nearest first, without repeats or nonsense."""
    rings = sorted({float(r) for r in radii_km if math.isfinite(r) and r > 0})
    if not rings:
        raise ValueError("at least one positive search radius is needed")
    return rings


def search_count(excluded: int) -> int:
    """How many members to ask one ring for: enough that the drivers we must
    skip (at most the trip's earlier offers) cannot crowd out the rest."""
    return min(MAX_SEARCH_COUNT, excluded + SEARCH_HEADROOM)


def should_widen(*, returned: int, asked: int, usable: int) -> bool:
    """A ring that returned a full page of nobody usable may hide usable
    drivers further out in the same ring: ask again for more."""
    return usable == 0 and returned >= asked and asked < MAX_SEARCH_COUNT


def widen(asked: int) -> int:
    return min(MAX_SEARCH_COUNT, asked * 4)


def rank(
    found: Iterable[tuple[str | int, float, float | None]],
    *,
    exclude: Collection[int],
    fresh_after: float,
) -> list[Candidate]:
    """The usable drivers of one ring's answer, best first.

    `found` holds (driver id, distance in km, last-seen unix time or None) as
    the geo index returned them; a driver never seen, or seen at or before
    `fresh_after`, is stale.
    """
    usable = []
    for member, distance, seen in found:
        driver_id = int(member)
        if driver_id in exclude:
            continue
        if seen is None or float(seen) <= fresh_after:
            continue
        usable.append(Candidate(driver_id=driver_id, distance_km=float(distance)))
    usable.sort(key=lambda c: (c.distance_km, c.driver_id))
    return usable


def round_position(lat: float, lng: float, places: int = GRID_PLACES) -> tuple[float, float]:
    """A position blurred to about 100 m (3 decimal places), for public maps:
    the centre of its cell of the public map's grid."""
    return round(lat, places), round(lng, places)


def on_the_grid(
    positions: Iterable[tuple[float, float]],
    *,
    centre: tuple[float, float],
    radius_km: float,
    limit: int,
) -> list[tuple[float, float]]:
    """What the public map shows of `positions` (lat, lng) around `centre`
    (itself a cell's centre): each at its cell's centre, kept when that lies
    within `radius_km`, nearest first, then by place, at most `limit`.

    Both the filter and the order look at cells only, never at where in its
    cell a driver is, so the answer says nothing finer than the cell."""
    shown = []
    for lat, lng in positions:
        cell = round_position(lat, lng)
        distance = haversine_km(centre[0], centre[1], cell[0], cell[1])
        if distance <= radius_km:
            shown.append((distance, cell))
    shown.sort()
    return [cell for _distance, cell in shown[:limit]]


def ring_search(
    search: Callable[[float, int], Sequence[tuple[str | int, float, float | None]]],
    *,
    rings: Sequence[float],
    exclude: Collection[int],
    fresh_after: float,
) -> Iterator[Candidate]:
    """Usable drivers ring by ring, nearest first, each driver once.

    `search(radius_km, count)` is one query of the geo index: up to `count`
    members within `radius_km`, nearest first, as (id, km, last seen). Lazy:
    a ring is searched only when the caller has tried every candidate of the
    rings before it, so the common case costs one query.
    """
    skip = set(exclude)
    for radius in rings:
        count = search_count(len(skip))
        while True:
            found = search(radius, count)
            ranked = rank(found, exclude=skip, fresh_after=fresh_after)
            if ranked or not should_widen(returned=len(found), asked=count, usable=len(ranked)):
                break
            count = widen(count)
        for candidate in ranked:
            skip.add(candidate.driver_id)
            yield candidate
