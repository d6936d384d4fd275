"""Queueing the dispatch loop from outside it."""

from uuid import UUID

from django.db import transaction


def request_dispatch_on_commit(trip_id: UUID) -> None:
    """Offer the trip to its next driver once the caller's transaction commits."""
    from workers.tasks import dispatch_trip

    transaction.on_commit(lambda: dispatch_trip.delay(str(trip_id)))
