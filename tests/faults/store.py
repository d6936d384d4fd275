"""The database's view: trips and offers as the processes left them, and
what would count as stuck."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from dispatch.models import Offer
from dispatch.repair import OVERDUE_GRACE, REDISPATCH_AFTER
from trips.models import Trip

# Margin on top of the sweeper's own delays before something counts as stuck:
# a sweep's task queued, picked up and run on a loaded CI machine.
STUCK_SLACK = timedelta(seconds=3)


def _rows(queryset, *fields: str) -> list[dict]:
    try:
        return list(queryset.values(*fields))
    finally:
        # This executor thread's connection would outlive the test and keep
        # PostgreSQL from dropping the test database.
        connection.close()


OFFER_FIELDS = ("id", "trip_id", "driver_id", "status", "expires_at", "closed_at", "created")


@database_sync_to_async
def offers(**filters: Any) -> list[dict]:
    return _rows(Offer.objects.filter(**filters).order_by("created"), *OFFER_FIELDS)


@database_sync_to_async
def trip_row(trip_id: str) -> dict:
    fields = ("id", "status", "status_reason", "version", "driver_id", "rider_id", "created")
    return _rows(Trip.objects.filter(pk=trip_id), *fields)[0]


@database_sync_to_async
def stuck(*, since: datetime, sweep_every_s: float) -> list[str]:
    """What the sweeper should have repaired by now and has not: a live offer
    past its deadline, or a REQUESTED trip without a live offer, each for
    longer than the sweeper's own delays (OVERDUE_GRACE, REDISPATCH_AFTER)
    plus one sweep interval and some slack. Times before `since` (when the
    processes that repair things were last back) do not count."""
    try:
        now = timezone.now()
        sweep = timedelta(seconds=sweep_every_s)
        found = []
        offer_limit = OVERDUE_GRACE + sweep + STUCK_SLACK
        for offer in Offer.objects.filter(status=Offer.Status.PENDING).values(
            "id", "trip_id", "expires_at"
        ):
            overdue = now - max(offer["expires_at"], since)
            if overdue > offer_limit:
                found.append(f"offer {offer['id']} PENDING {overdue.total_seconds():.1f}s late")
        trip_limit = REDISPATCH_AFTER + sweep + STUCK_SLACK
        waiting = (
            Trip.objects.filter(status=Trip.Status.REQUESTED)
            .exclude(offers__status=Offer.Status.PENDING)
            .annotate(last_closed=Max("offers__closed_at"))
            .values("id", "created", "last_closed")
        )
        for trip in waiting:
            latest = max(t for t in (trip["created"], trip["last_closed"], since) if t)
            idle = now - latest
            if idle > trip_limit:
                found.append(f"trip {trip['id']} REQUESTED without an offer for {idle}")
        return found
    finally:
        connection.close()


@dataclass
class StuckWatch:
    """Samples `stuck()` every half second in the background; whatever it saw
    ends up in `seen`."""

    since: datetime
    sweep_every_s: float
    seen: list[str] = field(default_factory=list)
    samples: int = 0
    _task: asyncio.Task | None = None

    def start(self) -> StuckWatch:
        self._task = asyncio.create_task(self._run())
        return self

    def is_open_since_last_drop(self) -> bool:
        """Connected now, on a connection opened after the last one dropped."""
        if not self._connected.is_set():
            return False
        return not self.drops or self.connects[-1] > self.drops[-1][0]

    async def _run(self) -> None:
        while True:
            self.seen.extend(await stuck(since=self.since, sweep_every_s=self.sweep_every_s))
            self.samples += 1
            await asyncio.sleep(0.5)

    async def stop(self) -> list[str]:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        # One last look, now that the run is over.
        self.seen.extend(await stuck(since=self.since, sweep_every_s=self.sweep_every_s))
        return self.seen
