"""A real Celery worker, in a thread of the test process, on the test broker.

One per test: it starts after `clean_redis` has emptied the test Redis
database (so it declares its queue afresh) and stops, finishing what it holds,
before the test database is flushed. It reads settings at call time, so a test
may shorten DISPATCH_OFFER_TIMEOUT_S with pytest-django's `settings`.
"""

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections

from taxi.celery import app
from tests.dispatch.support import close_sync_thread_connections

__all__ = ["close_sync_thread_connections"]


def _close_thread_connections(**_kwargs) -> None:
    # Each worker thread closes its database connection after every task, so
    # none is left open when the test database is flushed or dropped.
    connections.close_all()


@pytest.fixture
def dispatch_worker(transactional_db):
    task_postrun.connect(_close_thread_connections, weak=False)
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=4,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
        ) as worker:
            yield worker
    finally:
        task_postrun.disconnect(_close_thread_connections)
