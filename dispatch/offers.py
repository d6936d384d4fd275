"""Closing offers. The dispatch loop (`dispatch.services`) opens them."""

import logging
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from dispatch.models import Offer
from dispatch.queue import release_driver_on_commit, request_dispatch_on_commit
from trips import events
from trips.errors import OfferNotAvailable
from trips.models import Trip, User

logger = logging.getLogger(__name__)

# `trip.offer.revoked` reasons (PROTOCOL.md).
REVOKED_EXPIRED = "expired"
REVOKED_CANCELED = "canceled"


def offer_revoked_frame(offer: Offer, reason: str) -> dict:
    return events.frame(
        events.TRIP_OFFER_REVOKED,
        {"trip_id": str(offer.trip_id), "offer_id": str(offer.pk), "reason": reason},
    )


def offer_revoke_live(*, trip, reason: str, driver: User | None = None) -> Offer | None:
    """Withdraw the trip's live offer (`driver`'s only, if given), if any,
    inside the caller's transaction: the driver hears `trip.offer.revoked`
    and is free again after commit."""
    pending = Offer.objects.filter(trip=trip, status=Offer.Status.PENDING)
    offer = (pending if driver is None else pending.filter(driver=driver)).first()
    if offer is None:
        return None
    now = timezone.now()
    changed = Offer.objects.filter(pk=offer.pk, status=Offer.Status.PENDING).update(
        status=Offer.Status.REVOKED, closed_at=now, updated=now
    )
    if changed != 1:
        return None
    events.push_on_commit([offer.driver_id], offer_revoked_frame(offer, reason))
    release_driver_on_commit(offer.driver_id)
    logger.info(
        "dispatch.offer_revoked",
        extra={"trip_id": str(trip.pk), "offer_id": str(offer.pk), "reason": reason},
    )
    return offer


def offer_decline(*, trip_id: UUID, driver: User) -> Offer:
    """The driver turns down their live offer for the trip. The driver is free
    again and the trip goes to its next candidate after commit; the rider,
    still waiting, hears nothing."""
    with transaction.atomic():
        # The trip's row lock orders this against accept, cancel and expiry.
        try:
            trip = Trip.objects.select_for_update().filter(pk=trip_id).first()
        except (ValidationError, ValueError, TypeError):  # not a trip id at all
            trip = None
        if trip is None:
            raise OfferNotAvailable()
        now = timezone.now()
        closed = (
            Offer.live()
            .filter(trip=trip, driver=driver)
            .update(status=Offer.Status.DECLINED, closed_at=now, updated=now)
        )
        if closed != 1:
            raise OfferNotAvailable()
        offer = Offer.objects.get(trip=trip, driver=driver)
        release_driver_on_commit(driver.pk)
        request_dispatch_on_commit(trip.pk)
    logger.info(
        "dispatch.offer_declined",
        extra={"trip_id": str(trip.pk), "offer_id": str(offer.pk), "driver_id": driver.pk},
    )
    return offer
