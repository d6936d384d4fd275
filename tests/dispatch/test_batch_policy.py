"""The `batch` policy (`dispatch/policies/batch.py`), pure: synthetic
candidates in, proposals out, no Redis and no rows."""

import uuid

from dispatch import policies
from dispatch.matching import Candidate
from dispatch.policies import WaitingTrip, batch, nearest
from dispatch.policies.batch import Batch


def waiting(waited_windows: int = 0) -> WaitingTrip:
    return WaitingTrip(
        trip_id=uuid.uuid4(),
        lat=38.9,
        lng=-77.0,
        exclude=frozenset(),
        waited_windows=waited_windows,
    )


def given(ranked: dict):
    """`candidates(trip)` over a fixed table, nearest first as the geo index answers."""

    def candidates(trip):
        return iter(sorted(ranked[trip.trip_id], key=lambda c: (c.distance_km, c.driver_id)))

    return candidates


def pairs(proposals) -> dict:
    return {p.trip_id: p.candidate.driver_id for p in proposals}


def total_km(proposals) -> float:
    return round(sum(p.candidate.distance_km for p in proposals), 6)


def first_offer_each(proposals) -> list:
    """What the loop makes of the proposals: each trip's first, each driver once."""
    made, drivers = [], set()
    for proposal in proposals:
        if proposal.trip_id in {p.trip_id for p in made}:
            continue
        if proposal.candidate.driver_id in drivers:
            continue
        made.append(proposal)
        drivers.add(proposal.candidate.driver_id)
    return made


def test_the_crossing_case_nearest_first_is_worse_and_batch_finds_the_optimum():
    # Given two requests a street apart and two drivers: the first request's
    # nearest driver is also the only near one of the second request
    a, b = waiting(), waiting()
    ranked = {
        a.trip_id: [Candidate(1, 0.5), Candidate(2, 0.9)],
        b.trip_id: [Candidate(1, 0.6), Candidate(2, 3.0)],
    }

    # When nearest-first serves them in order, and batch serves them together
    greedy = first_offer_each(nearest.policy.assign([a, b], given(ranked)))
    batched = list(Batch().assign([a, b], given(ranked)))

    # Then nearest-first pays 3.5 km, batch the optimum 1.5 km
    assert pairs(greedy) == {a.trip_id: 1, b.trip_id: 2}
    assert total_km(greedy) == 3.5
    assert pairs(batched) == {a.trip_id: 2, b.trip_id: 1}
    assert total_km(batched) == 1.5


def test_proposals_come_best_first_with_one_per_trip_and_each_driver_once():
    trips = [waiting() for _ in range(3)]
    ranked = {
        trips[0].trip_id: [Candidate(1, 2.0), Candidate(2, 2.5)],
        trips[1].trip_id: [Candidate(2, 0.4), Candidate(3, 0.7)],
        trips[2].trip_id: [Candidate(3, 1.0), Candidate(1, 3.0)],
    }

    proposed = list(Batch().assign(trips, given(ranked)))

    assert [p.candidate.distance_km for p in proposed] == [0.4, 1.0, 2.0]
    assert len({p.trip_id for p in proposed}) == 3
    assert len({p.candidate.driver_id for p in proposed}) == 3


def test_a_pairing_above_the_ceiling_is_not_made_and_its_trip_waits():
    near, far = waiting(), waiting()
    ranked = {near.trip_id: [Candidate(1, 0.8)], far.trip_id: [Candidate(2, 6.0)]}

    proposed = list(Batch(ceiling_km=5.0).assign([near, far], given(ranked)))

    assert pairs(proposed) == {near.trip_id: 1}, "the trip 6 km from anyone waits"


def test_more_requests_than_drivers_leaves_the_costliest_waiting_not_a_wrong_pairing():
    a, b = waiting(), waiting()
    ranked = {a.trip_id: [Candidate(1, 0.3)], b.trip_id: [Candidate(1, 0.9)]}

    proposed = list(Batch().assign([a, b], given(ranked)))

    assert pairs(proposed) == {a.trip_id: 1}


def test_only_the_k_nearest_candidates_of_each_trip_are_read():
    trip = waiting()
    read = []

    def candidates(_trip):
        for n in range(1, 100):
            read.append(n)
            yield Candidate(n, n / 10)

    proposed = list(Batch(k=3).assign([trip], candidates))

    assert read == [1, 2, 3], "the fourth candidate is never asked of the geo index"
    assert pairs(proposed) == {trip.trip_id: 1}


def test_k_bounds_the_choice_a_driver_beyond_it_is_not_used():
    # Given two trips sharing their three nearest drivers, and k=1
    a, b = waiting(), waiting()
    ranked = {
        a.trip_id: [Candidate(1, 0.1), Candidate(2, 0.2)],
        b.trip_id: [Candidate(1, 0.15), Candidate(2, 0.3)],
    }

    proposed = list(Batch(k=1).assign([a, b], given(ranked)))

    # Then only driver 1 is considered at all; one trip waits
    assert [p.candidate.driver_id for p in proposed] == [1]


def test_fairness_a_trip_that_waited_two_windows_goes_first_even_at_a_higher_total():
    # Given a trip waiting its third window and a fresh one, competing for the
    # one driver, who is nearer the fresh one
    old, fresh = waiting(waited_windows=2), waiting(waited_windows=0)
    ranked = {old.trip_id: [Candidate(1, 1.2)], fresh.trip_id: [Candidate(1, 0.2)]}

    proposed = list(Batch().assign([old, fresh], given(ranked)))

    # Then the old one gets the driver, the fresh one waits
    assert pairs(proposed) == {old.trip_id: 1}


