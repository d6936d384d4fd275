"""Periodic tasks, defined here and installed by `manage.py setup_periodic_tasks`
(run at release and by `make run`), which beat's database scheduler reads.

Every one is a sweep bounded per run and safe to run twice, so two beats at
once, or a run that overlaps the next, cost work, never a duplicate offer.
Each run expires after one interval: a backlog left by a stopped worker is
dropped, not replayed.
"""

from dataclasses import dataclass

from django.conf import settings

from workers import queue

# Every periodic task this project owns is named with this prefix; the setup
# command removes rows under it that the schedule no longer lists.
NAME_PREFIX = "taxi: "


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    every_s: int
    description: str


def schedules() -> list[Schedule]:
    sweep_every = max(1, round(settings.DISPATCH_SWEEP_EVERY_S))
    return [
        Schedule(
            name=NAME_PREFIX + "sweep dispatch",
            task=queue.SWEEP_DISPATCH,
            every_s=sweep_every,
            description="Expire offers whose timeout task never ran; re-dispatch stranded trips.",
        ),
        Schedule(
            name=NAME_PREFIX + "sweep silent drivers",
            task=queue.SWEEP_SILENT_DRIVERS,
            every_s=sweep_every,
            description="Drivers silent for DRIVER_PRESENCE_TTL_S leave the available set.",
        ),
        Schedule(
            name=NAME_PREFIX + "expire stale trips",
            task=queue.EXPIRE_STALE_TRIPS,
            every_s=max(1, min(60, round(settings.TRIP_STALE_AFTER_S / 10))),
            description="REQUESTED trips older than TRIP_STALE_AFTER_S become EXPIRED (stale).",
        ),
        Schedule(
            name=NAME_PREFIX + "sweep scheduled trips",
            task=queue.SWEEP_SCHEDULED,
            every_s=max(1, round(settings.SCHEDULE_SWEEP_EVERY_S)),
            description="Dispatch scheduled trips that are due; expire searches that ran out.",
        ),
        Schedule(
            name=NAME_PREFIX + "refresh surge",
            task=queue.REFRESH_SURGE,
            every_s=max(1, round(settings.SURGE_REFRESH_S)),
            description="Publish the surge multiplier per H3 cell from supply and demand.",
        ),
    ]
