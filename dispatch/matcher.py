"""The matcher (`manage.py run_matcher`, the Procfile's `matcher`): the
window of a windowed policy (`DISPATCH_POLICY=batch`).

Every DISPATCH_BATCH_WINDOW_MS it runs one window (`dispatch.loop.
trips_offer_window`): the trips gathered since the last are assigned
together and offered. At most one matcher works on an area at a time: it
holds the area's lease in Redis (`dispatch.lease`) and renews it every
window; the others stand by, trying for it every STANDBY_EVERY_S, and one of
them takes over within MATCHER_LEASE_MS plus that after the holder dies
(about 6 s), or at once when it stops cleanly and deletes its lease.

Under a policy that is not windowed (`nearest`, the default) a matcher does
nothing but wait: the dispatch tasks offer each trip as it comes.

Areas: one, the whole city (`keys.MATCHER_AREA_ALL`). To split a large city,
give each area its own lease key and have `trips_offer_window` read only the
trips whose pick-up lies in that area (a cell id stored on the trip, indexed
with status and created); a matcher per area then runs beside the others.
Drivers near a border are shared, and `offer_open`'s locks already make two
areas proposing the same driver safe: one offer wins, the other trip waits.
When one area stops being enough: a window reserves its offers one after
another (each `offer_open` is a transaction, then its pushes), so its work
grows with the requests it holds. Once that nears the window, requests wait
longer than a window; once it nears the lease's PX, a standby takes over in
mid-window and two matchers work at once (safe, but wasted). BENCHMARKS.md
("Matching") has the cost per offer measured.
"""

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from redis.exceptions import RedisError

from dispatch import keys, policies
from dispatch.lease import Lease
from dispatch.loop import WindowResult, trips_offer_window

logger = logging.getLogger(__name__)

# A standby tries for the lease this often (at most; a shorter window, then).
STANDBY_EVERY_S = 1.0


def lease_ttl_ms(window_ms: float) -> int:
    """Long enough to outlive a few windows between renewals."""
    return int(max(keys.MATCHER_LEASE_MS, 3 * window_ms))


def run_matcher(
    stop: threading.Event,
    *,
    area: str = keys.MATCHER_AREA_ALL,
    on_window: Callable[[WindowResult], None] | None = None,
) -> None:
    """Match windows until `stop` is set, while holding the area's lease;
    give the lease up on the way out."""
    lease = Lease(keys.matcher_lease(area), ttl_ms=lease_ttl_ms(settings.DISPATCH_BATCH_WINDOW_MS))
    holding = False
    # Import the policy now rather than in the first window (batch's solver
    # brings in scipy: a few hundred ms, paid by that window's requests).
    policies.current()
    logger.info("matcher.started", extra={"area": area, "policy": settings.DISPATCH_POLICY})
    try:
        while not stop.is_set():
            window_s = settings.DISPATCH_BATCH_WINDOW_MS / 1000
            began = time.monotonic()
            if not policies.is_windowed(policies.current()):
                stop.wait(window_s)
                continue
            if lease.acquire() != holding:
                holding = lease.held
                logger.info(
                    "matcher.lease_taken" if holding else "matcher.lease_lost",
                    extra={"area": area},
                )
            if holding:
                close_old_connections()
                try:
                    result = trips_offer_window()
                except (DatabaseError, RedisError):
                    logger.exception("matcher.window_failed", extra={"area": area})
                else:
                    if on_window is not None:
                        on_window(result)
                wait = window_s
            else:
                wait = min(window_s, STANDBY_EVERY_S)
            stop.wait(max(0.0, wait - (time.monotonic() - began)))
    finally:
        lease.release()
        close_old_connections()
        logger.info("matcher.stopped", extra={"area": area})
