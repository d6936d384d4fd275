"""Surge: a price multiplier per H3 cell (PROTOCOL.md Part 2, "Products,
vehicles and prices").

Supply is the drivers available now: in presence's geo index and heard from
within DRIVER_PRESENCE_TTL_S. Demand is the ride requests made over the last
SURGE_DEMAND_WINDOW_S (`record_request`, called once a trip is created).
Both are counted per cell of resolution SURGE_H3_RES (about 0.7 km² at 8).

A cell's pressure reads its neighbourhood, the cell and the six around it
(`h3.grid_disk(cell, 1)`): a cell at the edge of town does not swing with
one driver crossing its border, and two pick-ups a street apart on either
side of a border see about the same price. With D requests and S drivers in
the neighbourhood:

    raw = 1                                                   while D <= S
    raw = min(SURGE_MAX, 1 + SURGE_SLOPE * (D / max(S, 1) - 1))   above

so with SURGE_SLOPE 0.5, twice as many requests as drivers is 1.5, three
times 2.0, five times 3.0. The published value moves from the last published
one towards `raw` by at most SURGE_MAX_STEP per refresh, on a grid of one
decimal (ROUND_HALF_UP): a rush builds up over a few refreshes, and a cell
whose demand went away steps back down to 1.0, where it leaves the published
hash. Whatever is stored, what is read lies within [1, SURGE_MAX].

`refresh` (beat, every SURGE_REFRESH_S) publishes the whole map at once, with
a TTL (pricing.keys): a stopped beat means 1.0 everywhere, not a frozen
surge. It is safe beside a copy of itself: the publish is one script that
replaces the map only if no other refresh published since this one read it,
and a refresh within half an interval of the last publishes nothing, so a
task run twice does not step twice.
"""

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation

import h3
from django.conf import settings
from redis.exceptions import RedisError

from dispatch import keys as dispatch_keys
from dispatch.scripts import Lua
from pricing import keys
from taxi.infra.redis import get_redis

logger = logging.getLogger(__name__)

# How fast the raw multiplier grows with the ratio of requests to drivers.
SURGE_SLOPE = 0.5
# The staff map shows at most this many cells: every surging one first, then
# the busiest (drivers plus requests). A city at resolution 8 fits easily;
# beyond that the quietest cells are left off the map (not off the prices).
MAP_MAX_CELLS = 2000
# A refresh within this share of SURGE_REFRESH_S of the last one publishes nothing.
MIN_INTERVAL_SHARE = 0.5
# Members read per GEOPOS/ZMSCORE inside the supply script (Lua's unpack is bounded).
SUPPLY_CHUNK = 1000

ONE = Decimal("1.0")
TENTH = Decimal("0.1")

# KEYS: dispatch AVAILABLE, LAST_SEEN. ARGV: fresh_after (unix time), chunk.
# Answers "lng lat lng lat ..." of the available drivers seen after it: one
# string, which the client splits far faster than it parses thousands of replies.
# Run with EVAL inside the read's transaction (see `_read`).
SUPPLY = """
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local fresh_after = tonumber(ARGV[1])
local chunk = tonumber(ARGV[2])
local out = {}
for first = 1, #members, chunk do
  local some = {unpack(members, first, math.min(first + chunk - 1, #members))}
  local positions = redis.call('GEOPOS', KEYS[1], unpack(some))
  local seen = redis.call('ZMSCORE', KEYS[2], unpack(some))
  for i = 1, #some do
    local position, last = positions[i], seen[i]
    if position and last and tonumber(last) > fresh_after then
      out[#out + 1] = position[1]
      out[#out + 1] = position[2]
    end
  end
end
return table.concat(out, ' ')
"""

# KEYS: MULTIPLIERS, CELL_COUNTS, UPDATED_AT. ARGV: the UPDATED_AT this
# refresh read ('' for none), its own, the TTL in ms, n, then n (cell,
# multiplier) pairs, then (cell, "supply demand") pairs. Replaces all three
# keys only if UPDATED_AT still reads as it did: 1 if it published, else 0.
PUBLISH = Lua(
    """
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
local split = 4 + 2 * tonumber(ARGV[4])
for i = 5, split, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = split + 1, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 1
"""
)


@dataclass(frozen=True, slots=True)
class RefreshSummary:
    """What one refresh saw and did. `outcome`: `published`; `recent` (a
    refresh published less than half an interval ago: nothing done); `raced`
    (another refresh published while this one computed: its map stands)."""

    outcome: str
    drivers: int
    requests: int
    surging: int
    highest: Decimal

    @property
    def published(self) -> bool:
        return self.outcome == "published"


def cell_of(lat: float, lng: float) -> str:
    return h3.latlng_to_cell(lat, lng, settings.SURGE_H3_RES)


