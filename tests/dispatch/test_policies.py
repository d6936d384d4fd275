"""Matching policies (`dispatch.policies`): the interface the dispatch loop
calls, the default `nearest`, and that a policy is chosen by DISPATCH_POLICY."""

import sys
import types
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured

from dispatch import policies
from dispatch.loop import trip_offer_next
from dispatch.matching import Candidate
from dispatch.policies import Assignment, WaitingTrip, nearest
from tests.dispatch.support import request_trip


def waiting(exclude=()) -> WaitingTrip:
    return WaitingTrip(trip_id=uuid.uuid4(), lat=38.9, lng=-77.0, exclude=frozenset(exclude))


def test_nearest_proposes_each_trips_candidates_in_the_order_given():
    first, second = waiting(), waiting()
    ranked = {
        first.trip_id: [Candidate(7, 0.3), Candidate(3, 1.2)],
        second.trip_id: [Candidate(3, 0.5)],
    }

    proposed = list(nearest.policy.assign([first, second], lambda t: ranked[t.trip_id]))

    assert proposed == [
        Assignment(first.trip_id, Candidate(7, 0.3)),
        Assignment(first.trip_id, Candidate(3, 1.2)),
        Assignment(second.trip_id, Candidate(3, 0.5)),
    ]


def test_nearest_reads_candidates_only_as_far_as_it_is_asked():
    read = []

    def candidates(trip):
        for candidate in (Candidate(1, 0.1), Candidate(2, 0.2)):
            read.append(candidate.driver_id)
            yield candidate

    proposals = iter(nearest.policy.assign([waiting()], candidates))
    next(proposals)

    assert read == [1], "the second candidate is not read before it is needed"


def test_the_setting_names_the_policy(settings):
    settings.DISPATCH_POLICY = "nearest"
    assert policies.current() is nearest.policy

    settings.DISPATCH_POLICY = "no_such_policy"
    with pytest.raises(ImproperlyConfigured):
        policies.current()


@pytest.mark.django_db(transaction=True)
def test_the_loop_offers_whom_the_configured_policy_proposes(
    settings, monkeypatch, rider, driver_at
):
    # Given a policy module that proposes the farthest candidate first
    near, far = driver_at(0.3), driver_at(1.5)

    class Farthest:
        def assign(self, trips, candidates):
            for trip in trips:
                for candidate in sorted(candidates(trip), key=lambda c: -c.distance_km):
                    yield Assignment(trip.trip_id, candidate)

    module = types.ModuleType("dispatch.policies.farthest")
    module.policy = Farthest()
    monkeypatch.setitem(sys.modules, "dispatch.policies.farthest", module)
    settings.DISPATCH_POLICY = "farthest"
    trip = request_trip(rider)

    # When the loop runs, then the far driver gets the offer, the near one nothing.
    offer = trip_offer_next(trip_id=trip.pk)

    assert offer.driver_id == far.pk
    assert near.pk != offer.driver_id
