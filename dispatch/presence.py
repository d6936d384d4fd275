"""Driver presence and positions in Redis (DESIGN.md: no database write per ping).

Every change of a driver's presence is one small Lua script, so it is atomic:
a ping cannot put a driver back in the available set between the moment they
are offered a trip and the moment that offer is recorded here, and a ping is
one round trip whatever it decides (update the position, refresh last-seen,
maybe forward the position to the rider).

The database stays the truth about offers and trips. When this module and the
database disagree (a lost key, a hook that ran late), the dispatch loop's
checks under row locks decide, and it corrects this module as it goes.

Key names and TTLs: `dispatch.keys`; the scripts: `dispatch.scripts`. The
sync functions use `get_redis()`; `aping` is the event loop's twin of `ping`,
on `get_async_redis()`.
"""

import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError

from dispatch import keys, matching, scripts
from taxi.infra.redis import get_async_redis, get_redis
from workers import queue

logger = logging.getLogger(__name__)

# `nearby` reads this many times its answer's cap from the geo index before
# placing drivers on the grid: with more drivers than that in reach, which of
# the farthest are shown depends on exact distances (a cap only a crowded
# city's map meets, where no one driver can be singled out by it).
NEARBY_SCAN_FACTOR = 4

# The speed check's allowances beside LOCATION_MAX_SPEED_KMH. Two GPS fixes
# a moment apart can disagree by tens of metres (more between tall buildings),
# which over a fraction of a second reads as any speed at all: a move up to
# this much beyond what the top speed allows passes (without becoming the
# point the check measures from, so allowances do not add up).
LOCATION_JITTER_M = 100.0
# A last accepted position older than this is no evidence against a new one,
# so a refused driver (a phone that reported a stale place, a driver who flew
# in) is back in matching within this long at worst.
LOCATION_MEMORY_S = 3600


@dataclass(frozen=True, slots=True)
class Forward:
    """A position due to the rider of the driver's trip, and where the driver
    is heading (the pick-up, then the drop-off), as (lat, lng), when known."""

    trip_id: str
    rider_id: int
    target: tuple[float, float] | None = None


def products_field(codes: Collection[str] | None) -> str:
    """The driver hash's `products`: ',standard,xl,' for a vehicle's products,
    '' for a driver with no vehicle on record (DEFAULT_PRODUCT only)."""
    return "" if codes is None else "," + ",".join(sorted(codes)) + ","


def _point(lng: object, lat: object) -> tuple[float, float] | None:
    try:
        return float(lat), float(lng)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _now() -> float:
    return time.time()


def _stamp(now: float) -> str:
    return f"{now:.3f}"


def _position_check_args() -> list:
    return [
        repr(settings.LOCATION_MAX_SPEED_KMH / 3.6),
        repr(LOCATION_JITTER_M),
        LOCATION_MEMORY_S,
        keys.LOCATION_REJECTED_TTL_S,
    ]


def _day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def _ping_args(driver_id: int, lat: float, lng: float, now: float) -> tuple[list, list]:
    return (
        [
            keys.AVAILABLE,
            keys.LAST_SEEN,
            keys.driver(driver_id),
            keys.location_rejected(_day(now)),
        ],
        [
            driver_id,
            repr(float(lng)),
            repr(float(lat)),
            _stamp(now),
            keys.DRIVER_TTL_S,
            keys.index_ttl_s(),
            keys.FORWARD_MIN_INTERVAL_S,
            *_position_check_args(),
        ],
    )


def _refused(driver_id: int, reply: object, source: str) -> bool:
    """Whether the script refused the position; if so, say so in the log."""
    if not reply or reply[0] != "far":
        return False
    metres, seconds = float(reply[1]), float(reply[2])
    logger.warning(
        "dispatch.location_rejected",
        extra={
            "driver_id": driver_id,
            "source": source,
            # Stamps are to the millisecond: a jump within one is over that.
            "speed_kmh": round(metres / max(seconds, 0.001) * 3.6, 1),
            "distance_km": round(metres / 1000, 3),
            "elapsed_s": round(seconds, 3),
        },
    )
    return True


def _forward(driver_id: int, reply: object) -> Forward | None:
    if not reply or _refused(driver_id, reply, "location"):
        return None
    _, trip_id, rider_id, to_lng, to_lat = reply
    if not trip_id or not str(rider_id).isdigit():
        return None
    return Forward(trip_id=trip_id, rider_id=int(rider_id), target=_point(to_lng, to_lat))


