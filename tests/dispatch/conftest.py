import pytest

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
