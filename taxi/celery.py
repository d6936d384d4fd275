"""The Celery application. Task modules live in `workers/`."""

import os
import signal

from celery import Celery, signals
from django.db import close_old_connections

from taxi.infra.runtime import settle_gc

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taxi.settings")

app = Celery("taxi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@signals.worker_process_init.connect
def _settle_gc(**kwargs) -> None:
    """Each pool process, once forked with the tasks loaded (taxi.infra.runtime)."""
    settle_gc()


# Database connections. Celery's Django fix-up closes every connection before
# and after every task unless CELERY_DB_REUSE_MAX is set: a new connection
# per task, which was half of the dispatch loop's time in a worker (21 -> 11 ms,
# BENCHMARKS.md). Instead, tasks treat connections as Django treats requests:
# on PostgreSQL given back to the process's pool after each task (the pool
# keeps it open; taxi.settings, DB_POOL_MAX), on SQLite kept for CONN_MAX_AGE;
# closed when broken or inside a failed transaction, health-checked before
# reuse (CONN_HEALTH_CHECKS). Each of a worker's pool children makes a pool
# of its own (Celery's fix-up closes any it inherits when the child starts).
app.conf.CELERY_DB_REUSE_MAX = 2**62  # the fix-up itself then never closes


@signals.task_prerun.connect
@signals.task_postrun.connect
def _recycle_db_connections(sender=None, **kwargs) -> None:
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # in the caller's process and transaction (tests)
    close_old_connections()


@signals.beat_init.connect
def _stop_beat_between_ticks(sender=None, **kwargs) -> None:
    """Beat's SIGTERM and SIGINT ask its loop to stop; nothing more happens in
    the signal handler.

    Celery's own handler saves the schedule and raises SystemExit from inside
    whatever beat was doing. Beat logs "Sending due task" and then publishes
    it, so a platform's SIGTERM right after that line, on a busy machine,
    lands mid-publish: saving releases the broker connection under the
    interrupted read, whose clean-up (redis-py's `buf.seek`) then raises
    ValueError in place of the SystemExit. Celery logs a failed send and
    beat runs on, deaf to the SIGTERM, until the platform kills it
    (tests/faults/test_beat.py). On PostgreSQL the save could instead wait
    forever for the connection lock the interrupted query holds.

    Here the loop finishes its tick, sleeps at most CELERY_BEAT_MAX_LOOP_INTERVAL,
    sees the flag and returns; Celery's `Service.start` then saves the schedule
    outside any handler and beat exits 0. `beat_init` comes after Celery
    installed its handler, so these replace it. Nothing is logged here: a
    signal handler writing to the stream the interrupted code may be writing
    to fails ("reentrant call").
    """
    shutdown = sender._is_shutdown  # what Service.stop() sets, without its log line

    def stop(signum: int, frame: object) -> None:
        shutdown.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
