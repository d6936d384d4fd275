"""The Celery application. Task modules live in `workers/`."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taxi.settings")

app = Celery("taxi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@signals.worker_process_init.connect
def _settle_gc(**kwargs) -> None:
    """Each pool process, once forked with the tasks loaded (taxi.runtime)."""
    from taxi.runtime import settle_gc

    settle_gc()


# Database connections. Celery's Django fix-up closes every connection before
# and after every task unless CELERY_DB_REUSE_MAX is set: a new connection
# per task, which was half of `trip_dispatch`'s time in a worker (21 -> 11 ms,
# BENCHMARKS.md). Instead, tasks treat connections as Django treats requests:
# kept for CONN_MAX_AGE, closed when broken or inside a failed transaction,
# health-checked before reuse (CONN_HEALTH_CHECKS).
app.conf.CELERY_DB_REUSE_MAX = 2**62  # the fix-up itself then never closes


@signals.task_prerun.connect
@signals.task_postrun.connect
def _recycle_db_connections(sender=None, **kwargs) -> None:
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # in the caller's process and transaction (tests)
    from django.db import close_old_connections

    close_old_connections()
