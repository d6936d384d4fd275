"""The run's event log and the KPIs computed from it (pure functions).

Agents append events as they see them on their own sockets; the report is a
function of that log alone, so the KPI math is tested on a synthetic log.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

logger = logging.getLogger(__name__)

# Event kinds, in the order a trip meets them.
REQUESTED = "requested"  # a rider sent create.trip / POST /api/trip/ (request)
CREATED = "created"  # the server answered with the trip (request, trip_id)
REQUEST_FAILED = "request_failed"  # the server refused it (request, detail=code)
SKIPPED = "skipped"  # every rider was busy when the request was due (request)
OFFER = "offer"  # a driver got trip.offer (trip_id, driver, value=distance_km)
DECIDED = "decided"  # the driver's scripted answer (trip_id, driver, detail=action)
ACCEPTED = "accepted"  # the accept went through (trip_id, driver, value=km to pick-up)
ACCEPT_REFUSED = "accept_refused"  # the accept came too late (trip_id, driver, detail=code)
REVOKED = "revoked"  # trip.offer.revoked (trip_id, driver, detail=reason)
MATCHED = "matched"  # the rider saw STARTED (trip_id, request)
PICKED_UP = "picked_up"  # IN_PROGRESS (trip_id)
COMPLETED = "completed"
CANCELED = "canceled"  # (trip_id, detail=who/why)
EXPIRED = "expired"  # (trip_id, detail=status_reason)
OPEN_AT_END = "open_at_end"  # still unresolved when the run ended (trip_id)
ERROR = "error"  # an error frame or failed call (detail)
# Prices and times of arrival (PROTOCOL.md Part 2).
QUOTE_SENT = "quote_sent"  # a rider sent POST /api/quotes/ (request)
QUOTED = "quoted"  # the quote came back (request, value=surge multiplier, detail=product)
QUOTE_FAILED = "quote_failed"  # no quote (request, detail=code); the rider asks unquoted
DECLINED_SURGE = "declined_surge"  # the rider walked away from a surged quote (request, value)
PICKUP_ETA = "pickup_eta"  # the rider's trip at STARTED (trip_id, value=pickup_eta_s)
AT_PICK_UP = "at_pick_up"  # the driver reached it (trip_id, driver, value=simulated s since accept)
FARE = "fare"  # a completed trip's final fare (trip_id, value=amount, detail=currency)
# The whole ride (PROTOCOL.md Part 2).
SCHEDULED = "scheduled"  # a request booked ahead (request, value=run time it is booked for)
ARRIVED = "arrived"  # the rider saw its driver at the pick-up (trip_id)
NO_SHOW = "no_show"  # a driver's rider_no_show cancel went through (trip_id, driver)
NO_SHOW_TOO_EARLY = "no_show_too_early"  # the server said the wait was not over (trip_id)
GAVE_UP = "gave_up"  # a driver gave up a trip it accepted (trip_id, driver, detail=code)
REDISPATCHED = "redispatched"  # the rider saw its trip back in dispatch (trip_id, detail)
RATED = "rated"  # a rating went through (trip_id, value=stars, detail=rater: rider/driver)
RATING_FAILED = "rating_failed"  # a rating was refused (trip_id, detail=rater:code)
# Who rated (RATED's detail): the rider its driver, or the driver its rider.
RIDER, DRIVER = "rider", "driver"


@dataclass(frozen=True)
class Event:
    t: float  # seconds since the start of the run
    kind: str
    request: int | None = None
    trip_id: str | None = None
    driver: int | None = None
    value: float | None = None
    detail: str | None = None


@dataclass
class Recorder:
    """Where agents write what they saw. Not thread-safe: one event loop."""

    started: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)

    def now(self) -> float:
        return time.monotonic() - self.started

    def emit(self, kind: str, **fields: object) -> Event:
        event = Event(t=round(self.now(), 4), kind=kind, **fields)  # type: ignore[arg-type]
        self.events.append(event)
        logger.debug("sim.event", extra={k: v for k, v in asdict(event).items() if v is not None})
        return event

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compute_kpis(
    events: Iterable[Event],
    counters: Counter | None = None,
    *,
    drivers: int | None = None,
    duration_s: float | None = None,
) -> dict:
    """The KPI report of one run.

    time to match: from the rider sending the request to the rider seeing
    `trip.updated` with STARTED. Time to offer: from the request to the
    trip's first `trip.offer`. Offers per trip: offers drivers received,
    per trip the server created. Acceptance rate: accepts that went through,
    per offer received. Match rate: trips matched per trip created. Pickup
    distance: from the driver's position when its accept went through to the
    pick-up. Driver time shares and Little's law: `driver_time` (over
    `drivers` drivers and `duration_s` seconds; by default those the log
    names and its last event). Rides booked ahead wait for their time, not
    for a driver: they are left out of the times to match and to offer.
    """
    events = list(events)
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)

    def of(kind: str) -> list[Event]:
        return by_kind.get(kind, [])

    booked_ahead = {e.request for e in of(SCHEDULED)}
    sent_at = {e.request: e.t for e in of(REQUESTED) if e.request not in booked_ahead}
    request_of_trip = {e.trip_id: e.request for e in of(CREATED)}
    created_trips = set(request_of_trip)
    waits = []
    matched_trips = set()
    for event in of(MATCHED):
        if event.trip_id in matched_trips:
            continue
        matched_trips.add(event.trip_id)
        request = event.request if event.request is not None else request_of_trip.get(event.trip_id)
        if request in sent_at:
            waits.append(event.t - sent_at[request])

    offers = of(OFFER)
    offers_by_trip = Counter(e.trip_id for e in offers)
    decisions = Counter(e.detail for e in of(DECIDED))
    revocations = Counter(e.detail for e in of(REVOKED))
    pickup_km = [e.value for e in of(ACCEPTED) if e.value is not None]
    per_trip = [offers_by_trip.get(trip, 0) for trip in created_trips]
    first_offer: dict[str | None, float] = {}
    for event in offers:
        first_offer.setdefault(event.trip_id, event.t)
    to_offer = [
        first_offer[trip] - sent_at[request]
        for trip, request in request_of_trip.items()
        if trip in first_offer and request in sent_at
    ]
    return {
        "requests": {
            "sent": len(of(REQUESTED)),
            "created": len(created_trips),
            "refused": len(of(REQUEST_FAILED)),
            "refused_by_code": dict(Counter(e.detail for e in of(REQUEST_FAILED))),
            "skipped_no_free_rider": len(of(SKIPPED)),
        },
        "trips": {
            "requested": len(created_trips),
            "matched": len(matched_trips),
            "expired": len({e.trip_id for e in of(EXPIRED)}),
            "canceled": len({e.trip_id for e in of(CANCELED)}),
            "completed": len({e.trip_id for e in of(COMPLETED)}),
            "open_at_end": len({e.trip_id for e in of(OPEN_AT_END)}),
        },
        "time_to_match_ms": {
            "count": len(waits),
            "p50": _ms(percentile(waits, 50)),
            "p95": _ms(percentile(waits, 95)),
            "p99": _ms(percentile(waits, 99)),
            "mean": _ms(_mean(waits)),
        },
        "offers": {
            "received": len(offers),
            "per_trip_mean": round(_mean(per_trip), 3) if per_trip else None,
            "per_trip_max": max(per_trip) if per_trip else None,
            "accepted": len(of(ACCEPTED)),
            "accept_refused": len(of(ACCEPT_REFUSED)),
            "decided": {action: decisions[action] for action in sorted(decisions)},
            "revoked": {reason: revocations[reason] for reason in sorted(revocations)},
        },
        "time_to_offer_ms": {
            "count": len(to_offer),
            "p50": _ms(percentile(to_offer, 50)),
            "p95": _ms(percentile(to_offer, 95)),
        },
        "acceptance_rate": round(len(of(ACCEPTED)) / len(offers), 4) if offers else None,
        "match_rate": (
            round(len(matched_trips & created_trips) / len(created_trips), 4)
            if created_trips
            else None
        ),
        "mean_pickup_km": round(_mean(pickup_km), 3) if pickup_km else None,
        "p95_pickup_km": round(percentile(pickup_km, 95), 3) if pickup_km else None,
        **driver_time(events, drivers=drivers, duration_s=duration_s),
        "errors": len(of(ERROR)),
        "counters": dict(sorted((counters or Counter()).items())),
    }


def _first_value_by_trip(events: Iterable[Event]) -> dict[str, float]:
    firsts: dict[str, float] = {}
    for event in events:
        if event.trip_id is not None and event.value is not None:
            firsts.setdefault(event.trip_id, event.value)
    return firsts


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def compute_pricing_kpis(events: Iterable[Event]) -> dict:
    """The KPIs of prices and times of arrival, added to `compute_kpis`'s.

    quotes: quotes asked for, answered and refused, and the time from sending
    POST /api/quotes/ to its answer. surge: the multipliers of the quotes the
    riders got, and how many riders walked away from a surged one. fare: the
    final fares of completed trips, per currency. pickup_eta_error_s: per trip,
    the `pickup_eta_s` the rider's trip carried once a driver accepted, minus
    the simulated time that driver then took to reach the pick-up (positive:
    the estimate was longer than the drive); a trip whose driver gave it up
    is left out (its estimate was for another driver than the one who came).
    """
    events = list(events)
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)

    def of(kind: str) -> list[Event]:
        return by_kind.get(kind, [])

    sent_at = {e.request: e.t for e in of(QUOTE_SENT)}
    quoted = of(QUOTED)
    latencies = [e.t - sent_at[e.request] for e in quoted if e.request in sent_at]
    surges = [e.value for e in quoted if e.value is not None]

    fares: dict[str, list[float]] = {}
    for trip_id, event in {e.trip_id: e for e in reversed(of(FARE))}.items():
        if trip_id is not None and event.value is not None:
            fares.setdefault(event.detail or "", []).append(event.value)

    redispatched = {e.trip_id for e in of(REDISPATCHED)}
    promised = _first_value_by_trip(e for e in of(PICKUP_ETA) if e.trip_id not in redispatched)
    driven = _first_value_by_trip(e for e in of(AT_PICK_UP) if e.trip_id not in redispatched)
    errors = [promised[trip] - driven[trip] for trip in promised if trip in driven]
    return {
        "quotes": {
            "asked": len(of(QUOTE_SENT)),
            "made": len(quoted),
            "failed": len(of(QUOTE_FAILED)),
            "failed_by_code": dict(Counter(e.detail for e in of(QUOTE_FAILED))),
            "by_product": dict(sorted(Counter(e.detail for e in quoted).items())),
            "latency_ms": {
                "count": len(latencies),
                "p50": _ms(percentile(latencies, 50)),
                "p95": _ms(percentile(latencies, 95)),
            },
        },
        "surge": {
            "mean": _round(_mean(surges), 3),
            "max": max(surges) if surges else None,
            "share_above_1": (
                round(sum(v > 1.0 for v in surges) / len(surges), 4) if surges else None
            ),
            "declined_for_surge": len(of(DECLINED_SURGE)),
        },
        "fare": {
            "completed_with_fare": sum(len(amounts) for amounts in fares.values()),
            "mean_by_currency": {
                currency: f"{sum(amounts) / len(amounts):.2f}"
                for currency, amounts in sorted(fares.items())
            },
        },
        "pickup_eta_error_s": {
            "count": len(errors),
            "mean_abs": _round(_mean([abs(e) for e in errors]), 1),
            "mean_signed": _round(_mean(errors), 1),
            "mean_eta": _round(_mean([promised[t] for t in promised if t in driven]), 1),
            "mean_drive": _round(_mean([driven[t] for t in promised if t in driven]), 1),
            "no_eta": sum(1 for trip in driven if trip not in promised),
        },
    }


# Little's law holds to within this on a run long beside its trips.
LITTLE_TOLERANCE = 0.05


def driver_time(
    events: Sequence[Event], *, drivers: int | None = None, duration_s: float | None = None
) -> dict:
    """Where the drivers' time went, and Little's law as a check of the log.

    A driver is en route from its accept going through (ACCEPTED) to the
    pick-up (PICKED_UP) and occupied from there to the drop-off (COMPLETED);
    a cancel or expiry ends either, and a driver giving the trip up (GAVE_UP)
    ends its own drive to the pick-up (the trip's next driver starts another
    from its accept); a state still open at the end of the run counts up to
    its end. Idle is the rest of `drivers` x `duration_s`.

    Little's law: the time-averaged number of drivers en route equals the
    rate of accepts times the mean time en route (of the drives that ended
    within the run: at the pick-up, or at a cancel), and the number occupied
    equals the rate of pick-ups times the mean ride time (of the rides
    completed). Both sides come from the same log by different roads (states
    clipped at the end, rides still under way), so a simulator that loses or
    mis-stamps events shows it here.
    """
    end = duration_s if duration_s is not None else max((e.t for e in events), default=0.0)
    accepts: dict[str | None, list[tuple[float, int | None]]] = {}
    given_up: dict[tuple[str | None, int | None], list[float]] = {}
    picked_at: dict[str | None, float] = {}
    ended_at: dict[str | None, float] = {}
    completed: set[str | None] = set()
    for event in events:
        if event.kind == ACCEPTED:
            accepts.setdefault(event.trip_id, []).append((event.t, event.driver))
        elif event.kind == GAVE_UP:
            given_up.setdefault((event.trip_id, event.driver), []).append(event.t)
        elif event.kind == PICKED_UP:
            picked_at.setdefault(event.trip_id, event.t)
        elif event.kind in (COMPLETED, CANCELED, EXPIRED):
            ended_at.setdefault(event.trip_id, event.t)
            if event.kind == COMPLETED:
                completed.add(event.trip_id)
    en_route = occupied = 0.0
    drive_s, ride_s = [], []
    for trip, legs in accepts.items():
        picked, ended = picked_at.get(trip), ended_at.get(trip)
        for accepted, driver in sorted(legs, key=lambda leg: leg[0]):
            gave_up = [t for t in given_up.get((trip, driver), ()) if t >= accepted]
            stops = [t for t in (picked, ended, *gave_up[:1]) if t is not None and t >= accepted]
            stop = min(stops, default=end)
            en_route += max(0.0, min(stop, end) - min(accepted, end))
            if stops and stop <= end:  # ended within the run, not clipped
                drive_s.append(stop - accepted)
        if picked is not None:
            ride_end = min(ended if ended is not None else end, end)
            occupied += max(0.0, ride_end - min(picked, end))
            if trip in completed and ended is not None:
                ride_s.append(ended - picked)
    named = {e.driver for e in events if e.driver is not None}
    fleet = drivers if drivers is not None else len(named)
    total = fleet * end

    def share(seconds: float) -> float | None:
        return round(seconds / total, 4) if total > 0 else None

    def little(busy_s: float, arrivals: int, times: list[float]) -> dict:
        busy = busy_s / end if end > 0 else None
        rate = arrivals / end if end > 0 else None
        mean = _mean(times)
        predicted = rate * mean if rate is not None and mean is not None else None
        error = abs(predicted - busy) / busy if busy and predicted is not None else None
        return {
            "drivers": None if busy is None else round(busy, 3),
            "rate_per_s": None if rate is None else round(rate, 4),
            "mean_s": None if mean is None else round(mean, 3),
            "rate_x_mean": None if predicted is None else round(predicted, 3),
            "error": None if error is None else round(error, 4),
            "holds": None if error is None else error <= LITTLE_TOLERANCE,
        }

    return {
        "driver_time_share": {
            "idle": share(max(0.0, total - en_route - occupied)),
            "en_route": share(en_route),
            "occupied": share(occupied),
        },
        "littles_law": {
            "en_route": little(en_route, sum(map(len, accepts.values())), drive_s),
            "occupied": little(occupied, len(picked_at), ride_s),
        },
    }