def ping(driver_id: int, *, lat: float, lng: float) -> Forward | None:
    """A position from the driver: one round trip. Returns where to forward
    it when the driver is on a trip and the rider is due an update.

    A position that implies a move faster than LOCATION_MAX_SPEED_KMH from the
    driver's last accepted one is refused: not stored, not forwarded, and the
    driver is out of matching until a plausible one arrives; it is logged
    (`dispatch.location_rejected`) and counted (`location_rejections`)."""
    keys_, args = _ping_args(driver_id, lat, lng, _now())
    return _forward(driver_id, scripts.PING(get_redis(), keys_, args))


async def aping(driver_id: int, *, lat: float, lng: float) -> Forward | None:
    keys_, args = _ping_args(driver_id, lat, lng, _now())
    return _forward(driver_id, await scripts.PING.run_async(get_async_redis(), keys_, args))


def set_online(
    driver_id: int,
    *,
    lat: float,
    lng: float,
    state: str = keys.STATE_FREE,
    trip_id: object = None,
    rider_id: int | None = None,
    target: tuple[float, float] | None = None,
    products: str = "",
) -> None:
    """The driver is online at (lat, lng). `state` is what the database says
    they are doing: free drivers enter the available set, the others wait
    for their offer or trip to end (`target`: where that trip heads them).
    `products`: what they may be offered (`products_field`). The position
    passes the speed check of `ping` first: going offline and online again
    does not launder a jump."""
    now = _now()
    reply = scripts.ONLINE(
        get_redis(),
        [
            keys.AVAILABLE,
            keys.LAST_SEEN,
            keys.driver(driver_id),
            keys.location_rejected(_day(now)),
        ],
        [
            driver_id,
            repr(float(lng)),
            repr(float(lat)),
            _stamp(now),
            keys.DRIVER_TTL_S,
            keys.index_ttl_s(),
            state,
            "" if trip_id is None else str(trip_id),
            "" if rider_id is None else str(rider_id),
            *_position_check_args(),
            products,
            *_target_args(target),
        ],
    )
    _refused(driver_id, reply, "online")


def _target_args(target: tuple[float, float] | None) -> list[str]:
    if target is None:
        return ["", ""]
    return [repr(float(target[1])), repr(float(target[0]))]


def set_products(driver_id: int, codes: Collection[str] | None) -> None:
    """The driver's vehicle changed: what they may be offered follows at once
    when they are online (going online writes it otherwise)."""
    scripts.PRODUCTS(get_redis(), [keys.driver(driver_id)], [products_field(codes)])


def set_target(driver_id: int, *, trip_id, target: tuple[float, float] | None) -> None:
    """The driver on `trip_id` now heads for `target` (the drop-off once the
    rider is in). After commit; a Redis failure is logged, not raised (only
    the ETA beside the rider's positions goes stale)."""
    try:
        scripts.TARGET(get_redis(), [keys.driver(driver_id)], [str(trip_id), *_target_args(target)])
    except RedisError:
        logger.exception("presence.set_target_failed", extra={"driver_id": driver_id})


def position(driver_id: int) -> tuple[float, float] | None:
    """The driver's last accepted position (lat, lng), if Redis knows it."""
    lng, lat = get_redis().hmget(keys.driver(driver_id), ["lng", "lat"])
    return _point(lng, lat)


def position_seen(driver_id: int) -> tuple[tuple[float, float], datetime] | None:
    """The driver's last accepted position (lat, lng) and when they were last
    heard from (a position the speed check refused counts as heard), if
    Redis knows both."""
    lng, lat, seen = get_redis().hmget(keys.driver(driver_id), ["lng", "lat", "seen"])
    point = _point(lng, lat)
    try:
        seen_at = datetime.fromtimestamp(float(seen), tz=UTC)
    except (TypeError, ValueError):
        return None
    return None if point is None else (point, seen_at)


def location_rejections(day: str | None = None) -> dict[int, int]:
    """Positions refused by the speed check on `day` (YYYY-MM-DD, UTC; today
    by default), per driver: for operators and tests."""
    key = keys.location_rejected(day or _day(_now()))
    counted = get_redis().zrange(key, 0, -1, withscores=True)
    return {int(member): int(count) for member, count in counted}


