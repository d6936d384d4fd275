"""Shared fixtures: real Redis (its own database), real database, real ASGI app."""

import contextlib
import itertools
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from rest_framework.test import APIClient

from taxi.infra.redis import get_redis
from tests.pricing.support import ensure_catalogue
from trips.auth import tokens_for
from trips.models import User

PASSWORD = "pAssw0rd!x9"
_names = itertools.count(1)


@pytest.fixture(autouse=True)
def clean_redis():
    """Each test starts with an empty test database on the real Redis server."""
    client = get_redis()
    db = client.connection_pool.connection_kwargs.get("db")
    assert db == settings.TEST_REDIS_DB, "tests must not run on the development Redis database"
    client.flushdb()
    yield
    client.flushdb()


@pytest.fixture(autouse=True)
def fresh_frame_budgets():
    """A user's frame budget outlives their sockets for a moment; a test's
    users (whose ids may be an earlier test's again) start with full ones."""
    from trips.frame_limits import user_buckets

    user_buckets.clear()


@pytest.fixture
def catalogue(db) -> None:
    """`standard` and `xl` as the pricing migration ships them: a
    transactional test's flush removes them for the tests after it."""
    ensure_catalogue()


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(group: str = "rider", **fields) -> User:
        n = next(_names)
        fields.setdefault("username", f"{group}{n}@example.com")
        fields.setdefault("first_name", f"{group.title()}{n}")
        fields.setdefault("last_name", "Example")
        return User.objects.create_user(password=PASSWORD, group=group, **fields)

    return make


@pytest.fixture
def rider(make_user) -> User:
    return make_user("rider")


@pytest.fixture
def driver(make_user) -> User:
    return make_user("driver")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    """An API client that authenticates as `user` with a Bearer access token."""

    def make(user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user)['access']}")
        return client

    return make


@pytest.fixture
async def ws_connect():
    """Open a real `/taxi/` socket against the ASGI application as `user`
    (by access token, or by `path`/`headers` given). Every socket opened is
    closed at the end of the test."""
    from taxi.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def connect(user: User | None = None, *, path: str | None = None, headers=None):
        if path is None:
            tokens = await database_sync_to_async(tokens_for)(user)
            path = f"/taxi/?token={tokens['access']}"
        communicator = WebsocketCommunicator(application, path, headers=headers or [])
        connected, code = await communicator.connect(timeout=5)
        opened.append(communicator)
        return communicator, connected, code

    yield connect
    for communicator in opened:
        with contextlib.suppress(Exception):  # already closed by the test or the server
            await communicator.disconnect()
