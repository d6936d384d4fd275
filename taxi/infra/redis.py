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

# Timeouts and one retry on a fresh connection (settings.REDIS_CLIENT_OPTIONS).
_TIMEOUTS = {**settings.REDIS_CLIENT_OPTIONS, "health_check_interval": 30}
# The event loop's client is shared by every socket of the process. redis-py 8
# caps a plain pool at 100 connections and raises beyond that, which a web
# process ingesting ~1,000 positions a second exceeds (BENCHMARKS.md); this
# pool makes the excess wait for a free connection instead.
ASYNC_POOL_SIZE = 100
ASYNC_POOL_WAIT_S = 5
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
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=ASYNC_POOL_SIZE,
            timeout=ASYNC_POOL_WAIT_S,
            decode_responses=True,
            **_TIMEOUTS,
        )
        bound = (url, redis.asyncio.Redis(connection_pool=pool))
        _async_clients[loop] = bound
    return bound[1]
