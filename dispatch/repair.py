"""The dispatch loop's repair sweep (DESIGN.md, "The dispatch loop", step 5):
what lost tasks, killed workers and restarted brokers leave behind costs
seconds, never a stuck trip. Bounded per run and safe beside a copy of itself.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import policies, presence
from dispatch.models import Offer
from dispatch.offers import offer_expire
from trips.models import Trip
from workers import queue

logger = logging.getLogger(__name__)

# The sweeper leaves an overdue offer to its own expire task for this long.
OVERDUE_GRACE = timedelta(seconds=2)
# ... and a trip without a live offer to the task already queued for it.
REDISPATCH_AFTER = timedelta(seconds=5)


@dataclass(frozen=True)
class SweepResult:
    offers_expired: int = 0
    trips_redispatched: int = 0


def dispatch_repair(*, batch: int | None = None) -> SweepResult:
    """Offers past their deadline whose expire task never ran are expired,
    and REQUESTED trips left without a live offer are queued for dispatch
    again (those waiting for supply excepted). At most `batch` of each per run."""
    batch = batch or settings.DISPATCH_SWEEP_BATCH
    now = timezone.now()
    overdue = list(
        Offer.objects.filter(status=Offer.Status.PENDING, expires_at__lt=now - OVERDUE_GRACE)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:batch]
    )
    expired = sum(offer_expire(offer_id=offer_id).expired for offer_id in overdue)

    if policies.is_windowed(policies.current()):
        # The matcher takes up every waiting trip each window: nothing is stranded.
        if expired:
            logger.info(
                "dispatch.swept", extra={"offers_expired": expired, "trips_redispatched": 0}
            )
        return SweepResult(offers_expired=expired)
    settled_since = now - REDISPATCH_AFTER
    live_offer = Offer.objects.filter(trip=OuterRef("pk"), status=Offer.Status.PENDING)
    recent_offer = Offer.objects.filter(trip=OuterRef("pk"), closed_at__gt=settled_since)
    stranded = list(
        Trip.objects.filter(status=Trip.Status.REQUESTED, updated__lt=settled_since)
        .exclude(Exists(live_offer))
        .exclude(Exists(recent_offer))
        .order_by("updated")
        .values_list("pk", flat=True)[:batch]
    )
    # Trips waiting for supply are left to the drivers who will wake them
    # (no polling); one whose entry Redis lost is stranded like any other.
    try:
        waiting = presence.waiting(stranded)
    except RedisError:
        waiting = set()
    stranded = [trip_id for trip_id in stranded if str(trip_id) not in waiting]
    for trip_id in stranded:
        queue.dispatch_on_commit(trip_id)
    if expired or stranded:
        logger.info(
            "dispatch.swept",
            extra={"offers_expired": expired, "trips_redispatched": len(stranded)},
        )
    return SweepResult(offers_expired=expired, trips_redispatched=len(stranded))
