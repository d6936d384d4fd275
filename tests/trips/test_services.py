"""Trip services (and the offer decline they pair with), called directly.

Every allowed move by the right actor, every refused one with the trip left
exactly as it was, and the side effects that must (or must not) follow commit.
"""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from dispatch.offers import offer_decline
from tests.dispatch.support import available, put_online, request_trip
from tests.trips.factories import (
    ALLOWED,
    ALLOWED_CASES,
    REFUSED_CASES,
    TRIP_REQUEST,
    build,
    make_offer,
    make_trip,
    make_world,
    offer_states,
    queued_dispatches,
    refusal,
    snapshot,
)
from trips.errors import (
    ActiveTripExists,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    OfferNotAvailable,
)
from trips.models import Trip
from trips.services import (
    trip_accept,
    trip_cancel,
    trip_create,
    trip_expire,
    trip_move,
    trips_expire_stale,
)

pytestmark = pytest.mark.django_db

S = Trip.Status


# create


def test_a_rider_requests_a_trip_and_dispatch_is_queued_after_commit(
    rider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        trip = trip_create(rider=rider, **TRIP_REQUEST)

    trip.refresh_from_db()
    assert (trip.status, trip.version, trip.rider_id, trip.driver_id) == (
        S.REQUESTED,
        1,
        rider.pk,
        None,
    )
    assert (trip.drop_off_lat, trip.drop_off_lng) == (38.9, -77.04)
    assert queued_dispatches() == 1


def test_drop_off_coordinates_are_optional(rider):
    fields = {k: v for k, v in TRIP_REQUEST.items() if not k.startswith("drop_off_l")}

    trip = trip_create(rider=rider, **fields)

    assert (trip.drop_off_lat, trip.drop_off_lng) == (None, None)


def test_a_driver_cannot_request_a_trip(driver, django_capture_on_commit_callbacks):
    with pytest.raises(Forbidden), django_capture_on_commit_callbacks() as callbacks:
        trip_create(rider=driver, **TRIP_REQUEST)

    assert not Trip.objects.exists()
    assert callbacks == []


@pytest.mark.parametrize("active", Trip.ACTIVE)
def test_a_second_active_trip_is_refused(rider, driver, active, django_capture_on_commit_callbacks):
    first = make_trip(rider, status=active, driver=None if active == S.REQUESTED else driver)
    before = snapshot(first)

    with pytest.raises(ActiveTripExists), django_capture_on_commit_callbacks() as callbacks:
        trip_create(rider=rider, **TRIP_REQUEST)

    assert Trip.objects.filter(rider=rider).count() == 1
    assert snapshot(first) == before
    assert callbacks == []


def test_a_finished_trip_does_not_stop_the_next(rider):
    make_trip(rider, status=S.CANCELED)

    trip_create(rider=rider, **TRIP_REQUEST)

    assert Trip.objects.filter(rider=rider, status=S.REQUESTED).count() == 1


def test_a_retry_with_the_same_idempotency_key_returns_the_first_trip(
    rider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = trip_create(rider=rider, idempotency_key="retry-1", **TRIP_REQUEST)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = trip_create(rider=rider, idempotency_key="retry-1", **TRIP_REQUEST)

    assert again.pk == first.pk
    assert Trip.objects.count() == 1
    # The retry neither pushes nor dispatches a second time.
    assert callbacks == []
    assert queued_dispatches() == 1


def test_a_new_idempotency_key_is_a_new_request(rider):
    trip_create(rider=rider, idempotency_key="a", **TRIP_REQUEST)

    with pytest.raises(ActiveTripExists):
        trip_create(rider=rider, idempotency_key="b", **TRIP_REQUEST)

    assert Trip.objects.count() == 1


def test_idempotency_keys_belong_to_their_rider(make_user):
    first = trip_create(rider=make_user("rider"), idempotency_key="same", **TRIP_REQUEST)

    second = trip_create(rider=make_user("rider"), idempotency_key="same", **TRIP_REQUEST)

    assert second.pk != first.pk
    assert Trip.objects.count() == 2


# The whole table: every (status, action, role), allowed or refused.


@pytest.fixture
def world(make_user):
    return make_world(make_user)


def act(action: str, trip: Trip, user):
    if action == "accept":
        return trip_accept(trip_id=trip.pk, driver=user)
    if action == "cancel":
        return trip_cancel(trip_id=trip.pk, user=user)
    return trip_move(trip_id=trip.pk, user=user, status=action.upper())


@pytest.mark.parametrize(("status", "action", "role"), ALLOWED_CASES)
def test_allowed_moves_change_status_once_and_push_after_commit(
    world, status, action, role, django_capture_on_commit_callbacks
):
    # Given a trip in `status`
    trip = build(world, status)
    before = snapshot(trip)

    # When the right actor makes the move
    with django_capture_on_commit_callbacks() as callbacks:
        moved = act(action, trip, world[role])

    # Then the trip moved, its version grew by one, and pushes wait for commit.
    row = Trip.objects.get(pk=trip.pk)
    assert row.status == moved.status == ALLOWED[(status, action, role)]
    assert row.version == before[1] + 1
    expected_driver = world["offered"].pk if action == "accept" else before[2]
    if (action, role) == ("cancel", "assigned"):
        expected_driver = None  # back to dispatch, without them
    assert row.driver_id == expected_driver
    assert callbacks


@pytest.mark.parametrize(("status", "action", "role"), REFUSED_CASES)
def test_refused_moves_change_nothing(
    world, status, action, role, django_capture_on_commit_callbacks
):
    # Given a trip in `status`
    trip = build(world, status)
    before, offers_before = snapshot(trip), offer_states(trip)

    # When someone makes a move the table does not give them
    with (
        pytest.raises(refusal(status, action, role)),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        act(action, trip, world[role])

    # Then the trip and its offers are exactly as they were, and nothing is sent.
    assert snapshot(trip) == before
    assert offer_states(trip) == offers_before
    assert callbacks == []


@pytest.mark.parametrize("status", [S.REQUESTED, S.STARTED, S.CANCELED, S.EXPIRED])
def test_trip_move_makes_only_the_drivers_own_moves(world, status):
    # Accept, cancel and expiry have services of their own (with their side
    # effects); trip_move refuses to stand in for them.
    trip = build(world, S.STARTED)
    before = snapshot(trip)

    with pytest.raises(InvalidTransition):
        trip_move(trip_id=trip.pk, user=world["assigned"], status=status)

    assert snapshot(trip) == before


def test_a_trip_grows_one_version_per_change(rider, driver):
    trip = trip_create(rider=rider, **TRIP_REQUEST)
    make_offer(trip, driver)

    versions = [trip.version]
    versions.append(trip_accept(trip_id=trip.pk, driver=driver).version)
    versions.append(trip_move(trip_id=trip.pk, user=driver, status=S.IN_PROGRESS).version)
    versions.append(trip_move(trip_id=trip.pk, user=driver, status=S.COMPLETED).version)

    assert versions == [1, 2, 3, 4]
    assert Trip.objects.get(pk=trip.pk).status == S.COMPLETED


# accept


def test_accept_takes_the_live_offer(rider, driver):
    trip = make_trip(rider)
    offer = make_offer(trip, driver)

    accepted = trip_accept(trip_id=trip.pk, driver=driver)

    offer.refresh_from_db()
    assert (accepted.status, accepted.driver_id, accepted.version) == (S.STARTED, driver.pk, 2)
    assert offer.status == Offer.Status.ACCEPTED
    assert offer.closed_at is not None


@pytest.mark.parametrize(
    ("offer_status", "expires_in_s"),
    [
        (Offer.Status.PENDING, -1),  # overdue: the deadline passed, the sweeper has not run
        (Offer.Status.EXPIRED, 15),
        (Offer.Status.DECLINED, 15),
        (Offer.Status.REVOKED, 15),
        (Offer.Status.ACCEPTED, 15),
    ],
)
def test_accept_needs_a_live_offer(rider, driver, offer_status, expires_in_s):
    trip = make_trip(rider)
    make_offer(trip, driver, status=offer_status, expires_in_s=expires_in_s)
    before, offers_before = snapshot(trip), offer_states(trip)

    with pytest.raises(OfferNotAvailable):
        trip_accept(trip_id=trip.pk, driver=driver)

    assert snapshot(trip) == before
    assert offer_states(trip) == offers_before


def test_another_drivers_offer_is_not_yours_to_accept(make_user, rider):
    trip = make_trip(rider)
    holder, other = make_user("driver"), make_user("driver")
    make_offer(trip, holder)
    before = snapshot(trip)

    with pytest.raises(OfferNotAvailable):
        trip_accept(trip_id=trip.pk, driver=other)

    assert snapshot(trip) == before
    assert offer_states(trip) == {holder.pk: Offer.Status.PENDING}


def test_a_second_accept_by_the_winner_is_refused(rider, driver):
    trip = make_trip(rider)
    make_offer(trip, driver)
    trip_accept(trip_id=trip.pk, driver=driver)
    before = snapshot(trip)

    with pytest.raises(OfferNotAvailable):
        trip_accept(trip_id=trip.pk, driver=driver)

    assert snapshot(trip) == before


def test_a_driver_on_a_trip_cannot_accept_another(make_user, driver):
    # Given a driver already driving one trip who still holds an offer for another
    make_trip(make_user("rider"), status=S.STARTED, driver=driver)
    second = make_trip(make_user("rider"))
    make_offer(second, driver)
    before = snapshot(second)

    # When they accept the second, then it is refused and rolled back whole:
    # the offer stays live rather than being marked accepted.
    with pytest.raises(OfferNotAvailable):
        trip_accept(trip_id=second.pk, driver=driver)

    assert snapshot(second) == before
    assert offer_states(second) == {driver.pk: Offer.Status.PENDING}


@pytest.mark.parametrize("trip_id", [uuid.uuid4(), "not-a-uuid", "", None])
def test_accepting_an_unknown_or_malformed_trip_id_is_offer_not_available(driver, trip_id):
    with pytest.raises(OfferNotAvailable):
        trip_accept(trip_id=trip_id, driver=driver)


@pytest.mark.parametrize("trip_id", [uuid.uuid4(), "not-a-uuid", "", None])
def test_moving_an_unknown_or_malformed_trip_id_is_not_found(driver, trip_id):
    with pytest.raises(NotFound):
        trip_move(trip_id=trip_id, user=driver, status=S.IN_PROGRESS)
    with pytest.raises(NotFound):
        trip_cancel(trip_id=trip_id, user=driver)


# cancel and expire


def test_canceling_a_requested_trip_withdraws_its_live_offer(rider, driver):
    trip = make_trip(rider)
    offer = make_offer(trip, driver)

    canceled = trip_cancel(trip_id=trip.pk, user=rider)

    offer.refresh_from_db()
    assert (canceled.status, canceled.status_reason, canceled.version) == (
        S.CANCELED,
        "canceled_by_rider",
        2,
    )
    assert offer.status == Offer.Status.REVOKED


@pytest.mark.parametrize("status", [S.STARTED, S.ARRIVED])
def test_the_assigned_driver_cancel_sends_the_trip_back_to_dispatch(
    rider, driver, status, django_capture_on_commit_callbacks
):
    # PROTOCOL.md Part 2 replaces Part 1's driver cancel to CANCELED.
    trip = make_trip(rider, status=status, driver=driver)

    with django_capture_on_commit_callbacks(execute=True):
        back = trip_cancel(trip_id=trip.pk, user=driver, reason_code="vehicle_issue")

    row = Trip.objects.get(pk=trip.pk)
    assert (row.status, row.status_reason, row.driver_id, row.cancel_reason_code) == (
        S.REQUESTED,
        "driver_canceled",
        None,
        "vehicle_issue",
    )
    assert back.status == S.REQUESTED and row.cancellation_fee is None
    assert queued_dispatches() == 1


def test_a_driver_cancel_with_a_riders_reason_code_is_refused(rider, driver):
    trip = make_trip(rider, status=S.STARTED, driver=driver)
    before = snapshot(trip)

    with pytest.raises(InvalidInput):
        trip_cancel(trip_id=trip.pk, user=driver, reason_code="changed_mind")

    assert snapshot(trip) == before


def test_a_long_cancel_reason_is_cut_to_the_column(rider):
    trip = make_trip(rider)

    canceled = trip_cancel(trip_id=trip.pk, user=rider, reason="x" * 1000)

    assert canceled.status_reason == "x" * 255


def test_expire_gives_up_on_a_requested_trip(rider, driver):
    trip = make_trip(rider)
    offer = make_offer(trip, driver)

    expired = trip_expire(trip_id=trip.pk, reason=Trip.Reason.NO_DRIVERS)

    offer.refresh_from_db()
    assert (expired.status, expired.status_reason, expired.version) == (S.EXPIRED, "no_drivers", 2)
    assert offer.status == Offer.Status.REVOKED


def test_expire_twice_changes_nothing_the_second_time(rider):
    trip = make_trip(rider)
    trip_expire(trip_id=trip.pk, reason=Trip.Reason.STALE)
    before = snapshot(trip)

    assert trip_expire(trip_id=trip.pk, reason=Trip.Reason.STALE) is None
    assert snapshot(trip) == before


@pytest.mark.parametrize("status", [s for s in S.values if s not in (S.REQUESTED, S.SCHEDULED)])
def test_expire_leaves_a_trip_that_moved_on_alone(
    world, status, django_capture_on_commit_callbacks
):
    trip = build(world, status)
    before, offers_before = snapshot(trip), offer_states(trip)

    with django_capture_on_commit_callbacks() as callbacks:
        assert trip_expire(trip_id=trip.pk, reason=Trip.Reason.STALE) is None

    assert snapshot(trip) == before
    assert offer_states(trip) == offers_before
    assert callbacks == []


def test_expire_of_an_unknown_trip_is_quiet():
    assert trip_expire(trip_id=uuid.uuid4(), reason=Trip.Reason.STALE) is None


# decline (dispatch.offers.offer_decline)


def test_decline_closes_the_offer_and_asks_for_the_next_driver(
    rider, driver, django_capture_on_commit_callbacks
):
    # Given a driver holding a live offer
    trip = make_trip(rider)
    make_offer(trip, driver)
    before = snapshot(trip)

    # When they decline it
    with django_capture_on_commit_callbacks(execute=True):
        offer = offer_decline(trip_id=trip.pk, driver=driver)

    # Then the offer is closed, the trip itself is untouched (the rider keeps
    # waiting), and dispatch runs again for the next candidate.
    offer.refresh_from_db()
    assert offer.status == Offer.Status.DECLINED
    assert offer.closed_at is not None and offer.closed_at <= timezone.now()
    assert snapshot(trip) == before
    assert queued_dispatches() == 1


def test_a_declined_offer_can_no_longer_be_accepted(rider, driver):
    trip = make_trip(rider)
    make_offer(trip, driver)
    offer_decline(trip_id=trip.pk, driver=driver)

    with pytest.raises(OfferNotAvailable):
        trip_accept(trip_id=trip.pk, driver=driver)

    assert snapshot(trip)[:3] == (S.REQUESTED, 1, None)


@pytest.mark.parametrize(
    ("offer_status", "expires_in_s"),
    [
        (None, 15),  # never offered
        (Offer.Status.PENDING, -1),  # overdue
        (Offer.Status.DECLINED, 15),  # declined already
        (Offer.Status.EXPIRED, 15),
        (Offer.Status.REVOKED, 15),
        (Offer.Status.ACCEPTED, 15),
    ],
)
def test_decline_needs_a_live_offer(
    rider, driver, offer_status, expires_in_s, django_capture_on_commit_callbacks
):
    taken = offer_status == Offer.Status.ACCEPTED
    trip = make_trip(
        rider, status=S.STARTED if taken else S.REQUESTED, driver=driver if taken else None
    )
    if offer_status is not None:
        make_offer(trip, driver, status=offer_status, expires_in_s=expires_in_s)
    before, offers_before = snapshot(trip), offer_states(trip)

    with pytest.raises(OfferNotAvailable), django_capture_on_commit_callbacks() as callbacks:
        offer_decline(trip_id=trip.pk, driver=driver)

    assert snapshot(trip) == before
    assert offer_states(trip) == offers_before
    assert callbacks == []
    assert queued_dispatches() == 0


def test_decline_leaves_another_drivers_offer_alone(make_user, rider):
    trip = make_trip(rider)
    holder, other = make_user("driver"), make_user("driver")
    make_offer(trip, holder)

    with pytest.raises(OfferNotAvailable):
        offer_decline(trip_id=trip.pk, driver=other)

    assert offer_states(trip) == {holder.pk: Offer.Status.PENDING}


@pytest.mark.parametrize("trip_id", [uuid.uuid4(), "not-a-uuid", None])
def test_declining_an_unknown_or_malformed_trip_id_is_offer_not_available(driver, trip_id):
    with pytest.raises(OfferNotAvailable):
        offer_decline(trip_id=trip_id, driver=driver)


# --- the stale-trip sweep (trips_expire_stale) -------------------------------------


@pytest.mark.django_db(transaction=True)
def test_stale_trips_expire_and_their_offers_are_withdrawn(rider, make_user):
    near = make_user("driver")
    put_online(near, 0.4)
    old = request_trip(rider)
    offer = trip_offer_next(trip_id=old.pk)
    age = timedelta(seconds=settings.TRIP_STALE_AFTER_S + 5)
    Trip.objects.filter(pk=old.pk).update(
        created=timezone.now() - age, updated=timezone.now() - age
    )
    young = request_trip(make_user("rider"))

    assert trips_expire_stale() == 1
    assert trips_expire_stale() == 0

    old.refresh_from_db()
    assert (old.status, old.status_reason) == (Trip.Status.EXPIRED, "stale")
    offer.refresh_from_db()
    assert offer.status == Offer.Status.REVOKED
    assert near.pk in available()
    young.refresh_from_db()
    assert young.status == Trip.Status.REQUESTED
