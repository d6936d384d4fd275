"""Registrations racing on real threads against the real database (SQLite
and PostgreSQL): one token is one row, whoever registers it at once."""

import pytest

from notifications import tokens
from notifications.models import Device
from notifications.services import device_register
from tests.notifications.support import fcm_token
from tests.trips.test_races import run_together

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


@pytest.mark.parametrize("round_", range(3))
def test_one_token_registered_at_once_by_many_is_one_device(make_user, round_):
    # Given one phone's token and several users registering it at the same moment
    users = [make_user("rider") for _ in range(THREADS)]
    token = tokens.parse("fcm", fcm_token())

    outcomes = run_together([lambda u=u: device_register(user=u, token=token) for u in users])

    # Then every call succeeded, all answered the same device, and it is one
    # row belonging to one of them
    assert all(isinstance(outcome, Device) for outcome in outcomes), outcomes
    assert len({outcome.pk for outcome in outcomes}) == 1
    (device,) = Device.objects.all()
    assert device.user_id in {u.pk for u in users}
