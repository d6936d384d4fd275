"""What the simulator's runs against a real stack share: a small town, the
stack's settings, and a look at the trips it left in the database."""

from contextlib import contextmanager
from pathlib import Path

from channels.db import database_sync_to_async
from django.db import connection

from sim.geo import BBox
from tests.e2e.stack import running_stack
from tests.web import database_url
from trips.models import Trip

# About 1 km square: every driver is within the first search ring of every pick-up.
SMALL_TOWN = BBox(38.895, -77.04, 38.904, -77.028)
# The simulated clock runs 100 times the wall's: so do its drivers. Riders
# quote before every request; surge is refreshed within the run.
STACK_ENV = {"LOCATION_MAX_SPEED_KMH": "0", "THROTTLE_QUOTES": "100000/min", "SURGE_REFRESH_S": "5"}
# Still open: waiting for its time or a driver, or with one.
OPEN = (
    Trip.Status.SCHEDULED,
    Trip.Status.REQUESTED,
    Trip.Status.STARTED,
    Trip.Status.ARRIVED,
    Trip.Status.IN_PROGRESS,
)


@contextmanager
def sim_stack(work_dir: Path, **env: str):
    """Web, worker and beat against the test database, with `env` on top of
    the simulator's settings."""
    with running_stack(work_dir, database_url=database_url(), env={**STACK_ENV, **env}) as stack:
        yield stack


@database_sync_to_async
def trips_left_open() -> int:
    try:
        return Trip.objects.filter(status__in=OPEN).count()
    finally:
        connection.close()
