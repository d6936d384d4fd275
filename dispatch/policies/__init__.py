"""Matching policies: which waiting trip is offered to which driver.

The dispatch loop (`dispatch.loop`) gathers the trips waiting for an offer
and asks the policy named by DISPATCH_POLICY, a module of this package with
a `policy` object, for assignments. A new policy is one new module here and
that setting. A policy only chooses: it reads no database and writes
nothing. The loop then reserves each proposal under row locks
(`dispatch.offers.offer_open`), so a proposal may still fail (the driver
turned busy meanwhile) and the loop moves on to the next.
"""

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dispatch.matching import Candidate


@dataclass(frozen=True, slots=True)
class WaitingTrip:
    """A REQUESTED trip without a live offer, and whom it was offered before.

    `waited_windows`: for a policy that assigns requests gathered over a
    window, how many windows in a row the trip has already waited."""

    trip_id: UUID
    lat: float
    lng: float
    exclude: frozenset[int]
    # The trip's product: only drivers eligible for it are candidates.
    product: str | None = None
    waited_windows: int = 0


@dataclass(frozen=True, slots=True)
class Assignment:
    trip_id: UUID
    candidate: Candidate


# `candidates(trip)`: the available drivers around the trip's pick-up who were
# not offered it yet, nearest first, ring by ring, lazily (each ring is asked
# of the geo index only when the policy reads that far).
Candidates = Callable[[WaitingTrip], Iterable[Candidate]]


class Policy(Protocol):
    # True for a policy that assigns the requests gathered over a window
    # (DISPATCH_BATCH_WINDOW_MS) together: the matcher (`dispatch.matcher`)
    # asks it once a window, and a dispatch task offers nothing itself.
    windowed: bool

    def assign(self, trips: Sequence[WaitingTrip], candidates: Candidates) -> Iterable[Assignment]:
        """Proposed assignments, best first. The loop reserves them in order,
        skipping those of a trip that already got its offer in this run, and
        stops reading once every trip has one; a trip left without an offer
        when the proposals run out had nobody to offer it to."""
        ...


@functools.cache
def policy_named(name: str) -> Policy:
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        message = f"DISPATCH_POLICY {name!r}: there is no dispatch/policies/{name}.py"
        raise ImproperlyConfigured(message) from None
    return module.policy


def is_windowed(policy: Policy) -> bool:
    """Whether the matcher, not a dispatch task, asks this policy (a policy
    that says nothing is asked per trip, as `nearest` is)."""
    return bool(getattr(policy, "windowed", False))


def current() -> Policy:
    """The policy DISPATCH_POLICY names (read at call time, so tests may switch it)."""
    return policy_named(settings.DISPATCH_POLICY)
