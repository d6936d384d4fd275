"""After-commit work of the dispatch loop, queued from inside a transaction."""

from uuid import UUID

from django.db import transaction


def request_dispatch_on_commit(trip_id: UUID) -> None:
    """Offer the trip to its next driver once the caller's transaction commits.

    Robust: when the broker is down the committed write still stands, the
    failure is logged, and the sweeper re-dispatches the trip later."""
    from workers.tasks import dispatch_trip

    transaction.on_commit(lambda: dispatch_trip.delay(str(trip_id)), robust=True)


def release_driver_on_commit(driver_id: int, *, trip_id: UUID | None = None) -> None:
    """The driver's offer (or trip `trip_id`) ended: back in the available set
    once the caller's transaction commits (`presence.on_driver_released`)."""
    from dispatch import presence

    transaction.on_commit(
        lambda: presence.on_driver_released(driver_id, trip_id=trip_id), robust=True
    )
