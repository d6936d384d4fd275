"""Queueing the dispatch loop from outside it."""

from uuid import UUID

from django.db import transaction


def request_dispatch_on_commit(trip_id: UUID) -> None:
    """Offer the trip to its next driver once the caller's transaction commits.

    Robust: when the broker is down the committed write still stands, the
    failure is logged, and the sweeper re-dispatches the trip later."""
    from workers.tasks import dispatch_trip

    transaction.on_commit(lambda: dispatch_trip.delay(str(trip_id)), robust=True)