def set_offline(driver_id: int) -> None:
    """No new offers. A trip in progress is kept (and still forwarded)."""
    scripts.OFFLINE(
        get_redis(),
        [keys.AVAILABLE, keys.LAST_SEEN, keys.driver(driver_id)],
        [driver_id, keys.DRIVER_TTL_S],
    )


def mark_offered(driver_id: int, *, trip_id=None) -> None:
    """The driver holds a live offer (for `trip_id`, which then no longer
    waits for supply): out of the available set until released.

    Runs after the offer commits; a Redis failure is logged, not raised (the
    database's live offer keeps the driver from a second one meanwhile)."""
    try:
        scripts.OFFERED(
            get_redis(),
            [keys.AVAILABLE, keys.driver(driver_id), keys.WAITING, keys.WAITING_PRODUCT],
            [driver_id, keys.DRIVER_TTL_S, "" if trip_id is None else str(trip_id)],
        )
    except RedisError:
        logger.exception("presence.mark_offered_failed", extra={"driver_id": driver_id})


def on_driver_assigned(
    driver_id: int, *, trip_id, rider_id: int, target: tuple[float, float] | None = None
) -> None:
    """The driver took a trip: no more offers; positions now stream to the rider.

    Runs after the accept commits; a Redis failure is logged, not raised (the
    trip is assigned either way, and the database check keeps the driver from
    being offered another trip meanwhile)."""
    try:
        scripts.ASSIGNED(
            get_redis(),
            [keys.AVAILABLE, keys.driver(driver_id)],
            [driver_id, keys.DRIVER_TTL_S, str(trip_id), str(rider_id), *_target_args(target)],
        )
    except RedisError:
        logger.exception("presence.assign_failed", extra={"driver_id": driver_id})


def on_driver_released(driver_id: int, *, trip_id=None) -> bool:
    """The driver's offer or trip (`trip_id`) ended: available again if still
    online and heard from lately. Returns whether they are back in the
    available set. The ended trip is remembered, so that trip's assignment,
    should it arrive late (the accept's after-commit work racing a cancel's),
    is ignored instead of putting the driver back on a trip that is over."""
    try:
        back = scripts.RELEASED(
            get_redis(),
            [keys.AVAILABLE, keys.LAST_SEEN, keys.driver(driver_id)],
            [
                driver_id,
                _stamp(_now()),
                settings.DRIVER_PRESENCE_TTL_S,
                keys.DRIVER_TTL_S,
                keys.index_ttl_s(),
                "" if trip_id is None else str(trip_id),
            ],
        )
    except RedisError:
        logger.exception("presence.release_failed", extra={"driver_id": driver_id})
        return False
    return bool(back)


def wait(trip_id, *, lat: float, lng: float, product: str) -> None:
    """The trip found nobody free in range: it waits at its pick-up for the
    first eligible driver who becomes free nearby (`waiting_near`)."""
    ttl = keys.waiting_ttl_s()
    pipe = get_redis().pipeline(transaction=True)
    pipe.geoadd(keys.WAITING, [repr(float(lng)), repr(float(lat)), str(trip_id)])
    pipe.hset(keys.WAITING_PRODUCT, str(trip_id), product)
    pipe.expire(keys.WAITING, ttl)
    pipe.expire(keys.WAITING_PRODUCT, ttl)
    pipe.execute()


def stop_waiting(trip_id) -> None:
    """The trip got an offer or ended. A Redis failure is logged: a stale
    entry only wakes a trip that has nothing to do, and expires."""
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.zrem(keys.WAITING, str(trip_id))
        pipe.hdel(keys.WAITING_PRODUCT, str(trip_id))
        pipe.execute()
    except RedisError:
        logger.exception("presence.stop_waiting_failed", extra={"trip_id": str(trip_id)})


def waiting(trip_ids: list) -> set[str]:
    """Which of these trips wait for supply (for the repair sweep, which
    leaves them to the drivers who will wake them)."""
    if not trip_ids:
        return set()
    scores = get_redis().zmscore(keys.WAITING, [str(t) for t in trip_ids])
    return {str(t) for t, score in zip(trip_ids, scores, strict=True) if score is not None}


def waiting_near(driver_id: int) -> list[str]:
    """The trips waiting for supply within the widest search ring of the
    driver (who just became free), nearest first, that they may serve."""
    return [
        str(trip_id)
        for trip_id in scripts.WAKE(
            get_redis(),
            [keys.WAITING, keys.WAITING_PRODUCT, keys.driver(driver_id)],
            [repr(max(settings.DISPATCH_RADII_KM)), settings.DEFAULT_PRODUCT, keys.WAKE_COUNT],
        )
    ]