def record_request(lat: float, lng: float, *, now: float | None = None) -> None:
    """Count one ride request in its cell: one round trip; never raises (a
    request not counted costs a little surge, never the trip)."""
    at = time.time() if now is None else now
    key = keys.demand(int(at // keys.DEMAND_BUCKET_S))
    try:
        cell = cell_of(lat, lng)
    except ValueError:
        logger.warning("pricing.surge_bad_position", extra={"lat": lat, "lng": lng})
        return
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hincrby(key, cell, 1)
        pipe.expire(key, keys.demand_ttl_s())
        pipe.execute()
    except RedisError as exc:
        logger.warning(
            "pricing.surge_request_not_counted", extra={"cell": cell, "error": type(exc).__name__}
        )


def multiplier_at(lat: float, lng: float) -> Decimal:
    """The published multiplier of the point's cell (one decimal); 1.0 where
    there is none, and when Redis does not answer."""
    try:
        value = get_redis().hget(keys.MULTIPLIERS, cell_of(lat, lng))
    except RedisError as exc:
        logger.warning("pricing.surge_unavailable", extra={"error": type(exc).__name__})
        return ONE
    except ValueError:
        logger.warning("pricing.surge_bad_position", extra={"lat": lat, "lng": lng})
        return ONE
    return _stored(value)


def refresh(now: float | None = None) -> RefreshSummary:
    """Recount supply and demand and publish the next multipliers (beat's
    task). Two round trips: one atomic read, one publish."""
    now = time.time() if now is None else now
    supply, demand, previous, updated_at = _read(now)
    multipliers = next_multipliers(supply, demand, previous)
    if _too_soon(updated_at, now):
        outcome = "recent"
    elif _publish(updated_at, now, multipliers, supply, demand):
        outcome = "published"
    else:
        outcome = "raced"
    summary = RefreshSummary(
        outcome=outcome,
        drivers=sum(supply.values()),
        requests=sum(demand.values()),
        surging=len(multipliers),
        highest=max(multipliers.values(), default=ONE),
    )
    logger.info(
        "pricing.surge_refreshed",
        extra={
            "outcome": summary.outcome,
            "drivers": summary.drivers,
            "requests": summary.requests,
            "surging": summary.surging,
            "highest": str(summary.highest),
        },
    )
    return summary


def next_multipliers(
    supply: Mapping[str, int], demand: Mapping[str, int], previous: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Each cell's next published value above 1.0 (module docstring). Only
    cells near some demand, or surging before, can be above it."""
    demand_around = _around(demand)
    supply_around = _around(supply)
    cells = set(demand_around) | set(previous)
    published = {}
    for cell in cells:
        raw = raw_multiplier(demand_around.get(cell, 0), supply_around.get(cell, 0))
        value = _toward(previous.get(cell, ONE), raw)
        if value > ONE:
            published[cell] = value
    return published


def raw_multiplier(demand: int, supply: int) -> Decimal:
    """The multiplier `demand` requests and `supply` drivers call for, on the
    one-decimal grid, within [1, SURGE_MAX]."""
    if demand <= supply:
        return ONE
    raw = min(1 + SURGE_SLOPE * (demand / max(supply, 1) - 1), float(_cap()))
    return min(_cap(), max(ONE, Decimal(repr(raw)).quantize(TENTH, ROUND_HALF_UP)))


def snapshot() -> dict:
    """The published map for staff: surging cells and those with drivers or
    requests of their own, at most MAP_MAX_CELLS, each with its outline.
    `supply` and `demand` are the cell's own; its multiplier reads its
    neighbourhood too. Raises RedisError (the view answers 503)."""
    pipe = get_redis().pipeline()
    pipe.hgetall(keys.MULTIPLIERS)
    pipe.hgetall(keys.CELL_COUNTS)
    pipe.get(keys.UPDATED_AT)
    stored, counts, updated_at = pipe.execute()
    multipliers = {cell: _stored(value) for cell, value in stored.items()}
    rows = []
    for cell in set(multipliers) | set(counts):
        supply, demand = _counts(counts.get(cell))
        rows.append((multipliers.get(cell, ONE), supply, demand, cell))
    rows.sort(key=lambda row: (-row[0], -(row[1] + row[2]), row[3]))
    return {
        "resolution": settings.SURGE_H3_RES,
        "updated_at": _iso(updated_at),
        "max": str(_cap()),
        "cells": [
            {
                "cell": cell,
                "multiplier": str(multiplier),
                "supply": supply,
                "demand": demand,
                "boundary": _boundary(cell),
            }
            for multiplier, supply, demand, cell in rows[:MAP_MAX_CELLS]
            if h3.is_valid_cell(cell)
        ],
    }


def _read(now: float) -> tuple[Counter, Counter, dict[str, Decimal], str | None]:
    """Supply and demand per cell, the published multipliers and their
    UPDATED_AT, in one transaction (so the publish compares against exactly
    the map these were read with)."""
    window = settings.SURGE_DEMAND_WINDOW_S
    # Buckets that began within the window: a request counts for at most
    # the window, and for at least the window less one bucket.
    first = int(-((window - now) // keys.DEMAND_BUCKET_S))  # ceil((now - window) / bucket)
    last = int(now // keys.DEMAND_BUCKET_S)
    pipe = get_redis().pipeline()
    pipe.eval(
        # EVAL, not EVALSHA: a script missing from the server's cache would
        # fail the whole transaction.
        SUPPLY,
        2,
        dispatch_keys.AVAILABLE,
        dispatch_keys.LAST_SEEN,
        repr(now - settings.DRIVER_PRESENCE_TTL_S),
        SUPPLY_CHUNK,
    )
    for minute in range(first, last + 1):
        pipe.hgetall(keys.demand(minute))
    pipe.hgetall(keys.MULTIPLIERS)
    pipe.get(keys.UPDATED_AT)
    positions, *buckets, stored, updated_at = pipe.execute()
    numbers = [float(number) for number in positions.split()]
    resolution = settings.SURGE_H3_RES
    supply = Counter(
        h3.latlng_to_cell(lat, lng, resolution)
        for lng, lat in zip(numbers[::2], numbers[1::2], strict=True)
    )
    demand: Counter = Counter()
    for bucket in buckets:
        for cell, count in bucket.items():
            demand[cell] += int(count)
    previous = {cell: _stored(value) for cell, value in stored.items()}
    return supply, demand, previous, updated_at


def _publish(
    read_updated_at: str | None,
    now: float,
    multipliers: Mapping[str, Decimal],
    supply: Mapping[str, int],
    demand: Mapping[str, int],
) -> bool:
    pairs = [item for cell, value in multipliers.items() for item in (cell, str(value))]
    for cell in _map_cells(multipliers, supply, demand):
        pairs += [cell, f"{supply.get(cell, 0)} {demand.get(cell, 0)}"]
    published = PUBLISH(
        get_redis(),
        [keys.MULTIPLIERS, keys.CELL_COUNTS, keys.UPDATED_AT],
        [
            read_updated_at or "",
            f"{now:.3f}",
            max(1, round(keys.published_ttl_s() * 1000)),
            len(multipliers),
            *pairs,
        ],
    )
    return bool(published)


def _map_cells(
    multipliers: Mapping[str, Decimal], supply: Mapping[str, int], demand: Mapping[str, int]
) -> list[str]:
    """The cells the staff map gets counts for: surging first, then busiest."""
    cells = set(multipliers) | set(supply) | set(demand)
    return sorted(
        cells,
        key=lambda cell: (
            -multipliers.get(cell, ONE),
            -(supply.get(cell, 0) + demand.get(cell, 0)),
            cell,
        ),
    )[:MAP_MAX_CELLS]


def _around(counts: Mapping[str, int]) -> Counter:
    """Each cell's neighbourhood total: every count is added to its cell and
    the cell's neighbours (the ring is symmetric, so that is the same sum)."""
    around: Counter = Counter()
    for cell, count in counts.items():
        for neighbour in h3.grid_disk(cell, 1):
            around[neighbour] += count
    return around


def _toward(previous: Decimal, raw: Decimal) -> Decimal:
    step = _step()
    value = min(raw, previous + step) if raw > previous else max(raw, previous - step)
    return min(_cap(), max(ONE, value))


def _too_soon(updated_at: str | None, now: float) -> bool:
    """Whether the last publish is within half an interval of `now`, either
    side: its stamp is rounded to the millisecond, and another worker's
    clock may run a little ahead of this one's."""
    try:
        elapsed = now - float(updated_at) if updated_at else None
    except ValueError:
        return False
    margin = settings.SURGE_REFRESH_S * MIN_INTERVAL_SHARE
    return elapsed is not None and -margin < elapsed < margin


def _cap() -> Decimal:
    """SURGE_MAX on the one-decimal grid, rounded down so nothing exceeds it."""
    return max(ONE, Decimal(str(settings.SURGE_MAX)).quantize(TENTH, ROUND_FLOOR))


def _step() -> Decimal:
    """SURGE_MAX_STEP on the grid, rounded down: no move is ever larger."""
    return max(TENTH, Decimal(str(settings.SURGE_MAX_STEP)).quantize(TENTH, ROUND_FLOOR))


def _stored(value: str | None) -> Decimal:
    """A stored multiplier, read defensively: anything unreadable is 1.0,
    anything out of range is brought within [1, SURGE_MAX]."""
    if value is None:
        return ONE
    try:
        multiplier = Decimal(value)
        if not multiplier.is_finite():
            return ONE
        multiplier = multiplier.quantize(TENTH, ROUND_HALF_UP)
    except (InvalidOperation, TypeError, ValueError):
        return ONE
    return min(_cap(), max(ONE, multiplier))


def _counts(value: str | None) -> tuple[int, int]:
    try:
        supply, demand = (int(part) for part in (value or "0 0").split())
    except ValueError:
        return 0, 0
    return supply, demand


def _boundary(cell: str) -> list[list[float]]:
    return [[round(lat, 6), round(lng, 6)] for lat, lng in h3.cell_to_boundary(cell)]


def _iso(stamp: str | None) -> str | None:
    try:
        return datetime.fromtimestamp(float(stamp), tz=UTC).isoformat() if stamp else None
    except (ValueError, OverflowError, OSError):
        return None
