"""The trip status table and the database constraints behind the invariants."""

import itertools

import pytest
from django.db import IntegrityError, transaction

from dispatch.models import Offer
from tests.trips.factories import make_offer, make_trip
from trips.models import Actor, Trip

S = Trip.Status
# The final statuses (PROTOCOL.md): no move leads out of them.
FINAL = (S.COMPLETED, S.CANCELED, S.EXPIRED)

# PROTOCOL.md's status table, written out independently of the model.
# Part 2 ("Statuses, extended") adds SCHEDULED and ARRIVED, and replaces the
# driver's cancel to CANCELED with a move back to REQUESTED (dispatch); a
# driver's CANCELED is the no-show, from ARRIVED only.
ALLOWED = {
    (S.SCHEDULED, S.REQUESTED, Actor.SERVICE),
    (S.SCHEDULED, S.CANCELED, Actor.RIDER),
    (S.SCHEDULED, S.EXPIRED, Actor.SERVICE),
    (S.REQUESTED, S.STARTED, Actor.OFFERED_DRIVER),
    (S.REQUESTED, S.CANCELED, Actor.RIDER),
    (S.REQUESTED, S.EXPIRED, Actor.SERVICE),
    (S.STARTED, S.ARRIVED, Actor.ASSIGNED_DRIVER),
    (S.STARTED, S.IN_PROGRESS, Actor.ASSIGNED_DRIVER),
    (S.STARTED, S.CANCELED, Actor.RIDER),
    (S.STARTED, S.REQUESTED, Actor.ASSIGNED_DRIVER),
    (S.ARRIVED, S.IN_PROGRESS, Actor.ASSIGNED_DRIVER),
    (S.ARRIVED, S.CANCELED, Actor.RIDER),
    (S.ARRIVED, S.CANCELED, Actor.ASSIGNED_DRIVER),
    (S.ARRIVED, S.REQUESTED, Actor.ASSIGNED_DRIVER),
    (S.IN_PROGRESS, S.COMPLETED, Actor.ASSIGNED_DRIVER),
}
EVERY_MOVE = set(itertools.product(S.values, S.values, Actor.values))


# The status table


@pytest.mark.parametrize(("from_status", "to_status", "actor"), sorted(ALLOWED))
def test_every_move_in_the_protocol_table_is_allowed(from_status, to_status, actor):
    assert Trip.can_transition(from_status, to_status, actor)


def test_the_model_table_is_exactly_the_protocol_table():
    # Given every (from, to, actor) there is, when the model is asked about each,
    # then it allows exactly the protocol's moves and refuses all others.
    allowed = {move for move in EVERY_MOVE if Trip.can_transition(*move)}
    assert allowed == ALLOWED


@pytest.mark.parametrize(
    ("from_status", "to_status", "actor"),
    [
        # The wrong actor for a real move.
        (S.REQUESTED, S.STARTED, Actor.RIDER),
        (S.REQUESTED, S.STARTED, Actor.ASSIGNED_DRIVER),
        (S.REQUESTED, S.CANCELED, Actor.OFFERED_DRIVER),
        (S.REQUESTED, S.EXPIRED, Actor.RIDER),
        (S.STARTED, S.IN_PROGRESS, Actor.RIDER),
        (S.IN_PROGRESS, S.COMPLETED, Actor.RIDER),
        (S.STARTED, S.CANCELED, Actor.SERVICE),
        # Skipping a step, or going back.
        (S.REQUESTED, S.IN_PROGRESS, Actor.ASSIGNED_DRIVER),
        (S.STARTED, S.COMPLETED, Actor.ASSIGNED_DRIVER),
        (S.IN_PROGRESS, S.STARTED, Actor.ASSIGNED_DRIVER),
        (S.STARTED, S.REQUESTED, Actor.SERVICE),
        # Canceling once the rider is in the car.
        (S.IN_PROGRESS, S.CANCELED, Actor.RIDER),
        (S.IN_PROGRESS, S.CANCELED, Actor.ASSIGNED_DRIVER),
        # Leaving a final status.
        (S.COMPLETED, S.CANCELED, Actor.RIDER),
        (S.CANCELED, S.REQUESTED, Actor.RIDER),
        (S.EXPIRED, S.STARTED, Actor.OFFERED_DRIVER),
    ],
)
def test_moves_outside_the_table_are_refused(from_status, to_status, actor):
    assert not Trip.can_transition(from_status, to_status, actor)


@pytest.mark.parametrize("final", FINAL)
def test_final_statuses_lead_nowhere(final):
    assert not any(Trip.can_transition(final, to, actor) for _, to, actor in EVERY_MOVE)


def test_actor_for_tells_the_rider_and_the_assigned_driver_apart(make_user):
    rider, driver, stranger = make_user("rider"), make_user("driver"), make_user("driver")
    trip = make_trip(rider, status=S.STARTED, driver=driver)

    assert trip.actor_for(rider) == Actor.RIDER
    assert trip.actor_for(driver) == Actor.ASSIGNED_DRIVER
    assert trip.actor_for(stranger) is None


