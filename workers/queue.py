"""Work the services hand to the workers, asked for by task name.

The names are the tasks' registered names (`workers.tasks`): part of the
deployed state, since queued messages and beat's installed periodic tasks
carry them, so they never change. Sending by name keeps the dependency one
way: tasks call services, services queue tasks without importing them.
"""

import logging
from uuid import UUID

from celery import current_app
from django.db import transaction
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

DISPATCH_TRIP = "workers.dispatch_trip"
EXPIRE_OFFER = "workers.expire_offer"
SWEEP_DISPATCH = "workers.sweep_dispatch"
EXPIRE_STALE_TRIPS = "workers.expire_stale_trips"
SWEEP_SILENT_DRIVERS = "workers.sweep_silent_drivers"
REFRESH_SURGE = "workers.refresh_surge"
SWEEP_SCHEDULED = "workers.sweep_scheduled"
PUSH_NOTIFICATION = "workers.push_notification"


def dispatch_on_commit(trip_id: UUID) -> None:
    """Offer the trip to its next driver once the caller's transaction commits.

    Robust: when the broker is down the committed write still stands, the
    failure is logged, and the sweeper re-dispatches the trip later."""
    transaction.on_commit(
        lambda: current_app.send_task(DISPATCH_TRIP, (str(trip_id),)), robust=True
    )


def dispatch_now(trip_id: UUID | str) -> None:
    """Offer the trip to its next driver now (outside any transaction: a
    driver just became free near it). A failure is logged: the trip keeps
    waiting for the next driver, or for its search to run out."""
    try:
        current_app.send_task(DISPATCH_TRIP, (str(trip_id),))
    except (KombuError, RedisError, OSError):
        logger.exception("dispatch.queue_failed", extra={"trip_id": str(trip_id)})


def expire_offer_at_deadline(offer_id: UUID, timeout_s: float) -> None:
    """Queue the offer's deadline. A failure is logged: the offer row stands,
    and the sweeper expires it if its deadline task was never queued."""
    try:
        current_app.send_task(EXPIRE_OFFER, (str(offer_id),), countdown=timeout_s)
    except (KombuError, RedisError, OSError):
        logger.exception("dispatch.expire_queue_failed", extra={"offer_id": str(offer_id)})


def push_notification(user_id: int, notification: dict) -> None:
    """Send a push notification to the user's devices (notifications.services).
    A failure is logged: a notification is a hint, and the app re-reads REST."""
    try:
        current_app.send_task(PUSH_NOTIFICATION, (user_id, notification))
    except (KombuError, RedisError, OSError):
        logger.exception("push.queue_failed", extra={"user_id": user_id})
