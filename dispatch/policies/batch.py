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

Fairness guard: a trip that has already waited DISPATCH_BATCH_FAIR_WINDOWS
windows in a row goes first. Those trips are matched among themselves before
the others, over all their candidates and without the ceiling, so at the
default (2) no request waits more than two windows while an eligible driver
is free near it.

The three are settings, read at each window (README, "Configuration"); a
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
    ) -> None:
        """Each knob left None is read from its setting at every window."""
        self._k, self._ceiling_km, self._fair_windows = k, ceiling_km, fair_windows

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

    def assign(self, trips: Sequence[WaitingTrip], candidates: Candidates) -> Iterator[Assignment]:
        k, ceiling_km, fair_windows = self.k, self.ceiling_km, self.fair_windows
        options = {trip.trip_id: list(itertools.islice(candidates(trip), k)) for trip in trips}
        overdue = [t for t in trips if t.waited_windows >= fair_windows]
        rest = [t for t in trips if t.waited_windows < fair_windows]
        first = solve(overdue, options, ceiling_km=None)
        taken = {assignment.candidate.driver_id for assignment in first}
        second = solve(rest, options, ceiling_km=ceiling_km, taken=taken)
        yield from sorted(first, key=_cost)
        yield from sorted(second, key=_cost)


def _cost(assignment: Assignment) -> float:
    return assignment.candidate.distance_km


def solve(
    trips: Sequence[WaitingTrip],
    options: dict[object, list[Candidate]],
    *,
    ceiling_km: float | None,
    taken: frozenset[int] | set[int] = frozenset(),
) -> list[Assignment]:
    """The min-cost assignment of `trips` to their `options` (trip id ->
    candidates), each driver once, none of `taken`. Pairings above
    `ceiling_km` are not made (None: no ceiling); a trip left without a
    driver is not in the answer."""
    rows, cols, costs = [], [], []
    column_of: dict[int, int] = {}
    for row, trip in enumerate(trips):
        for candidate in options[trip.trip_id]:
            if candidate.driver_id in taken:
                continue
            if ceiling_km is not None and candidate.distance_km > ceiling_km:
                continue
            column = column_of.setdefault(candidate.driver_id, len(column_of))
            rows.append(row)
            cols.append(column)
            costs.append(candidate.distance_km)
    if not rows:
        return []
    drivers = len(column_of)
    # One "wait" column per trip, priced above any pairing the ceiling lets
    # through (without a ceiling, above every pairing: waiting is the last resort).
    wait_cost = ceiling_km if ceiling_km is not None else 2 * max(costs) + 1.0
    n = len(trips)
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
