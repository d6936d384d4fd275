"""Install the periodic tasks of `workers.schedules` for beat's database scheduler.

Idempotent: a second run leaves one row per task, updated to the schedule in
code; rows under the project's name prefix that the schedule dropped are
deleted. Other periodic tasks (added by an operator in the admin) are untouched.
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from workers.schedules import NAME_PREFIX, Schedule, schedules


class Command(BaseCommand):
    help = "Create or update the periodic tasks beat runs (sweeps and cleanup)."

    def handle(self, *args, **options) -> None:
        wanted = schedules()
        with transaction.atomic():
            for schedule in wanted:
                created = self.install(schedule)
                verb = "created" if created else "updated"
                self.stdout.write(f"{verb}: {schedule.name} every {schedule.every_s}s")
            dropped, _ = (
                PeriodicTask.objects.filter(name__startswith=NAME_PREFIX)
                .exclude(name__in=[s.name for s in wanted])
                .delete()
            )
        if dropped:
            self.stdout.write(f"removed {dropped} periodic task(s) no longer scheduled")

    @staticmethod
    def install(schedule: Schedule) -> bool:
        interval = IntervalSchedule.objects.filter(
            every=schedule.every_s, period=IntervalSchedule.SECONDS
        ).first() or IntervalSchedule.objects.create(
            every=schedule.every_s, period=IntervalSchedule.SECONDS
        )
        _, created = PeriodicTask.objects.update_or_create(
            name=schedule.name,
            defaults={
                "task": schedule.task,
                "interval": interval,
                "crontab": None,
                "solar": None,
                "clocked": None,
                "enabled": True,
                "one_off": False,
                "expire_seconds": schedule.every_s,
                "description": schedule.description,
                "args": "[]",
                "kwargs": "{}",
            },
        )
        return created
