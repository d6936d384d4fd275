"""The channel layer: channels-redis's pub/sub layer, made to say when it may
have missed a message.

Pub/sub delivers a message only to subscriptions that exist when it is
published. When the process's subscription connection breaks (Redis
restarted, the network dropped), every push published until it is restored
is lost, and the sockets of this process would sit open, silently deaf.
channels-redis logs the error, sleeps a second and lets redis-py resubscribe
on its next read; pushes published in between are gone and nobody knows.

Two more changes from channels-redis 4.3: publishing does not queue behind
one process-wide lock (one PUBLISH in flight at a time capped location
ingest), and its connections come from a blocking pool (redis-py's plain
pool raises past its size instead of waiting).

When the subscription breaks, every local channel gets a
`layer.lost` message (the consumer closes its socket with 1012, "service
restart": the app reconnects and re-reads the truth over REST, as
PROTOCOL.md asks of a reconnecting client), and the subscriptions still
wanted are restored on a fresh connection as soon as Redis answers, instead
of a second later.
"""

import asyncio
import contextlib
import logging

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _close_redis, _wrap_close, decode_hosts
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

LOST = {"type": "layer.lost"}
RESUBSCRIBE_EVERY_S = 0.25
# Connections per process and Redis host: one subscription, the rest publish.
POOL_SIZE = 50
POOL_WAIT_S = 5


class _PubSub(PubSub):
    """redis-py's PubSub, noting when it reconnected by itself: with
    `retry_on_error` it reconnects and resubscribes inside a read without
    raising, and pushes published in between are gone all the same."""

    reconnected = False

    async def on_connect(self, connection) -> None:
        if self.subscribed:  # not the first connection: a reconnection
            self.reconnected = True
        await super().on_connect(connection)


class ShardConnection(RedisSingleShardConnection):
    def _ensure_redis(self) -> None:
        if self._redis is None:
            options = dict(self.host)
            pool = BlockingConnectionPool.from_url(
                options.pop("address"), max_connections=POOL_SIZE, timeout=POOL_WAIT_S, **options
            )
            self._redis = Redis(connection_pool=pool)
            self._pubsub = _PubSub(pool)

    async def publish(self, channel: str, message: bytes) -> None:
        # The client is created synchronously and its pool is safe to share:
        # no lock, so publishes from many sockets overlap.
        self._ensure_redis()
        await self._redis.publish(channel, message)

    async def _do_receiving(self) -> None:
        while True:
            try:
                pubsub = self._pubsub
                if pubsub is not None and pubsub.subscribed:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    if pubsub.reconnected:
                        raise RedisConnectionError("the subscription reconnected by itself")
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (RedisError, OSError) as exc:
                await self._lost(exc)
            except Exception:
                logger.exception("channels.receive_failed")
                await asyncio.sleep(1)

    def _mine(self, name: str) -> bool:
        return self.channel_layer._get_shard(name) is self

    async def _lost(self, exc: BaseException) -> None:
        layer = self.channel_layer
        logger.warning("channels.subscription_lost", extra={"error": type(exc).__name__})
        lost = layer.channel_layer.serialize(LOST)
        for name, queue in list(layer.channels.items()):
            if self._mine(name) or any(
                name in members and self._mine(group) for group, members in layer.groups.items()
            ):
                queue.put_nowait(lost)
        # Under the lock, so no subscribe or unsubscribe is half done across it.
        async with self._lock:
            broken, self._redis, self._pubsub = self._redis, None, None
            self._subscribed_to = set()
        if broken is not None:
            with contextlib.suppress(RedisError, OSError):
                await _close_redis(broken)
        await self._resubscribe()

    async def _resubscribe(self) -> None:
        """Subscribe again to whatever is still wanted (sockets that could not
        close yet, groups they are in), once Redis answers."""
        layer = self.channel_layer
        while True:
            try:
                async with self._lock:
                    wanted = {name for name in [*layer.channels, *layer.groups] if self._mine(name)}
                    wanted -= self._subscribed_to
                    if not wanted:
                        return
                    self._ensure_redis()
                    await self._pubsub.subscribe(*wanted)
                    self._subscribed_to |= wanted
                logger.info("channels.subscription_restored", extra={"channels": len(wanted)})
                return
            except (RedisError, OSError):
                await asyncio.sleep(RESUBSCRIBE_EVERY_S)


class LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts=None, **kwargs) -> None:
        super().__init__(hosts=hosts, **kwargs)
        self._shards = [ShardConnection(host, self) for host in decode_hosts(hosts)]
        self._cleanups: set[asyncio.Task] = set()

    # channels-redis records a channel or a group membership before it
    # subscribes and keeps the record when the subscription fails (Redis
    # down during a handshake): a channel nobody reads, subscribed again
    # after every outage, and a group that never empties. Undone here.

    async def _subscribe_to_channel(self, channel: str) -> None:
        try:
            await super()._subscribe_to_channel(channel)
        except BaseException:
            self.channels.pop(channel, None)
            raise

    async def group_add(self, group: str, channel: str) -> None:
        group_channel = self._get_group_channel_name(group)
        already = channel in self.groups.get(group_channel, ())
        try:
            await super().group_add(group, channel)
        except BaseException:
            members = self.groups.get(group_channel)
            if members is not None and not already:
                members.discard(channel)
                if not members:
                    del self.groups[group_channel]
            raise

    async def receive(self, channel: str) -> dict:
        if channel not in self.channels:
            await self._subscribe_to_channel(channel)
        queue = self.channels[channel]
        try:
            message = await queue.get()
        except (asyncio.CancelledError, TimeoutError, GeneratorExit):
            # The consumer is going away (Channels cancels its receive). Its
            # UNSUBSCRIBE runs as a task of its own: awaited here, a second
            # cancellation (a storm of hang-ups, shutdown) interrupted it.
            if self.channels.pop(channel, None) is not None:
                cleanup = asyncio.ensure_future(self._get_shard(channel).unsubscribe(channel))
                self._cleanups.add(cleanup)
                cleanup.add_done_callback(self._cleaned_up)
            raise
        return self.channel_layer.deserialize(message)

    def _cleaned_up(self, task: asyncio.Task) -> None:
        self._cleanups.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Redis is away; the subscription went with the connection.
            logger.info(
                "channels.unsubscribe_failed", extra={"error": type(task.exception()).__name__}
            )


class PubSubChannelLayer(RedisPubSubChannelLayer):
    """`channels_redis.pubsub.RedisPubSubChannelLayer`, one `LoopLayer` per
    event loop as there."""

    def _get_layer(self) -> LoopLayer:
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = self._layers[loop] = LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
            return layer
