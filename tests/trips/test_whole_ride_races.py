"""Part 2's races (PROTOCOL.md, "Statuses, extended"), on real threads against
the real database (SQLite and PostgreSQL), as tests/trips/test_races.py runs
Part 1's: bookings against the per-rider cap, a booking's promotion against
its cancel, a driver's no-show against the rider's cancel, and the accepts of
a trip a driver gave back."""

from decimal import Decimal

import pytest
from django.conf import settings

from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from tests.dispatch.support import put_online, queued_tasks
from tests.pricing.support import CATALOGUE
from tests.trips.rides import ride
from tests.trips.test_races import losses, run_together, wins
from tests.trips.whole_ride import (
    S,
    book,
    bookable_time,
    history,
    make_due,
    wait_passed,
)
from trips.errors import InvalidTransition, OfferNotAvailable, TooManyScheduled
from trips.models import Trip, TripEvent
from trips.services import trip_accept, trip_cancel, trips_promote_due

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = range(3)
BOOKING_THREADS = 8


def dispatches_of(trip_id) -> int:
    return queued_tasks().count(("workers.dispatch_trip", [str(trip_id)]))


@pytest.mark.parametrize("round_", ROUNDS)
def test_bookings_at_once_never_pass_the_per_rider_cap(rider, round_):
    # Given a rider who already holds two bookings
    for hour in (1, 2):
        book(rider, bookable_time(3600 * hour))

    # When their app books many more rides at once
    outcomes = run_together(
        [lambda n=n: book(rider, bookable_time(3600 * (3 + n))) for n in range(BOOKING_THREADS)]
    )

    # Then exactly enough to reach the cap are taken, every other one is refused.
    room = settings.SCHEDULE_MAX_PER_RIDER - 2
    assert len(wins(outcomes)) == room
    assert all(isinstance(e, TooManyScheduled) for e in losses(outcomes)), losses(outcomes)
    scheduled = Trip.objects.filter(rider=rider, status=S.SCHEDULED).count()
    assert scheduled == settings.SCHEDULE_MAX_PER_RIDER


@pytest.mark.parametrize("round_", ROUNDS)
def test_two_riders_booking_at_once_each_get_their_own_cap(make_user, round_):
    riders = [make_user("rider"), make_user("rider")]

    outcomes = run_together(
        [
            lambda r=r, n=n: book(r, bookable_time(3600 * (n + 1)))
            for r in riders
            for n in range(settings.SCHEDULE_MAX_PER_RIDER + 1)
        ]
    )

    assert len(wins(outcomes)) == 2 * settings.SCHEDULE_MAX_PER_RIDER
    assert all(isinstance(e, TooManyScheduled) for e in losses(outcomes)), losses(outcomes)
    for r in riders:
        assert Trip.objects.filter(rider=r).count() == settings.SCHEDULE_MAX_PER_RIDER


@pytest.mark.parametrize("round_", ROUNDS)
def test_promotion_racing_the_riders_cancel_ends_in_one_serial_order(rider, round_):
    # Given a booking that is due
    trip = book(rider)
    make_due(trip)

    # When the sweep promotes it while the rider cancels it
    promoted, canceled = run_together(
        [lambda: trips_promote_due(), lambda: trip_cancel(trip_id=trip.pk, user=rider)]
    )

    # Then the rider's cancel lands either way (a REQUESTED trip is still
    # theirs to cancel, for free); the promotion happened only if it came first.
    assert not isinstance(promoted, Exception), promoted
    assert not isinstance(canceled, Exception), canceled
    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.driver_id, row.cancellation_fee) == (S.CANCELED, None, None)
    if promoted == 0:
        # cancel, then the sweep: it found nothing due and queued nothing.
        assert row.version == 2
        assert history(trip.pk) == [
            (None, S.SCHEDULED, "rider"),
            (S.SCHEDULED, S.CANCELED, "rider"),
        ]
        assert dispatches_of(trip.pk) == 0
    else:
        # the sweep, then cancel: dispatched once, and the dispatch that follows
        # finds the trip canceled and offers it to no one.
        assert promoted == 1
        assert row.version == 3
        assert history(trip.pk) == [
            (None, S.SCHEDULED, "rider"),
            (S.SCHEDULED, S.REQUESTED, "service"),
            (S.REQUESTED, S.CANCELED, "rider"),
        ]
        assert dispatches_of(trip.pk) == 1
        assert trip_offer_next(trip_id=trip.pk) is None
    assert not Offer.objects.filter(trip=trip).exists()


