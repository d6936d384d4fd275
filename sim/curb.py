"""The curb where a rider meets its driver: the one place agents meet outside
the server.

A real driver at the pick-up does not learn from the server that the rider
is there: the rider walks up and shows the ride PIN from its app. So here. A
rider agent that sees its trip ARRIVED comes out (or, a no-show, never does)
and shows the `pin` its own view of the trip carries; the driver agent
waiting at the pick-up sees who came and enters that PIN, or, when nobody
came within the no-show wait, cancels for a no-show.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class RiderAtCar:
    pin: str | None  # what the rider's app shows; None when the trip carries none


class Curb:
    """Riders at their cars, by trip id. One event loop, like the agents."""

    def __init__(self) -> None:
        self._spots: dict[str, asyncio.Future[RiderAtCar]] = {}

    def _spot(self, trip_id: str) -> asyncio.Future[RiderAtCar]:
        spot = self._spots.get(trip_id)
        if spot is None:
            spot = self._spots[trip_id] = asyncio.get_running_loop().create_future()
        return spot

    def come_out(self, trip_id: str, pin: str | None) -> None:
        spot = self._spot(trip_id)
        if not spot.done():
            spot.set_result(RiderAtCar(pin))

    async def wait_for_rider(
        self, trip_id: str, timeout_s: float, stop: asyncio.Event
    ) -> RiderAtCar | None:
        """The rider once they come out; None when nobody came within
        `timeout_s`, or `stop` was set first."""
        spot = self._spot(trip_id)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                [spot, stopped], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopped
        if stop.is_set() or not spot.done() or spot.cancelled():
            return None
        return spot.result()

    def leave(self, trip_id: str) -> None:
        """The trip is over, or went back to dispatch: nobody waits here."""
        spot = self._spots.pop(trip_id, None)
        if spot is not None and not spot.done():
            spot.cancel()
