"""`nearest` (PROTOCOL.md, "DISPATCH_POLICY"): one request at a time, each
offered to the nearest available driver not yet offered it; the next nearest
when that driver turns out busy. Reads one ring of the geo index in the common
case, since the loop stops reading once the trip has its offer."""

from collections.abc import Iterator, Sequence

from dispatch.policies import Assignment, Candidates, WaitingTrip


class Nearest:
    windowed = False

    def assign(self, trips: Sequence[WaitingTrip], candidates: Candidates) -> Iterator[Assignment]:
        for trip in trips:
            for candidate in candidates(trip):
                yield Assignment(trip_id=trip.trip_id, candidate=candidate)


policy = Nearest()
