"""Every Redis key dispatch uses, and how long each lives (STYLE.md rule 10).

Redis holds what can be rebuilt: who is online, where, and whether they are
free. The database stays the truth about offers and trips; a key lost here
costs a driver one `driver.online`, never a wrong trip.

    AVAILABLE      GEO set (a sorted set underneath) of the drivers that may be
                   offered a trip now: online, free, heard from lately. Searched
                   by the dispatch loop and /api/driver/nearby/.
    LAST_SEEN      sorted set: online driver id -> unix time of the last ping.
                   The silent-driver sweep reads it oldest first.
    driver(id)     hash per driver: `online` ("1"/"0"), `state` (free, offered,
                   on_trip), `trip` and `rider` while on a trip, `lat`/`lng` of
                   the last accepted position, `seen` (unix time) and `fwd`
                   (unix time of the last position forwarded to the rider);
                   `fix_lat`/`fix_lng`/`fix_at`, the position the speed check
                   measures from, and `held` ("1") while the driver's latest
                   position was refused by it (dispatch/presence.py).
    WAITING        GEO set of the REQUESTED trips that found nobody free in range
                   and wait for supply (PROTOCOL.md Part 2, "Waiting for
                   supply"), at their pick-up; WAITING_PRODUCT: hash trip id ->
                   its product. A driver who becomes free looks here
                   (`presence.waiting_near`), so no one polls for them.
    matcher_lease(area)
                   string: the token of the one matcher (`dispatch.matcher`)
                   working on the area; PX MATCHER_LEASE_MS, renewed every
                   window, deleted by its holder on the way out.
    location_rejected(day)
                   sorted set per UTC day: driver id -> positions refused by
                   the speed check that day. For operators:
                   ZREVRANGE <key> 0 9 WITHSCORES names the worst offenders.

The two shared sets get a TTL refreshed by every write, so a Redis left alone
(the whole fleet silent) empties itself; their members are pruned one by one
by the sweep. A driver's hash lives as long as its owner keeps pinging, with a
margin longer than any trip, so a driver on a trip whose phone goes quiet for
a while still has their trip when it speaks again.
"""

from django.conf import settings

PREFIX = "taxi:dispatch:"

AVAILABLE = PREFIX + "available"
LAST_SEEN = PREFIX + "last_seen"
WAITING = PREFIX + "waiting"
WAITING_PRODUCT = PREFIX + "waiting_product"
# How many waiting trips a driver who becomes free wakes at once.
WAKE_COUNT = 3

# Values of the `state` field of `driver(id)` (the Lua scripts in
# dispatch/scripts.py name its fields).
STATE_FREE = "free"
STATE_OFFERED = "offered"
STATE_ON_TRIP = "on_trip"

# A driver's hash outlives silence by this much: longer than any trip.
DRIVER_TTL_S = 6 * 3600
# Positions go to the rider at most this often per driver (4 a second).
FORWARD_MIN_INTERVAL_S = 0.25
# A day's count of refused positions is kept this long after its last one.
LOCATION_REJECTED_TTL_S = 8 * 24 * 3600


def driver(driver_id: int | str) -> str:
    return f"{PREFIX}driver:{driver_id}"


# A dead matcher's lease runs out this long after its last renewal; a standby
# trying once a window then takes over (well within 10 s).
MATCHER_LEASE_MS = 5000
# The one area matched so far: the whole city (see dispatch/matcher.py for
# splitting by area).
MATCHER_AREA_ALL = "all"


def matcher_lease(area: str) -> str:
    return f"{PREFIX}matcher:lease:{area}"


def location_rejected(day: str) -> str:
    """`day` as YYYY-MM-DD, UTC."""
    return f"{PREFIX}location_rejected:{day}"


# A user's open sockets (trips/sockets.py), for WS_MAX_SOCKETS_PER_USER across
# every web process: a sorted set, socket id -> end of its lease (unix time).
# A live socket renews its lease every SOCKET_LEASE_S / 3; a crashed process's
# sockets stop counting when their leases run out, and the key itself expires
# SOCKET_LEASE_S after the last renewal.
SOCKET_LEASE_S = 60


def user_sockets(user_id: int | str) -> str:
    return f"taxi:ws:sockets:{user_id}"


# A log-in whose refresh token was revoked (log-out): no socket opens with, or
# is refreshed to, an access token of it. Kept as long as such a token lives.
def revoked_login(login_id: str) -> str:
    return f"taxi:auth:revoked_login:{login_id}"


def revoked_login_ttl_s() -> int:
    """As long as an access token minted just before the log-out lives."""
    return int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()) + 60


def waiting_ttl_s() -> int:
    """TTL of WAITING and WAITING_PRODUCT: past the longest search."""
    return int(settings.DISPATCH_SEARCH_TIMEOUT_S * 2) + 60


def index_ttl_s() -> int:
    """TTL of AVAILABLE and LAST_SEEN: a few presence windows past the last write."""
    return int(settings.DRIVER_PRESENCE_TTL_S * 4) + 60
