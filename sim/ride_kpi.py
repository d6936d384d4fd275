"""The KPIs of the whole ride (PROTOCOL.md Part 2), from the run's event log
(`sim.kpi`): no-shows, drivers giving trips up and the trips' return to
dispatch, ratings, and rides booked ahead. Pure functions, like `sim.kpi`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sim import kpi
from sim.kpi import DRIVER, RIDER, Event


def compute_ride_kpis(events: Iterable[Event], *, on_time_tolerance_s: float = 0.0) -> dict:
    """The whole ride's KPIs, added to `kpi.compute_kpis`'s.

    no_show_rate: of the pick-ups that resolved (the rider got in, or the
    driver canceled for a no-show), the share where the rider never came.
    driver_cancels: drivers giving up a trip they had accepted. redispatches:
    the rider's trip back in dispatch after its driver gave it up (count of
    returns, trips, their share of the trips matched), and what became of
    those trips. ratings: ratings that went through, each way, with their
    mean stars. scheduled: rides booked ahead; one is served when a driver
    reached its pick-up (the rider saw ARRIVED, or was picked up), on time
    when that was no later than its time plus `on_time_tolerance_s`, and late
    when it was later, or when no driver had come by then (the ride canceled,
    or still waiting when the run ended, past that time).
    """
    events = list(events)
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)

    def of(kind: str) -> list[Event]:
        return by_kind.get(kind, [])

    def trips(kind: str) -> set[str | None]:
        return {e.trip_id for e in of(kind)}

    no_shows, picked_up = trips(kpi.NO_SHOW), trips(kpi.PICKED_UP)
    resolved = no_shows | picked_up
    gave_up = of(kpi.GAVE_UP)
    return {
        "no_show_rate": _share(len(no_shows), len(resolved)),
        "no_shows": {
            "count": len(no_shows),
            "pick_ups_resolved": len(resolved),
            "too_early": len(trips(kpi.NO_SHOW_TOO_EARLY)),
        },
        "driver_cancels": {
            "count": len(gave_up),
            "by_reason": dict(sorted(Counter(e.detail for e in gave_up).items())),
        },
        "redispatches": _redispatches(of, trips),
        "ratings": _ratings(of(kpi.RATED), of(kpi.RATING_FAILED)),
        "scheduled": _scheduled(of, on_time_tolerance_s, max((e.t for e in events), default=0.0)),
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _redispatches(of, trips) -> dict:
    """A trip went back to dispatch; was it then matched again, and served?"""
    back = of(kpi.REDISPATCHED)
    returned = {e.trip_id for e in back}
    last_return = {}
    for event in back:
        last_return[event.trip_id] = max(event.t, last_return.get(event.trip_id, event.t))
    rematched = {
        e.trip_id
        for e in of(kpi.MATCHED)
        if e.trip_id in returned and e.t >= last_return[e.trip_id]
    }
    matched = trips(kpi.MATCHED)
    return {
        "count": len(back),
        "trips": len(returned),
        "share": _share(len(returned), len(matched)),
        "rematched": len(rematched),
        "completed": len(returned & trips(kpi.COMPLETED)),
        "expired": len(returned & trips(kpi.EXPIRED)),
        "canceled": len(returned & trips(kpi.CANCELED)),
        "open_at_end": len(returned & trips(kpi.OPEN_AT_END)),
    }


def _ratings(rated: list[Event], failed: list[Event]) -> dict:
    def side(rater: str) -> dict:
        stars = [e.value for e in rated if e.detail == rater and e.value is not None]
        return {
            "count": len(stars),
            "mean_stars": round(sum(stars) / len(stars), 3) if stars else None,
        }

    return {
        "submitted": len(rated),
        "rider_to_driver": side(RIDER),
        "driver_to_rider": side(DRIVER),
        "failed": len(failed),
        "failed_by_code": dict(sorted(Counter(e.detail for e in failed).items())),
    }


def _scheduled(of, tolerance_s: float, last_t: float) -> dict:
    """Each ride booked ahead: on time, late, expired, or unserved (nobody
    came, and it ended, or the run did, before it was late); and when its
    driver came, against the time it was booked for (negative: early)."""
    due = {e.request: e.value for e in of(kpi.SCHEDULED) if e.value is not None}
    trip_due = {e.trip_id: due[e.request] for e in of(kpi.CREATED) if e.request in due}
    # The driver who served the ride reached it last (an earlier one gave it
    # up); a pick-up the rider saw without the arrival before it counts too.
    arrived: dict[str | None, float] = {}
    for event in of(kpi.ARRIVED):
        arrived[event.trip_id] = max(event.t, arrived.get(event.trip_id, event.t))
    picked: dict[str | None, float] = {}
    for event in of(kpi.PICKED_UP):
        picked[event.trip_id] = min(event.t, picked.get(event.trip_id, event.t))
    reached = {
        trip: arrived.get(trip, picked.get(trip))
        for trip in trip_due
        if trip in arrived or trip in picked
    }
    expired = {e.trip_id for e in of(kpi.EXPIRED)} & set(trip_due)
    served = {
        trip: t - trip_due[trip]
        for trip, t in reached.items()
        if t is not None and trip not in expired
    }
    on_time = sum(1 for lateness in served.values() if lateness <= tolerance_s)
    # Never reached: when did the ride end (canceled, or open at the end)?
    ended: dict[str | None, float] = {}
    for event in [*of(kpi.CANCELED), *of(kpi.OPEN_AT_END)]:
        ended[event.trip_id] = min(event.t, ended.get(event.trip_id, event.t))
    unreached = set(trip_due) - set(served) - expired
    not_reached_in_time = sum(
        1 for trip in unreached if ended.get(trip, last_t) - trip_due[trip] > tolerance_s
    )
    refused = sum(1 for e in of(kpi.REQUEST_FAILED) if e.request in due)
    return {
        "asked": len(due),
        "count": len(trip_due),
        "refused": refused,
        "on_time": on_time,
        "late": len(served) - on_time + not_reached_in_time,
        "late_not_reached": not_reached_in_time,
        "expired": len(expired),
        "unserved": len(unreached) - not_reached_in_time,
        "on_time_tolerance_s": tolerance_s,
        "arrival_vs_time_s": {
            "mean": round(sum(served.values()) / len(served), 2) if served else None,
            "max": round(max(served.values()), 2) if served else None,
        },
    }
