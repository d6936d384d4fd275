"""Driver and rider agents: each one a client app over its own WebSocket
(`sim.drivers`, `sim.riders`), and what they share.

Agents act on what arrives on their socket and on the scenario's scripted
decisions, and write what they saw to the recorder. They share one event
loop and never block it. Besides the server, a rider and its driver meet
only at the curb (`sim.curb`), where the rider shows its ride PIN.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine

import httpx

from sim import kpi
from sim.client import Api, Session
from sim.scenario import RatingPlan

ACTIVE = {"REQUESTED", "STARTED", "ARRIVED", "IN_PROGRESS"}
FINAL = {"COMPLETED", "CANCELED", "EXPIRED"}
# Waiting for a driver: booked ahead, or being dispatched.
WAITING = {"SCHEDULED", "REQUESTED"}
BEFORE_PICK_UP = {"STARTED", "ARRIVED"}


def spawn(tasks: set[asyncio.Task], work: Coroutine) -> None:
    """Run `work` alongside, held in `tasks` until it ends (the agent's
    `finish` waits for what is still there)."""
    task = asyncio.create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def rate_trip(
    api: Api,
    session: Session,
    recorder: kpi.Recorder,
    *,
    trip_id: str,
    rating: RatingPlan,
    rater: str,
    driver: int | None = None,
) -> None:
    """POST /api/trip/<id>/rating/: `rater` (rider or driver) rates the other side."""
    path = f"/api/trip/{trip_id}/rating/"
    try:
        status, body = await api.call("POST", path, token=session.access, body=rating.body())
    except (httpx.HTTPError, OSError) as error:
        detail = f"{rater}:{type(error).__name__}"
        recorder.emit(kpi.RATING_FAILED, trip_id=trip_id, driver=driver, detail=detail)
        return
    if status == 201:
        stars = float(rating.stars)
        recorder.emit(kpi.RATED, trip_id=trip_id, driver=driver, value=stars, detail=rater)
        return
    code = body.get("code", status) if isinstance(body, dict) else status
    recorder.emit(kpi.RATING_FAILED, trip_id=trip_id, driver=driver, detail=f"{rater}:{code}")
