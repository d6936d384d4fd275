"""Driver presence services (`dispatch.drivers`) called directly; the REST and
socket edges are tests/dispatch/test_driver_rest.py and test_driver_socket.py."""

import pytest

from dispatch import keys, presence
from dispatch.drivers import drivers_sweep_silent
from taxi.infra.redis import get_redis
from tests.dispatch.support import available, km_north

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_silent_driver_sweep_keeps_fresh_drivers(make_user, driver_at):
    fresh = driver_at(0.4)
    silent = make_user("driver")
    lat, lng = km_north(0.5)
    presence.set_online(silent.pk, lat=lat, lng=lng)
    get_redis().zadd(keys.LAST_SEEN, {silent.pk: 1.0})

    assert drivers_sweep_silent() == [silent.pk]
    assert available() == {fresh.pk}