def nearest_available(
    *, lat: float, lng: float, exclude: Collection[int] = (), product: str | None = None
) -> Iterator[matching.Candidate]:
    """Available drivers around (lat, lng), ring by ring (DISPATCH_RADII_KM),
    nearest first, skipping `exclude`, the stale and (with `product`) those
    not eligible for it (`matching.ring_search`)."""
    client = get_redis()
    product_args = [product or "", settings.DEFAULT_PRODUCT, keys.driver("")]

    def search(radius_km: float, count: int) -> list:
        reply = scripts.SEARCH(
            client,
            [keys.AVAILABLE, keys.LAST_SEEN],
            [repr(float(lng)), repr(float(lat)), repr(float(radius_km)), count, *product_args],
        )
        return [(member, float(distance), seen) for member, distance, seen in reply]

    return matching.ring_search(
        search,
        rings=matching.search_rings(settings.DISPATCH_RADII_KM),
        exclude=exclude,
        fresh_after=_now() - settings.DRIVER_PRESENCE_TTL_S,
    )


def nearby(*, lat: float, lng: float, radius_km: float, limit: int) -> list[tuple[float, float]]:
    """Positions of available drivers within radius_km, nearest first, on the
    public map's grid (about 100 m). No ids leave this function.

    The answer depends on grid cells only: the centre is moved to its cell's,
    each driver is placed at their cell's before the radius is applied, and
    a radius below NEARBY_MIN_RADIUS_KM is read as that. So no choice of
    centres and radii tells where inside its cell a driver is (a binary
    search on the radius from three centres used to locate one to a metre)."""
    centre = matching.round_position(lat, lng)
    radius_km = max(radius_km, settings.NEARBY_MIN_RADIUS_KM)
    client = get_redis()
    found = client.geosearch(
        keys.AVAILABLE,
        longitude=centre[1],
        latitude=centre[0],
        # Every driver whose cell's centre may lie within the radius.
        radius=radius_km + matching.GRID_MARGIN_KM,
        unit="km",
        sort="ASC",
        count=min(matching.MAX_SEARCH_COUNT, limit * NEARBY_SCAN_FACTOR),
        withcoord=True,
    )
    if not found:
        return []
    seen = client.zmscore(keys.LAST_SEEN, [member for member, _ in found])
    fresh_after = _now() - settings.DRIVER_PRESENCE_TTL_S
    positions = [
        (position[1], position[0])
        for (_member, position), last in zip(found, seen, strict=True)
        if last is not None and last > fresh_after
    ]
    return matching.on_the_grid(positions, centre=centre, radius_km=radius_km, limit=limit)


def sweep_silent(*, batch: int) -> list[int]:
    """Drivers silent for DRIVER_PRESENCE_TTL_S leave the available set (a
    later ping brings them back). Their hash, and so a trip, is kept."""
    cutoff = _now() - settings.DRIVER_PRESENCE_TTL_S
    removed = scripts.SWEEP_SILENT(
        get_redis(), [keys.AVAILABLE, keys.LAST_SEEN], [_stamp(cutoff), batch]
    )
    return [int(member) for member in removed]


def release_on_commit(driver_id: int, *, trip_id=None) -> None:
    """`on_driver_released` once the caller's transaction commits: the one
    way the places where an offer or a trip ends give the driver back; a
    driver back in the available set wakes the trips waiting near them."""
    transaction.on_commit(lambda: _release_and_wake(driver_id, trip_id), robust=True)


def _release_and_wake(driver_id: int, trip_id) -> None:
    if on_driver_released(driver_id, trip_id=trip_id):
        wake_waiting(driver_id)


def wake_waiting(driver_id: int) -> list[str]:
    """The driver just became free: the trips waiting for supply near them
    that they may serve go to dispatch now (each then offers its nearest
    eligible driver, this one or another). Returns their ids."""
    try:
        trip_ids = waiting_near(driver_id)
    except RedisError:
        logger.exception("presence.wake_failed", extra={"driver_id": driver_id})
        return []
    for trip_id in trip_ids:
        queue.dispatch_now(trip_id)
    if trip_ids:
        logger.info("dispatch.waiting_woken", extra={"driver_id": driver_id, "trips": trip_ids})
    return trip_ids
