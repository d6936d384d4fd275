"""Concurrent writes to one trip, on real threads against the real database
(run on SQLite and on PostgreSQL): whatever the interleaving, the outcome is
one of the serial orders, and the row is consistent."""

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from dispatch.models import Offer
from dispatch.offers import offer_decline
from tests.trips.factories import make_offer, make_trip, offer_states
from trips.errors import ActiveTripExists, InvalidTransition, OfferNotAvailable
from trips.models import Trip
from trips.services import trip_accept, trip_cancel, trip_create, trip_expire

pytestmark = pytest.mark.django_db(transaction=True)

S = Trip.Status
ROUNDS = range(3)
SAME_DRIVER_THREADS = 8


def run_together(calls: list[Callable[[], object]]) -> list[object]:
    """Release every call at once, each on its own thread and database
    connection; return each call's result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = call()
        except Exception as exc:  # recorded, then judged by the test
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racing call never finished"
    return outcomes


def test_sqlite_runs_the_races_as_production_does():
    # The races below hold on SQLite only with the production connection
    # options: write lock taken at BEGIN, writers queueing on a busy timeout,
    # and WAL so readers never wait.
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    options = connection.settings_dict["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 20
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


def wins(outcomes: list[object]) -> list[object]:
    return [o for o in outcomes if not isinstance(o, Exception)]


def losses(outcomes: list[object]) -> list[Exception]:
    return [o for o in outcomes if isinstance(o, Exception)]


@pytest.mark.parametrize("round_", ROUNDS)
def test_many_accepts_by_the_offered_driver_take_the_trip_once(rider, driver, round_):
    # Given a trip with a live offer to one driver
    trip = make_trip(rider)
    make_offer(trip, driver)

    # When that driver's app fires accept from many threads at once
    outcomes = run_together(
        [lambda: trip_accept(trip_id=trip.pk, driver=driver)] * SAME_DRIVER_THREADS
    )

    # Then exactly one accept wins; every other one hears offer_not_available.
    assert len(wins(outcomes)) == 1
    assert all(isinstance(e, OfferNotAvailable) for e in losses(outcomes))
    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.driver_id, row.version) == (S.STARTED, driver.pk, 2)
    assert offer_states(trip) == {driver.pk: Offer.Status.ACCEPTED}


@pytest.mark.parametrize("round_", ROUNDS)
def test_accept_racing_the_riders_cancel_ends_in_one_serial_order(rider, driver, round_):
    trip = make_trip(rider)
    make_offer(trip, driver)

    accepted, canceled = run_together(
        [
            lambda: trip_accept(trip_id=trip.pk, driver=driver),
            lambda: trip_cancel(trip_id=trip.pk, user=rider),
        ]
    )

    # The rider's cancel always lands (a STARTED trip is still theirs to
    # cancel); the accept wins only if it came first.
    assert not isinstance(canceled, Exception)
    row = Trip.objects.get(pk=trip.pk)
    assert row.status == S.CANCELED
    if isinstance(accepted, Exception):
        # cancel, then accept: the offer was withdrawn under the driver.
        assert isinstance(accepted, OfferNotAvailable)
        assert (row.driver_id, row.version) == (None, 2)
        assert offer_states(trip) == {driver.pk: Offer.Status.REVOKED}
    else:
        # accept, then cancel.
        assert (row.driver_id, row.version) == (driver.pk, 3)
        assert offer_states(trip) == {driver.pk: Offer.Status.ACCEPTED}


@pytest.mark.parametrize("round_", ROUNDS)
def test_accept_racing_expiry_has_exactly_one_winner(rider, driver, round_):
    trip = make_trip(rider)
    make_offer(trip, driver)

    accepted, expired = run_together(
        [
            lambda: trip_accept(trip_id=trip.pk, driver=driver),
            lambda: trip_expire(trip_id=trip.pk, reason=Trip.Reason.NO_DRIVERS),
        ]
    )

    row = Trip.objects.get(pk=trip.pk)
    assert row.version == 2
    if isinstance(accepted, Exception):
        assert isinstance(accepted, OfferNotAvailable)
        assert expired is not None and not isinstance(expired, Exception)
        assert (row.status, row.driver_id, row.status_reason) == (S.EXPIRED, None, "no_drivers")
        assert offer_states(trip) == {driver.pk: Offer.Status.REVOKED}
    else:
        # Expiry found the trip already taken and changed nothing.
        assert expired is None
        assert (row.status, row.driver_id) == (S.STARTED, driver.pk)
        assert offer_states(trip) == {driver.pk: Offer.Status.ACCEPTED}


@pytest.mark.parametrize(
    "lapsed", [Offer.Status.DECLINED, Offer.Status.EXPIRED, Offer.Status.REVOKED]
)
def test_only_the_driver_with_the_live_offer_can_win(make_user, rider, lapsed):
    # Given a trip whose earlier offer to one driver has lapsed, now offered to
    # another (an overdue offer still PENDING would block the second one: one
    # live offer per trip)
    trip = make_trip(rider)
    earlier, holder = make_user("driver"), make_user("driver")
    make_offer(trip, earlier, status=lapsed)
    make_offer(trip, holder)
    earlier_state = offer_states(trip)[earlier.pk]

    # When both press accept, several times each, at once
    outcomes = run_together(
        [lambda: trip_accept(trip_id=trip.pk, driver=earlier)] * 4
        + [lambda: trip_accept(trip_id=trip.pk, driver=holder)] * 4
    )

    # Then the live offer's holder wins once, and the earlier driver's offer
    # is left as it was.
    winners = wins(outcomes)
    assert len(winners) == 1 and winners[0].driver_id == holder.pk
    assert all(isinstance(e, OfferNotAvailable) for e in losses(outcomes))
    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.driver_id, row.version) == (S.STARTED, holder.pk, 2)
    assert offer_states(trip) == {earlier.pk: earlier_state, holder.pk: Offer.Status.ACCEPTED}


@pytest.mark.parametrize("round_", ROUNDS)
def test_accept_racing_decline_by_the_same_driver_has_one_winner(rider, driver, round_):
    trip = make_trip(rider)
    make_offer(trip, driver)

    accepted, declined = run_together(
        [
            lambda: trip_accept(trip_id=trip.pk, driver=driver),
            lambda: offer_decline(trip_id=trip.pk, driver=driver),
        ]
    )

    assert len(wins([accepted, declined])) == 1
    row = Trip.objects.get(pk=trip.pk)
    if isinstance(accepted, Exception):
        assert isinstance(accepted, OfferNotAvailable)
        assert (row.status, row.driver_id, row.version) == (S.REQUESTED, None, 1)
        assert offer_states(trip) == {driver.pk: Offer.Status.DECLINED}
    else:
        assert isinstance(declined, OfferNotAvailable)
        assert (row.status, row.driver_id, row.version) == (S.STARTED, driver.pk, 2)
        assert offer_states(trip) == {driver.pk: Offer.Status.ACCEPTED}


@pytest.mark.parametrize("round_", ROUNDS)
def test_the_riders_cancel_racing_the_drivers_cancel_lands_once(rider, driver, round_):
    trip = make_trip(rider, status=S.STARTED, driver=driver)

    outcomes = run_together(
        [
            lambda: trip_cancel(trip_id=trip.pk, user=rider),
            lambda: trip_cancel(trip_id=trip.pk, user=driver),
        ]
    )

    # PROTOCOL.md Part 2: the driver's cancel sends the trip back to dispatch,
    # where it is still the rider's to cancel. So the rider's cancel lands
    # either way; the driver's lands only if it came first.
    by_rider, by_driver = outcomes
    assert not isinstance(by_rider, Exception), by_rider
    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.status_reason) == (S.CANCELED, "canceled_by_rider")
    if isinstance(by_driver, Exception):
        assert isinstance(by_driver, InvalidTransition)
        assert (row.version, row.driver_id) == (2, driver.pk)
    else:
        assert by_driver.status == S.REQUESTED
        assert (row.version, row.driver_id) == (3, None)


TRIP_FIELDS = {
    "pick_up_address": "123 Main Street",
    "pick_up_lat": 38.8977,
    "pick_up_lng": -77.0365,
    "drop_off_address": "456 Piney Road",
}


@pytest.mark.parametrize("round_", ROUNDS)
def test_concurrent_retries_with_one_idempotency_key_make_one_trip(rider, round_):
    # Given an app that fires the same request several times at once (a retry
    # racing its own first attempt)
    outcomes = run_together(
        [lambda: trip_create(rider=rider, idempotency_key="tap-1", **TRIP_FIELDS)] * 4
    )

    # Then every attempt answers with the one trip written.
    assert not losses(outcomes), losses(outcomes)
    assert len({trip.pk for trip in outcomes}) == 1
    assert Trip.objects.filter(rider=rider).count() == 1


@pytest.mark.parametrize("round_", ROUNDS)
def test_concurrent_requests_without_a_key_make_one_active_trip(rider, round_):
    outcomes = run_together([lambda: trip_create(rider=rider, **TRIP_FIELDS)] * 4)

    assert len(wins(outcomes)) == 1
    assert all(isinstance(e, ActiveTripExists) for e in losses(outcomes))
    assert Trip.objects.filter(rider=rider).count() == 1