def test_fairness_before_two_windows_the_cheaper_pairing_wins():
    old, fresh = waiting(waited_windows=1), waiting(waited_windows=0)
    ranked = {old.trip_id: [Candidate(1, 1.2)], fresh.trip_id: [Candidate(1, 0.2)]}

    proposed = list(Batch().assign([old, fresh], given(ranked)))

    assert pairs(proposed) == {fresh.trip_id: 1}


def test_fairness_an_overdue_trip_is_not_held_by_the_ceiling():
    overdue = waiting(waited_windows=2)
    ranked = {overdue.trip_id: [Candidate(1, 7.5)]}

    proposed = list(Batch(ceiling_km=5.0).assign([overdue], given(ranked)))

    assert pairs(proposed) == {overdue.trip_id: 1}


def test_fairness_an_overdue_trip_does_not_take_a_driver_beyond_its_first_ring_from_a_nearer_trip():
    # Given an overdue trip whose only driver is 3 km away (beyond its 2 km
    # first ring) and a fresh request 0.2 km from that driver
    overdue, fresh = waiting(waited_windows=5), waiting()
    ranked = {overdue.trip_id: [Candidate(1, 3.0)], fresh.trip_id: [Candidate(1, 0.2)]}

    proposed = list(Batch(first_ring_km=2.0).assign([overdue, fresh], given(ranked)))

    # Then the guard does not apply: the fresh request gets the driver
    assert pairs(proposed) == {fresh.trip_id: 1}


def test_fairness_the_guard_pairs_as_many_overdue_trips_as_it_can_within_their_first_ring():
    # Given two overdue trips: A near driver 1 and within reach of driver 2,
    # B within reach of driver 1 only
    a, b = waiting(waited_windows=2), waiting(waited_windows=2)
    ranked = {
        a.trip_id: [Candidate(1, 0.1), Candidate(2, 1.9)],
        b.trip_id: [Candidate(1, 1.9)],
    }

    proposed = list(Batch(first_ring_km=2.0).assign([a, b], given(ranked)))

    # Then both go, though A alone on driver 1 would cost less
    assert pairs(proposed) == {a.trip_id: 2, b.trip_id: 1}


def test_fairness_an_overdue_trip_takes_a_driver_beyond_the_ceiling_only_once_nobody_else_did():
    # Given an overdue trip whose drivers are 7 km and 8 km away, one of them
    # 0.5 km from a fresh request
    overdue, fresh = waiting(waited_windows=2), waiting()
    ranked = {
        overdue.trip_id: [Candidate(1, 7.0), Candidate(2, 8.0)],
        fresh.trip_id: [Candidate(1, 0.5)],
    }

    proposed = list(Batch(ceiling_km=5.0).assign([overdue, fresh], given(ranked)))

    # Then the fresh request has its driver, and the overdue trip the other one
    assert pairs(proposed) == {fresh.trip_id: 1, overdue.trip_id: 2}
    assert proposed[-1].trip_id == overdue.trip_id, "the pairing beyond the ceiling comes last"


def test_no_trips_or_no_candidates_propose_nothing():
    lonely = waiting()

    assert list(Batch().assign([], given({}))) == []
    assert list(Batch().assign([lonely], given({lonely.trip_id: []}))) == []


def test_a_large_window_is_solved_to_a_valid_assignment():
    # 300 trips, 200 drivers: every driver at most once, every trip at most once
    trips = [waiting() for _ in range(300)]
    ranked = {
        trip.trip_id: [
            Candidate((i * 7 + j * 13) % 200, 0.1 + ((i + j) % 17) / 4) for j in range(8)
        ]
        for i, trip in enumerate(trips)
    }

    proposed = list(Batch().assign(trips, given(ranked)))

    assert len({p.trip_id for p in proposed}) == len(proposed)
    assert len({p.candidate.driver_id for p in proposed}) == len(proposed)
    assert len(proposed) == 200


def test_the_knobs_are_read_from_the_settings_at_each_window(settings):
    # Given a trip whose nearest driver is 6 km away and the next 7 km
    trip = waiting()
    ranked = {trip.trip_id: [Candidate(1, 6.0), Candidate(2, 7.0)]}
    policy = Batch()

    # Then at the defaults (5 km) it waits
    assert list(policy.assign([trip], given(ranked))) == []

    # When the ceiling is raised, the same policy object pairs it
    settings.DISPATCH_BATCH_MAX_PICKUP_KM = 6.5
    assert pairs(policy.assign([trip], given(ranked))) == {trip.trip_id: 1}

    # When the guard is one window, a trip that waited one goes at any distance
    settings.DISPATCH_BATCH_MAX_PICKUP_KM = 1.0
    settings.DISPATCH_BATCH_FAIR_WINDOWS = 1
    once = WaitingTrip(trip.trip_id, trip.lat, trip.lng, frozenset(), waited_windows=1)
    assert pairs(policy.assign([once], given(ranked))) == {trip.trip_id: 1}


def test_k_is_read_from_the_settings(settings):
    settings.DISPATCH_BATCH_CANDIDATES = 2
    trip, read = waiting(), []

    def candidates(_trip):
        for n in range(1, 100):
            read.append(n)
            yield Candidate(n, n / 10)

    list(batch.policy.assign([trip], candidates))

    assert read == [1, 2]


def test_knobs_given_to_the_policy_win_over_the_settings(settings):
    settings.DISPATCH_BATCH_CANDIDATES = 1
    settings.DISPATCH_BATCH_MAX_PICKUP_KM = 0.5

    policy = Batch(k=4, ceiling_km=10.0, fair_windows=3)

    assert (policy.k, policy.ceiling_km, policy.fair_windows) == (4, 10.0, 3)


def test_the_setting_names_batch(settings):
    settings.DISPATCH_POLICY = "batch"

    assert policies.current() is batch.policy
    assert policies.current().windowed
    assert not nearest.policy.windowed
