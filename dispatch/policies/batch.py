"""`batch` (PROTOCOL.md, "DISPATCH_POLICY"): the requests gathered over one
window (DISPATCH_BATCH_WINDOW_MS, by the matcher in `dispatch.matcher`) are
assigned together, so that the total pickup cost is smallest, instead of
each taking the nearest driver in the order they came. Two requests a street
apart then no longer each take the driver the other one should have had.

The cost is the pickup distance (an ETA estimate can replace it here). Each
trip considers its DISPATCH_BATCH_CANDIDATES (k) nearest candidates; a
pairing that costs more than the ceiling (DISPATCH_BATCH_MAX_PICKUP_KM) is
not made, and its trip waits for the next window, when a nearer driver may
be free. One min-cost bipartite matching (scipy's sparse solver) decides,
with a dummy "wait" column per trip priced at the ceiling, so a full
matching always exists and leaving a trip waiting is a choice the solver
weighs against pairing it further away.

Fairness guard (the issue's "a request never waits more than two windows in
a row while an eligible driver is free within its first ring"): a trip that
has already waited DISPATCH_BATCH_FAIR_WINDOWS windows in a row is overdue.
Overdue trips are matched first, among themselves, to the drivers within
their first search ring (DISPATCH_RADII_KM's first), as many of them as can
be. Then every trip left competes in the window's assignment under the
ceiling. Last, an overdue trip still waiting may take a driver beyond the
ceiling that nobody else in the window took. The guard's priority stops at
the first ring on purpose: with priority at any distance, in a city where
most requests wait for supply most of them are overdue, and each freed
driver went to an overdue trip kilometres away rather than to a request
beside it (BENCHMARKS.md, "Matching").

The knobs are settings, read at each window (README, "Configuration"); a
`Batch` given them explicitly uses those instead (the benchmark's solver
timing runs without Django's settings).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from django.conf import settings
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from dispatch.matching import Candidate
from dispatch.policies import Assignment, Candidates, WaitingTrip

# Added to every edge: the sparse solver sees a zero weight as no edge, and a
# shift common to every row (each is matched exactly once) changes nothing.
EDGE_SHIFT = 1e-3


class Batch:
    windowed = True

    def __init__(
        self,
        *,
        k: int | None = None,
        ceiling_km: float | None = None,
        fair_windows: int | None = None,
        first_ring_km: float | None = None,
    ) -> None:
        """Each knob left None is read from its setting at every window."""
        self._k, self._ceiling_km, self._fair_windows = k, ceiling_km, fair_windows
        self._first_ring_km = first_ring_km

    @property
    def k(self) -> int:
        return self._k if self._k is not None else settings.DISPATCH_BATCH_CANDIDATES

    @property
    def ceiling_km(self) -> float:
        if self._ceiling_km is not None:
            return self._ceiling_km
        return settings.DISPATCH_BATCH_MAX_PICKUP_KM

    @property
    def fair_windows(self) -> int:
        if self._fair_windows is not None:
            return self._fair_windows
        return settings.DISPATCH_BATCH_FAIR_WINDOWS

    @property
    def first_ring_km(self) -> float:
        if self._first_ring_km is not None:
            return self._first_ring_km
        return settings.DISPATCH_RADII_KM[0]

    def assign(self, trips: Sequence[WaitingTrip], candidates: Candidates) -> Iterator[Assignment]:
        k, ceiling_km, fair_windows = self.k, self.ceiling_km, self.fair_windows
        options = {trip.trip_id: list(itertools.islice(candidates(trip), k)) for trip in trips}
        overdue = [t for t in trips if t.waited_windows >= fair_windows]
        # 1. The guard: overdue trips, as many as can be, within their first ring.
        guarded = solve(overdue, options, max_km=self.first_ring_km)
        taken = {assignment.candidate.driver_id for assignment in guarded}
        paired = {assignment.trip_id for assignment in guarded}
        # 2. Everyone else, under the ceiling: waiting costs as much as the
        # longest pickup allowed, so a trip waits rather than go beyond it.
        rest = [t for t in trips if t.trip_id not in paired]
        assigned = solve(rest, options, max_km=ceiling_km, wait_km=ceiling_km, taken=taken)
        taken |= {assignment.candidate.driver_id for assignment in assigned}
        paired |= {assignment.trip_id for assignment in assigned}
        # 3. Overdue trips still waiting, to drivers nobody took, at any distance.
        left = [t for t in overdue if t.trip_id not in paired]
        beyond = solve(left, options, max_km=None, taken=taken)
        for step in (guarded, assigned, beyond):
            yield from sorted(step, key=_cost)


def _cost(assignment: Assignment) -> float:
    return assignment.candidate.distance_km


def solve(
    trips: Sequence[WaitingTrip],
    options: dict[object, list[Candidate]],
    *,
    max_km: float | None,
    wait_km: float | None = None,
    taken: frozenset[int] | set[int] = frozenset(),
) -> list[Assignment]:
    """The min-cost assignment of `trips` to their `options` (trip id ->
    candidates), each driver once, none of `taken`. Pairings above `max_km`
    are not made (None: no limit). Leaving a trip waiting costs `wait_km`;
    None: more than any pairing, so as many trips as can be are paired. A
    trip left waiting is not in the answer."""
    rows, cols, costs = [], [], []
    column_of: dict[int, int] = {}
    for row, trip in enumerate(trips):
        for candidate in options[trip.trip_id]:
            if candidate.driver_id in taken:
                continue
            if max_km is not None and candidate.distance_km > max_km:
                continue
            column = column_of.setdefault(candidate.driver_id, len(column_of))
            rows.append(row)
            cols.append(column)
            costs.append(candidate.distance_km)
    if not rows:
        return []
    drivers = len(column_of)
    n = len(trips)
    # One "wait" column per trip, so a full matching always exists. Without
    # `wait_km` it costs more than any n pairings together: one trip more
    # paired always beats a cheaper total.
    wait_cost = wait_km if wait_km is not None else n * max(costs) + 1.0
    rows_all = np.concatenate([np.asarray(rows), np.arange(n)])
    cols_all = np.concatenate([np.asarray(cols), drivers + np.arange(n)])
    costs_all = np.concatenate([np.asarray(costs, dtype=float), np.full(n, float(wait_cost))])
    graph = csr_matrix((costs_all + EDGE_SHIFT, (rows_all, cols_all)), shape=(n, drivers + n))
    matched_rows, matched_columns = min_weight_full_bipartite_matching(graph)
    chosen = {
        (int(row), int(column))
        for row, column in zip(matched_rows, matched_columns, strict=True)
        if column < drivers
    }
    assignments = []
    for row, trip in enumerate(trips):
        for candidate in options[trip.trip_id]:
            column = column_of.get(candidate.driver_id)
            if (row, column) in chosen:
                assignments.append(Assignment(trip_id=trip.trip_id, candidate=candidate))
                break
    return assignments


policy = Batch()
