"""A lease in Redis: at most one holder of a named piece of work at a time.

The matcher (`dispatch.matcher`) holds one per area. The holder takes it with
SET NX PX and a random token, renews it well before it runs out, and deletes
it on the way out; a holder that dies without a word loses it when the PX
runs out, and a standby's next try takes it over. Renewal and release check
the token (one script each, `dispatch.scripts`), so a holder that paused past
its lease cannot renew or delete its successor's.

A lease is a courtesy, not the safety net: a paused holder may still be
writing while its successor starts. Offers stay correct either way, since
`dispatch.offers.offer_open` re-checks the trip and the driver under row
locks and the database's constraints allow one live offer per trip.
"""

import secrets

from redis.exceptions import RedisError

from dispatch import keys, scripts
from taxi.infra.redis import get_redis


class Lease:
    def __init__(self, key: str, *, ttl_ms: int = keys.MATCHER_LEASE_MS) -> None:
        self.key, self.ttl_ms = key, ttl_ms
        self.token = secrets.token_hex(16)
        self.held = False

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; renew it if we do. Whether we hold it now."""
        try:
            if self.held and scripts.LEASE_RENEW(
                get_redis(), [self.key], [self.token, self.ttl_ms]
            ):
                return True
            self.held = bool(get_redis().set(self.key, self.token, nx=True, px=self.ttl_ms))
        except RedisError:
            self.held = False
        return self.held

    def release(self) -> None:
        """Give it up now (only if still ours), so a standby need not wait out the PX."""
        if self.held:
            self.held = False
            try:
                scripts.LEASE_RELEASE(get_redis(), [self.key], [self.token])
            except RedisError:
                pass  # it runs out on its own


def holder(key: str) -> str | None:
    """The token holding the lease, if any (for operators and tests)."""
    return get_redis().get(key)
