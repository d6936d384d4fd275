"""Fixtures of the hardening tests."""

import pytest


@pytest.fixture
def high_rates(settings):
    """Request throttles out of the way, so every request reaches validation
    (throttling has its own tests in test_throttling.py)."""
    rest = settings.REST_FRAMEWORK
    rates = dict.fromkeys(rest["DEFAULT_THROTTLE_RATES"], "100000/min")
    settings.REST_FRAMEWORK = {**rest, "DEFAULT_THROTTLE_RATES": rates}


@pytest.fixture
def unlimited_frames(settings):
    """The socket's flood limit out of the way, for sockets opened after this
    (it has its own tests in tests/trips/test_ws_limits.py)."""
    settings.WS_RATE_PER_S = 100_000
    settings.WS_RATE_BURST = 100_000
