"""Celery tasks: thin adapters that take ids, re-read and call a service."""

from celery import shared_task


@shared_task(name="workers.dispatch_trip", ignore_result=True)
def dispatch_trip(trip_id: str) -> None:
    """Offer the trip to its next candidate driver (filled in by the dispatch loop)."""
