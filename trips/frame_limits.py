"""Frame budgets for the `/taxi/` socket (PROTOCOL.md: "Sending far faster
than any app would ... is answered with `rate_limited` errors and then a
close"): a token bucket per user in this process, and strikes per socket.
`trips.consumers` applies them to every client frame.
"""

import collections
import time
from collections.abc import Callable

from django.conf import settings

# Flood control: frames beyond the token bucket are strikes, forgiven at
# FLOOD_FORGIVE_PER_S; more than FLOOD_STRIKES outstanding closes the socket.
# So a burst past the bucket only earns `rate_limited` errors, while a client
# that keeps sending faster than WS_RATE_PER_S + FLOOD_FORGIVE_PER_S (60 a
# second by default) is closed: at 100 a second after about 3 s. (Resetting
# the count on every allowed frame instead would never close a flood slow
# enough to let a token through every few frames.)
FLOOD_STRIKES = 50
FLOOD_FORGIVE_PER_S = 10.0


class TokenBucket:
    """`rate` frames a second on average, bursts up to `burst`."""

    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = float(burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FrameRateLimiter:
    """A socket's frame budget: a token bucket (its own, or one shared with
    the user's other sockets) plus this socket's strike count for the frames
    the bucket refuses. Strikes stay per socket, so a user's flood closes the
    flooding socket, while their quiet socket only hears `rate_limited` until
    the shared bucket refills."""

    ALLOW, LIMIT, CLOSE = "allow", "limit", "close"

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        bucket: TokenBucket | None = None,
        strikes_allowed: float = FLOOD_STRIKES,
        forgive_per_s: float = FLOOD_FORGIVE_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket if bucket is not None else TokenBucket(rate, burst, clock=clock)
        self.strikes_allowed, self.forgive_per_s = strikes_allowed, forgive_per_s
        self.clock = clock
        self.strikes, self.stamp = 0.0, clock()

    def check(self) -> str:
        now = self.clock()
        self.strikes = max(0.0, self.strikes - max(0.0, now - self.stamp) * self.forgive_per_s)
        self.stamp = now
        if self.bucket.take():
            return self.ALLOW
        self.strikes += 1
        return self.CLOSE if self.strikes > self.strikes_allowed else self.LIMIT


class UserBuckets:
    """One bucket per user for all their sockets in this process: 200 sockets
    on one token once had 200 budgets. A bucket outlives the user's last
    socket here until it would have refilled, so closing and reopening sockets
    does not buy a fresh burst. Not shared across processes: that would be a
    Redis round trip per frame on the hot path (`update.location`), and the cap
    of WS_MAX_SOCKETS_PER_USER sockets bounds a user to that many buckets at worst."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._held: dict[int, tuple[TokenBucket, int]] = {}
        # Users whose last socket here closed, oldest first: (user id, when).
        self._idle: collections.deque[tuple[int, float]] = collections.deque()

    def hold(self, user_id: int) -> TokenBucket:
        self._forget_refilled()
        bucket, holders = self._held.get(user_id, (None, 0))
        if bucket is None:
            bucket = TokenBucket(settings.WS_RATE_PER_S, settings.WS_RATE_BURST)
        self._held[user_id] = (bucket, holders + 1)
        return bucket

    def release(self, user_id: int) -> None:
        bucket, holders = self._held.get(user_id, (None, 0))
        if bucket is None:
            return
        self._held[user_id] = (bucket, max(0, holders - 1))
        if holders <= 1:
            self._idle.append((user_id, self.clock()))
        self._forget_refilled()

    def clear(self) -> None:
        self._held.clear()
        self._idle.clear()

    def _forget_refilled(self) -> None:
        refill_s = settings.WS_RATE_BURST / settings.WS_RATE_PER_S
        now = self.clock()
        while self._idle and now - self._idle[0][1] >= refill_s:
            user_id, _ = self._idle.popleft()
            held = self._held.get(user_id)
            if held is not None and held[1] == 0:
                del self._held[user_id]


user_buckets = UserBuckets()
