"""Celery tasks: thin adapters that take ids, re-read and call a service.

Every task here is idempotent (safe to run twice, late, or beside a copy of
itself: the services move state by conditional writes under row locks), so
each acknowledges late and is redelivered if its worker dies. Transient
failures of Redis or the database are retried with backoff; anything else is
a bug, logged by Celery, and the sweeper repairs what it left.
"""

import logging
from uuid import UUID

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatch.drivers import drivers_sweep_silent
from dispatch.loop import trip_offer_next
from dispatch.offers import offer_expire
from dispatch.repair import dispatch_repair
from notifications.delivery import notification_deliver
from notifications.messages import Notification
from notifications.senders import TransientPushError
from pricing import surge
from trips.services import trips_expire_searches, trips_expire_stale, trips_promote_due
from workers import queue

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)

_COMMON = {
    "ignore_result": True,
    "serializer": "json",
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 0.5,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 8,
}
# One trip or one offer: quick, or something is wrong.
_SHORT = {**_COMMON, "soft_time_limit": 10, "time_limit": 20}
# A sweep touches at most DISPATCH_SWEEP_BATCH rows of each kind.
_SWEEP = {**_COMMON, "soft_time_limit": 45, "time_limit": 60, "max_retries": 2}
# The surge refresh reads the whole fleet once: well under a second for
# thousands of drivers. A retry is worth it only within its interval.
_REFRESH = {**_COMMON, "soft_time_limit": 15, "time_limit": 25, "max_retries": 2}
# One user's devices, one provider call each (PUSH_TIMEOUT_S): a few seconds.
# Retried with backoff (honouring a provider's Retry-After) while the
# notification is worth sending; its expiry ends the retries sooner.
_PUSH = {**_COMMON, "soft_time_limit": 30, "time_limit": 40, "max_retries": 6}
PUSH_BACKOFF_MAX_S = 120

# Added to a re-queued expiry, so a clock slightly behind lands after the deadline.
EXPIRY_SLACK_S = 0.05


def _uuid(value: str, task: str) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        logger.warning("workers.bad_argument", extra={"task": task, "value": str(value)[:64]})
        return None


@shared_task(name=queue.DISPATCH_TRIP, **_SHORT)
def dispatch_trip(trip_id: str) -> None:
    """Offer the trip to its next candidate driver, or expire it (no_drivers)."""
    trip_uuid = _uuid(trip_id, "dispatch_trip")
    if trip_uuid is not None:
        trip_offer_next(trip_id=trip_uuid)


@shared_task(name=queue.EXPIRE_OFFER, **_SHORT)
def expire_offer(offer_id: str) -> None:
    """Close the offer if its deadline passed unanswered; run early, wait again."""
    offer_uuid = _uuid(offer_id, "expire_offer")
    if offer_uuid is None:
        return
    result = offer_expire(offer_id=offer_uuid)
    if result.retry_in_s is not None:
        expire_offer.apply_async((str(offer_uuid),), countdown=result.retry_in_s + EXPIRY_SLACK_S)


@shared_task(name=queue.SWEEP_DISPATCH, **_SWEEP)
def sweep_dispatch() -> None:
    """Expire overdue offers whose task was lost; re-dispatch stranded trips."""
    dispatch_repair()


@shared_task(name=queue.EXPIRE_STALE_TRIPS, **_SWEEP)
def expire_stale_trips() -> None:
    """REQUESTED trips older than TRIP_STALE_AFTER_S become EXPIRED (stale)."""
    trips_expire_stale()


@shared_task(name=queue.SWEEP_SILENT_DRIVERS, **_SWEEP)
def sweep_silent_drivers() -> None:
    """Drivers silent for DRIVER_PRESENCE_TTL_S leave the available set."""
    drivers_sweep_silent()


@shared_task(name=queue.REFRESH_SURGE, **_REFRESH)
def refresh_surge() -> None:
    """Publish the surge multiplier of every cell (pricing.surge); a run right
    after another, or beside one, publishes nothing."""
    surge.refresh()


@shared_task(name=queue.SWEEP_SCHEDULED, **_SWEEP)
def sweep_scheduled() -> None:
    """Dispatch the scheduled trips that are due; expire the trips whose
    search for a driver ran out (DISPATCH_SEARCH_TIMEOUT_S)."""
    trips_promote_due()
    trips_expire_searches()


@shared_task(name=queue.PUSH_NOTIFICATION, bind=True, **_PUSH)
def push_notification(self, user_id: int, notification: dict) -> None:
    """Send a push notification to each of the user's devices; deletes the
    devices whose provider says their token is gone. Each device gets it at
    most once, however often this runs."""
    try:
        parsed = Notification.from_json(notification)
    except ValueError:
        logger.warning("workers.bad_argument", extra={"task": "push_notification"})
        return
    if not isinstance(user_id, int):
        logger.warning("workers.bad_argument", extra={"task": "push_notification"})
        return
    try:
        notification_deliver(user_id=user_id, notification=parsed)
    except TransientPushError as exc:
        backoff = get_exponential_backoff_interval(
            factor=1, retries=self.request.retries, maximum=PUSH_BACKOFF_MAX_S, full_jitter=True
        )
        countdown = max(backoff, exc.retry_after_s or 0)
        if countdown >= parsed.ttl_s():
            logger.info("push.given_up", extra={"user_id": user_id, "kind": parsed.kind})
            return
        raise self.retry(exc=exc, countdown=countdown) from None
