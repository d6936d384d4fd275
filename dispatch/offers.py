"""Closing offers. The dispatch loop (`dispatch.services`) opens them."""

import logging

from django.db import transaction
from django.utils import timezone

from dispatch import presence
from dispatch.models import Offer
from trips import events

logger = logging.getLogger(__name__)

# `trip.offer.revoked` reasons (PROTOCOL.md).
REVOKED_EXPIRED = "expired"
REVOKED_CANCELED = "canceled"


def offer_revoked_frame(offer: Offer, reason: str) -> dict:
    return events.frame(
        events.TRIP_OFFER_REVOKED,
        {"trip_id": str(offer.trip_id), "offer_id": str(offer.pk), "reason": reason},
    )


def offer_revoke_live(*, trip, reason: str) -> Offer | None:
    """Withdraw the trip's live offer, if any, inside the caller's transaction:
    the driver hears `trip.offer.revoked` and is free again after commit."""
    offer = Offer.objects.filter(trip=trip, status=Offer.Status.PENDING).first()
    if offer is None:
        return None
    now = timezone.now()
    changed = Offer.objects.filter(pk=offer.pk, status=Offer.Status.PENDING).update(
        status=Offer.Status.REVOKED, closed_at=now, updated=now
    )
    if changed != 1:
        return None
    events.push_on_commit([offer.driver_id], offer_revoked_frame(offer, reason))
    driver_id = offer.driver_id
    transaction.on_commit(lambda: presence.on_driver_released(driver_id))
    logger.info(
        "dispatch.offer_revoked",
        extra={"trip_id": str(trip.pk), "offer_id": str(offer.pk), "reason": reason},
    )
    return offer
