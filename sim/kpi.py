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


def compute_kpis(events: Iterable[Event], counters: Counter | None = None) -> dict:
    """The KPI report of one run.

    time to match: from the rider sending the request to the rider seeing
    `trip.updated` with STARTED. Offers per trip: offers drivers received,
    per trip the server created. Acceptance rate: accepts that went through,
    per offer received. Pickup distance: from the driver's position when its
    accept went through to the pick-up.
    """
    events = list(events)
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)

    def of(kind: str) -> list[Event]:
        return by_kind.get(kind, [])

    sent_at = {e.request: e.t for e in of(REQUESTED)}
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
        "acceptance_rate": round(len(of(ACCEPTED)) / len(offers), 4) if offers else None,
        "mean_pickup_km": round(_mean(pickup_km), 3) if pickup_km else None,
        "errors": len(of(ERROR)),
        "counters": dict(sorted((counters or Counter()).items())),
    }