@pytest.mark.parametrize("round_", ROUNDS)
def test_two_sweeps_promote_a_booking_once(rider, round_):
    trip = book(rider)
    make_due(trip)

    outcomes = run_together([trips_promote_due] * 4)

    assert sorted(outcomes) == [0, 0, 0, 1], outcomes
    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.version) == (S.REQUESTED, 2)
    assert dispatches_of(trip.pk) == 1
    assert [step for step in history(trip.pk) if step[1] == S.REQUESTED] == [
        (S.SCHEDULED, S.REQUESTED, "service")
    ]


@pytest.mark.parametrize("round_", ROUNDS)
@pytest.mark.usefixtures("catalogue")
def test_the_no_show_racing_the_riders_cancel_lands_once(rider, driver, round_):
    # Given a driver who has waited out NO_SHOW_WAIT_S at the pick-up
    trip = ride(rider, driver, until=S.ARRIVED)
    wait_passed(trip, "arrived_at", settings.NO_SHOW_WAIT_S + 1)

    # When the driver reports the no-show as the rider cancels
    no_show, canceled = run_together(
        [
            lambda: trip_cancel(trip_id=trip.pk, user=driver, reason_code="rider_no_show"),
            lambda: trip_cancel(trip_id=trip.pk, user=rider, reason_code="changed_mind"),
        ]
    )

    # Then exactly one cancel lands; the other hears the trip moved on.
    outcomes = [no_show, canceled]
    assert len(wins(outcomes)) == 1, outcomes
    assert all(isinstance(e, InvalidTransition) for e in losses(outcomes)), outcomes
    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.version) == (S.CANCELED, trip.version + 1)
    cancels = TripEvent.objects.filter(trip=trip, to_status=S.CANCELED)
    assert cancels.count() == 1
    if wins(outcomes)[0] is no_show:
        assert (row.cancel_reason_code, cancels.get().by) == ("rider_no_show", "driver")
        assert row.cancellation_fee == Decimal(CATALOGUE["standard"]["rate"]["cancellation_fee"])
    else:
        # Within the free window after acceptance: the rider's cancel is free.
        assert (row.cancel_reason_code, cancels.get().by) == ("changed_mind", "rider")
        assert row.cancellation_fee is None


@pytest.mark.parametrize("round_", ROUNDS)
def test_the_drivers_give_back_racing_the_riders_cancel_ends_canceled(rider, driver, round_):
    trip = ride(rider, driver, until=S.ARRIVED)

    given_back, canceled = run_together(
        [
            lambda: trip_cancel(trip_id=trip.pk, user=driver, reason_code="vehicle_issue"),
            lambda: trip_cancel(trip_id=trip.pk, user=rider),
        ]
    )

    # The rider's cancel lands either way: a trip back in dispatch is
    # still theirs to cancel. The driver's give-back lands only if it came first.
    assert not isinstance(canceled, Exception), canceled
    row = Trip.objects.get(pk=trip.pk)
    assert row.status == S.CANCELED
    moves = [(f, t) for f, t, _ in history(trip.pk)][-2:]
    if isinstance(given_back, Exception):
        assert isinstance(given_back, InvalidTransition)
        assert moves[-1] == (S.ARRIVED, S.CANCELED)
    else:
        assert moves == [(S.ARRIVED, S.REQUESTED), (S.REQUESTED, S.CANCELED)]
        assert row.driver_id is None


@pytest.mark.parametrize("round_", ROUNDS)
def test_accepts_of_a_trip_given_back_start_it_once_and_never_for_the_driver_who_left(
    rider, make_user, round_
):
    # Given a trip its first driver gave back, now offered to a second
    first, second = make_user("driver"), make_user("driver")
    trip = ride(rider, first, until=S.STARTED)
    trip_cancel(trip_id=trip.pk, user=first, reason_code="vehicle_issue")
    put_online(second, 1.0)
    offer = trip_offer_next(trip_id=trip.pk)
    assert offer is not None and offer.driver_id == second.pk

    # When both drivers press accept, several times each, at once
    outcomes = run_together(
        [lambda: trip_accept(trip_id=trip.pk, driver=first)] * 4
        + [lambda: trip_accept(trip_id=trip.pk, driver=second)] * 4
    )

    # Then the second driver takes it once; the first never gets it back.
    winners = wins(outcomes)
    assert len(winners) == 1 and winners[0].driver_id == second.pk
    assert all(isinstance(e, OfferNotAvailable) for e in losses(outcomes)), losses(outcomes)
    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.driver_id, row.status_reason) == (S.STARTED, second.pk, None)
    assert row.version == trip.version + 2
    assert dict(Offer.objects.filter(trip=trip).values_list("driver_id", "status")) == {
        first.pk: Offer.Status.ACCEPTED,
        second.pk: Offer.Status.ACCEPTED,
    }
