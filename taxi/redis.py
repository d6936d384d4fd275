"""Redis clients built from the one REDIS_URL.

Sync code shares one client (its pool is thread-safe). An asyncio client is
bound to the event loop it first connects on, so async code gets one per loop.
"""

import asyncio
import weakref
from functools import lru_cache

import redis
import redis.asyncio
from django.conf import settings

_TIMEOUTS = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30}
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[str, redis.asyncio.Redis]
] = weakref.WeakKeyDictionary()


@lru_cache(maxsize=4)
def _sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, **_TIMEOUTS)


def get_redis() -> redis.Redis:
    return _sync_client(settings.REDIS_URL)


def get_async_redis() -> redis.asyncio.Redis:
    loop = asyncio.get_running_loop()
    url = settings.REDIS_URL
    bound = _async_clients.get(loop)
    if bound is None or bound[0] != url:
        bound = (url, redis.asyncio.Redis.from_url(url, decode_responses=True, **_TIMEOUTS))
        _async_clients[loop] = bound
    return bound[1]
