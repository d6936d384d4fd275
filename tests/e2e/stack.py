"""Real processes for end-to-end tests: N daphne web processes, M Celery
workers and one beat, started from the Procfile's commands by `bench.stack`.

The processes share the test database (pytest-django's, on SQLite or
PostgreSQL, so tests using this need `transactional_db`: data the test writes
is committed and the processes see it) and a private Redis of their own, so
they never touch another suite's Redis database. Every process is stopped
(its whole process group) when the test ends, pass or fail.

    def test_something(e2e_stack):
        stack = e2e_stack(webs=2, workers=2)
        url_a, url_b = stack.web_urls
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.stack import Stack
from tests.web import database_url as web_database_url

# Short enough that a test sees timeouts and sweeps within seconds.
E2E_ENV = {
    "DEBUG": "0",
    "SECURE_SSL_REDIRECT": "0",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "THROTTLE_LOG_IN": "100000/min",
    "THROTTLE_SIGN_UP": "100000/min",
    "THROTTLE_TRIP_CREATE": "100000/min",
    "THROTTLE_NEARBY": "100000/min",
    "DISPATCH_OFFER_TIMEOUT_S": "5",
    "DISPATCH_SWEEP_EVERY_S": "2",
    "LOG_LEVEL": "INFO",
}


@contextmanager
def running_stack(
    work_dir: Path,
    *,
    database_url: str,
    webs: int = 1,
    workers: int = 1,
    beat: bool = True,
    matchers: int = 0,
    env: dict | None = None,
) -> Iterator[Stack]:
    stack = Stack(
        work_dir=work_dir,
        webs=webs,
        workers=workers,
        worker_concurrency=1,
        beat=beat,
        matchers=matchers,
        database_url=database_url,
        env={**E2E_ENV, "SECRET_KEY": secrets.token_urlsafe(50), **(env or {})},
    )
    with stack:
        yield stack


@pytest.fixture
def e2e_stack(transactional_db, tmp_path) -> Iterator[Callable[..., Stack]]:
    """Start a stack with `e2e_stack(webs=2, workers=2, env={...})`; stopped at
    teardown. Safe to call from a worker thread (`asyncio.to_thread`)."""
    database_url = web_database_url()
    opened = []

    def start(**options) -> Stack:
        work_dir = tmp_path / f"stack{len(opened)}"
        manager = running_stack(work_dir, database_url=database_url, **options)
        stack = manager.__enter__()
        opened.append(manager)
        return stack

    yield start
    for manager in reversed(opened):
        manager.__exit__(None, None, None)
