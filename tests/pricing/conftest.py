import math
import time

import pytest

from dispatch import presence
from tests.dispatch.support import close_sync_thread_connections
from tests.e2e.stack import e2e_stack
from tests.pricing.test_eta import engine

# Shared fixtures: the stand-in routing engine (tests/pricing/test_eta.py),
# the closing of the sync thread's connections (tests/dispatch/support.py)
# and the real processes (tests/e2e/stack.py).
__all__ = ["close_sync_thread_connections", "e2e_stack", "engine"]


@pytest.fixture
def high_rates(settings):
    """Request throttles out of the way (throttling has its own tests)."""
    rest = settings.REST_FRAMEWORK
    rates = dict.fromkeys(rest["DEFAULT_THROTTLE_RATES"], "100000/min")
    settings.REST_FRAMEWORK = {**rest, "DEFAULT_THROTTLE_RATES": rates}


@pytest.fixture
def presence_clock(monkeypatch):
    """Presence's notion of now, moved by the test (positions are forwarded
    to the rider at most every FORWARD_MIN_INTERVAL_S)."""

    class Clock:
        now = math.floor(time.time()) + 0.5

        def advance(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(presence, "_now", lambda: clock.now)
    return clock
