"""What the staff console shows: drivers from Redis presence, trips and the
matching figures from the database. Reads only; `pages.consumers` sends it.

A city is plain dicts so that a snapshot is one `json.dumps` and a delta is a
comparison of two of them (`diff`), shared by every staff socket of the process.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from dispatch import keys
from dispatch.models import Offer
from taxi.infra.redis import get_async_redis
from trips.models import Trip

# Positions to about a metre: finer changes are noise on a city map, and
# fewer digits are fewer bytes on every staff socket.
POSITION_DIGITS = 5
# The console draws at most this many open trips (the newest).
OPEN_TRIPS_SHOWN = 2000
# A trip that ended stays on the map this long with its final status.
ENDED_SHOWN_S = 30.0
# Time to match and acceptance are over this window.
STATS_WINDOW = timedelta(minutes=5)
# A driver in the online set but silent this long is shown as `silent`: not
# offered trips until they speak again (PROTOCOL.md, "Drivers").
SILENT = "silent"

Driver = tuple[float, float, str]  # lat, lng, state


@dataclass
class City:
    drivers: dict[int, Driver] = field(default_factory=dict)
    trips: dict[str, dict] = field(default_factory=dict)
    counters: dict = field(default_factory=dict)


# KEYS: last_seen. ARGV: the driver hash prefix, then ids to read besides the
# online ones. Returns one string, a line "id,last seen,lat,lng,state,online"
# per driver with a position. One script, one reply, one string: a pipeline of
# one HMGET per driver cost the web process ~0.2 s of CPU a tick at 5,000
# drivers (redis-py parsing 5,000 replies), a flat list still ~0.1 s. The
# driver hashes are read by name (not passed as KEYS): one Redis, as
# everywhere here.
_READ_DRIVERS = """
local out = {}
local function add(id, last)
  local f = redis.call('HMGET', ARGV[1] .. id, 'lat', 'lng', 'state', 'online')
  if f[1] and f[2] then
    out[#out + 1] = table.concat({id, last, f[1], f[2], f[3] or '', f[4] or ''}, ',')
  end
end
local seen = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local listed = {}
for i = 1, #seen, 2 do
  listed[seen[i]] = true
  add(seen[i], seen[i + 1])
end
for i = 2, #ARGV do
  if not listed[ARGV[i]] then add(ARGV[i], '') end
end
return table.concat(out, '\\n')
"""


async def read_drivers(also: set[int]) -> dict[int, Driver]:
    """Online drivers (the presence index), plus `also` (drivers of open
    trips, who may have gone offline mid-trip): one round trip."""
    client = get_async_redis()
    lines = await client.eval(
        _READ_DRIVERS, 1, keys.LAST_SEEN, keys.driver(""), *(str(i) for i in sorted(also))
    )
    silent_before = time.time() - settings.DRIVER_PRESENCE_TTL_S
    drivers = {}
    for line in lines.split("\n") if lines else ():
        driver_id, last, lat, lng, state, online = line.split(",")
        state = state or keys.STATE_FREE
        if state == keys.STATE_FREE and (online != "1" or not last or float(last) < silent_before):
            state = SILENT
        drivers[int(driver_id)] = (
            round(float(lat), POSITION_DIGITS),
            round(float(lng), POSITION_DIGITS),
            state,
        )
    return drivers


def _trip_row(row: tuple) -> dict:
    trip_id, status, reason, pick_lat, pick_lng, drop_lat, drop_lng, driver_id, created = row
    return {
        "id": str(trip_id),
        "status": status,
        "reason": reason,
        "pick": [round(pick_lat, POSITION_DIGITS), round(pick_lng, POSITION_DIGITS)],
        "drop": None
        if drop_lat is None or drop_lng is None
        else [round(drop_lat, POSITION_DIGITS), round(drop_lng, POSITION_DIGITS)],
        "driver": driver_id,
        "created": created.isoformat(),
    }


_TRIP_FIELDS = (
    "id",
    "status",
    "status_reason",
    "pick_up_lat",
    "pick_up_lng",
    "drop_off_lat",
    "drop_off_lng",
    "driver_id",
    "created",
)


def read_trips(ended_ids: list[str]) -> tuple[dict[str, dict], dict[str, dict], int]:
    """(open trips, the given trips that have ended, open requests). Sync: the ORM."""
    open_rows = (
        Trip.objects.filter(status__in=Trip.ACTIVE)
        .order_by("-created")
        .values_list(*_TRIP_FIELDS)[:OPEN_TRIPS_SHOWN]
    )
    open_trips = {trip["id"]: trip for trip in map(_trip_row, open_rows)}
    ended = {}
    if ended_ids:
        rows = Trip.objects.filter(id__in=ended_ids, status__in=Trip.FINAL).values_list(
            *_TRIP_FIELDS
        )
        ended = {trip["id"]: trip for trip in map(_trip_row, rows)}
    requests = Trip.objects.filter(status=Trip.Status.REQUESTED).count()
    return open_trips, ended, requests


def match_stats() -> dict:
    """Time to match (request to accept, p50) and acceptance (accepted over
    accepted, declined and timed out; offers withdrawn by a cancel do not
    count) over the last STATS_WINDOW. Sync: the ORM."""
    since = timezone.now() - STATS_WINDOW
    # expires_at bounds the scan through its index; an offer closes before
    # its deadline, or shortly after it when it times out.
    offers = Offer.objects.filter(
        status__in=(Offer.Status.ACCEPTED, Offer.Status.DECLINED, Offer.Status.EXPIRED),
        expires_at__gte=since - timedelta(minutes=1),
        closed_at__gte=since,
    ).values_list("status", "closed_at", "trip__created")
    waits, accepted, answered = [], 0, 0
    for status, closed_at, requested_at in offers:
        answered += 1
        if status == Offer.Status.ACCEPTED:
            accepted += 1
            waits.append((closed_at - requested_at).total_seconds())
    return {
        "match_p50_s": round(statistics.median(waits), 1) if waits else None,
        "acceptance": round(accepted / answered, 3) if answered else None,
        "offers_answered": answered,
    }


def counters(drivers: dict[int, Driver], requests: int, stats: dict) -> dict:
    by_state = {keys.STATE_FREE: 0, keys.STATE_OFFERED: 0, keys.STATE_ON_TRIP: 0, SILENT: 0}
    for _lat, _lng, state in drivers.values():
        by_state[state] = by_state.get(state, 0) + 1
    online = sum(by_state.values())
    return {"drivers_online": online, "drivers": by_state, "open_requests": requests, **stats}


def diff(before: City, after: City) -> dict:
    """What changed, as the console applies it: `set` rows replace or add,
    `gone` ids leave; counters only when they changed."""
    delta: dict = {}
    drivers_set = [
        [driver_id, *row]
        for driver_id, row in after.drivers.items()
        if before.drivers.get(driver_id) != row
    ]
    drivers_gone = [driver_id for driver_id in before.drivers if driver_id not in after.drivers]
    if drivers_set or drivers_gone:
        delta["drivers"] = {"set": drivers_set, "gone": drivers_gone}
    trips_set = [trip for trip_id, trip in after.trips.items() if before.trips.get(trip_id) != trip]
    trips_gone = [trip_id for trip_id in before.trips if trip_id not in after.trips]
    if trips_set or trips_gone:
        delta["trips"] = {"set": trips_set, "gone": trips_gone}
    if before.counters != after.counters:
        delta["counters"] = after.counters
    return delta


def snapshot(city: City) -> dict:
    """The whole city, in the shape of a delta from an empty one."""
    changes: dict = {"counters": city.counters}
    if city.drivers:
        rows = [[driver_id, *row] for driver_id, row in city.drivers.items()]
        changes["drivers"] = {"set": rows, "gone": []}
    if city.trips:
        changes["trips"] = {"set": list(city.trips.values()), "gone": []}
    return changes


def split(changes: dict, limit: int) -> list[dict]:
    """`changes`' driver and trip rows ({"set", "gone"} lists) in parts of at
    most about `limit` bytes of JSON each, in order. Every WebSocket frame
    the server sends must stay under daphne's message limit (64 KiB, the
    Procfile's --websocket-max-message-size, which autobahn applies to
    outgoing messages too: a larger one is dropped, not sent)."""
    parts: list[dict] = []
    part: dict = {}
    size = 0
    for section in ("drivers", "trips"):
        for key in ("set", "gone"):
            for row in changes.get(section, {}).get(key, []):
                row_size = len(json.dumps(row, separators=(",", ":"))) + 1
                if part and size + row_size > limit:
                    parts.append(part)
                    part, size = {}, 0
                rows = part.setdefault(section, {"set": [], "gone": []})
                rows[key].append(row)
                size += row_size
    if part:
        parts.append(part)
    return parts


def trip_history(trip_id: UUID) -> dict | None:
    """A trip and every offer made for it, oldest first: who was asked, how
    far away, and how each offer ended. Sync: the ORM."""
    trip = Trip.objects.filter(id=trip_id).values_list(*_TRIP_FIELDS).first()
    if trip is None:
        return None
    offers = Offer.objects.filter(trip_id=trip_id).order_by("created")
    return {
        **_trip_row(trip),
        "offers": [
            {
                "at": offer.created.isoformat(),
                "driver": offer.driver_id,
                "distance_km": None if offer.distance_km is None else round(offer.distance_km, 2),
                "status": offer.status,
                "closed_at": offer.closed_at.isoformat() if offer.closed_at else None,
            }
            for offer in offers
        ],
    }
