"""Offer expiry (`dispatch.offers.offer_expire`), called directly: only after
the deadline, once, and never for an offer already answered. Decline, accept
and revoke are driven through the trip services (tests/trips)."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import keys
from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from dispatch.offers import DriverRow, Locked, lock, offer_expire
from tests.dispatch.support import available, dispatch_tasks_for, driver_state, request_trip
from trips.models import Trip
from trips.services import trip_accept

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_offer_expires_only_after_its_deadline(rider, driver_at):
    driver_at(0.4)
    trip = request_trip(rider)
    offer = trip_offer_next(trip_id=trip.pk)

    early = offer_expire(offer_id=offer.pk)

    assert not early.expired
    assert 0 < early.retry_in_s <= settings.DISPATCH_OFFER_TIMEOUT_S
    offer.refresh_from_db()
    assert offer.status == Offer.Status.PENDING


def test_an_overdue_offer_expires_frees_the_driver_and_queues_the_next_dispatch(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)
    offer = trip_offer_next(trip_id=trip.pk)
    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = dispatch_tasks_for(trip)

    result = offer_expire(offer_id=offer.pk)
    again = offer_expire(offer_id=offer.pk)

    assert result.expired and not again.expired and again.retry_in_s is None
    offer.refresh_from_db()
    assert offer.status == Offer.Status.EXPIRED and offer.closed_at is not None
    assert near.pk in available(), "the driver is free again"
    assert dispatch_tasks_for(trip) == before + 1, "the next dispatch queued once"
    trip.refresh_from_db()
    assert trip.status == Trip.Status.REQUESTED


def test_an_accepted_offer_is_not_expired(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)
    offer = trip_offer_next(trip_id=trip.pk)
    trip_accept(trip_id=trip.pk, driver=near)
    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert not offer_expire(offer_id=offer.pk).expired

    offer.refresh_from_db()
    assert offer.status == Offer.Status.ACCEPTED
    assert driver_state(near.pk)["state"] == keys.STATE_ON_TRIP


# --- the locks -------------------------------------------------------------------


def test_lock_takes_the_trip_then_reads_the_drivers_row(rider, driver_at):
    near = driver_at(0.4)
    trip = request_trip(rider)

    with transaction.atomic():
        locked = lock(trip.pk, driver_id=near.pk)

    assert locked.trip == trip
    assert locked.driver == DriverRow(assigned=False, offered=False)


def test_lock_without_a_trip_locks_nothing(rider, driver_at):
    near = driver_at(0.4)

    with transaction.atomic():
        assert lock("not a trip id", driver_id=near.pk) == Locked(None)
        assert lock(uuid.uuid4(), driver_id=near.pk) == Locked(None)


def test_lock_reads_no_driver_row_for_a_rider(rider, make_user):
    trip = request_trip(rider)

    with transaction.atomic():
        assert lock(trip.pk, driver_id=make_user("rider").pk).driver is None