def test_a_new_trip_starts_requested_at_version_one(rider):
    trip = make_trip(rider)

    trip.refresh_from_db()
    assert (trip.status, trip.version, trip.driver_id, trip.status_reason) == (
        S.REQUESTED,
        1,
        None,
        None,
    )
    assert trip.status not in FINAL


# Constraints: the invariants hold even against code that skips the services.


@pytest.mark.parametrize("active", Trip.ACTIVE)
def test_a_rider_cannot_have_a_second_active_trip(rider, driver, active):
    # Given a rider with an active trip
    make_trip(rider, status=active, driver=None if active == S.REQUESTED else driver)

    # When a second active trip is written for them, then the database refuses it.
    with pytest.raises(IntegrityError), transaction.atomic():
        make_trip(rider)
    assert Trip.objects.filter(rider=rider).count() == 1


@pytest.mark.parametrize("final", FINAL)
def test_final_trips_do_not_block_a_new_one(rider, driver, final):
    make_trip(rider, status=final, driver=driver if final == S.COMPLETED else None)

    make_trip(rider)

    assert Trip.objects.filter(rider=rider).count() == 2


@pytest.mark.parametrize("assigned", Trip.ASSIGNED)
def test_a_driver_cannot_be_assigned_two_active_trips(make_user, driver, assigned):
    make_trip(make_user("rider"), status=S.STARTED, driver=driver)

    with pytest.raises(IntegrityError), transaction.atomic():
        make_trip(make_user("rider"), status=assigned, driver=driver)
    assert Trip.objects.filter(driver=driver).count() == 1


def test_a_driver_keeps_finished_trips_beside_an_active_one(make_user, driver):
    make_trip(make_user("rider"), status=S.COMPLETED, driver=driver)
    make_trip(make_user("rider"), status=S.CANCELED, driver=driver)

    make_trip(make_user("rider"), status=S.STARTED, driver=driver)

    assert Trip.objects.filter(driver=driver).count() == 3


@pytest.mark.parametrize("assigned", [S.STARTED, S.IN_PROGRESS, S.COMPLETED])
def test_an_assigned_or_completed_trip_needs_a_driver(rider, assigned):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_trip(rider, status=assigned, driver=None)
    assert not Trip.objects.exists()


def test_the_version_cannot_drop_below_one(rider):
    trip = make_trip(rider)

    with pytest.raises(IntegrityError), transaction.atomic():
        Trip.objects.filter(pk=trip.pk).update(version=0)
    trip.refresh_from_db()
    assert trip.version == 1


def test_one_idempotency_key_names_one_trip_per_rider(make_user, driver):
    rider, other_rider = make_user("rider"), make_user("rider")
    make_trip(rider, status=S.CANCELED, idempotency_key="k-1")

    with pytest.raises(IntegrityError), transaction.atomic():
        make_trip(rider, idempotency_key="k-1")
    # Another rider may use the same key.
    make_trip(other_rider, idempotency_key="k-1")
    assert Trip.objects.filter(idempotency_key="k-1").count() == 2


def test_a_trip_has_one_live_offer_at_a_time(make_user, rider):
    trip = make_trip(rider)
    make_offer(trip, make_user("driver"))

    with pytest.raises(IntegrityError), transaction.atomic():
        make_offer(trip, make_user("driver"))
    assert Offer.objects.filter(trip=trip).count() == 1


def test_a_driver_holds_one_live_offer_at_a_time(make_user, driver):
    make_offer(make_trip(make_user("rider")), driver)

    with pytest.raises(IntegrityError), transaction.atomic():
        make_offer(make_trip(make_user("rider")), driver)
    assert Offer.objects.filter(driver=driver).count() == 1


def test_a_driver_is_offered_a_trip_once(rider, driver):
    trip = make_trip(rider)
    make_offer(trip, driver, status=Offer.Status.DECLINED)

    with pytest.raises(IntegrityError), transaction.atomic():
        make_offer(trip, driver)
    assert Offer.objects.filter(trip=trip).count() == 1


@pytest.mark.parametrize(
    "closed",
    [Offer.Status.ACCEPTED, Offer.Status.DECLINED, Offer.Status.EXPIRED, Offer.Status.REVOKED],
)
def test_closed_offers_leave_room_for_a_live_one(make_user, rider, closed):
    trip = make_trip(rider)
    make_offer(trip, make_user("driver"), status=closed)

    make_offer(trip, make_user("driver"))

    assert Offer.objects.filter(trip=trip, status=Offer.Status.PENDING).count() == 1


def test_an_offer_is_live_while_pending_and_before_its_deadline(make_user, rider):
    trip = make_trip(rider)
    live = make_offer(trip, make_user("driver"))
    overdue = make_offer(make_trip(make_user("rider")), make_user("driver"), expires_in_s=-1)
    declined = make_offer(
        make_trip(make_user("rider")), make_user("driver"), status=Offer.Status.DECLINED
    )

    assert live in Offer.live()
    assert overdue not in Offer.live()
    assert declined not in Offer.live()
    assert list(Offer.live()) == [live]
