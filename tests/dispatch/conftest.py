import pytest

from dispatch import presence
from tests.dispatch.support import close_sync_thread_connections, put_online

__all__ = ["close_sync_thread_connections"]


@pytest.fixture
def driver_at(make_user):
    """A new driver, online and free, `km` north of the pick-up."""

    def make(km: float):
        driver = make_user("driver")
        put_online(driver, km)
        return driver

    return make


@pytest.fixture
def clock(monkeypatch):
    """Presence's notion of now, moved by the test."""

    class Clock:
        now = 1_700_000_000.0

        def advance(self, seconds: float) -> None:
            self.now += seconds

    c = Clock()
    monkeypatch.setattr(presence, "_now", lambda: c.now)
    return c
