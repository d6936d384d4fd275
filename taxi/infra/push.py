"""The push transport: frames to users' streams over the channel layer.

A socket joins its user's own stream on connect; every push goes to the
streams of the users it concerns, never to a broadcast group. Pushes are
notifications sent after commit; the database stays the truth. What a frame
says is `trips.events`; this module only carries it.

The socket that asked for a change gets the result as its reply, so the push
carrying that same result (`is_result=True`) skips that one socket: the edge
names the socket (`replying_to`), the service says which push is the result,
and neither the services nor their callers below the edge hear of sockets.
Other pushes made meanwhile (a revoked offer, say) reach every socket.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Coroutine, Iterable, Iterator
from contextvars import ContextVar

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# The channel-layer message type the consumer forwards to its client.
STREAM_PUSH = "stream.push"

# The socket being answered, if any (set by `replying_to`, read when a push
# is made). Context variables follow a call into asgiref's sync thread.
_reply_channel: ContextVar[str | None] = ContextVar("push_reply_channel", default=None)


def user_stream(user_id: int) -> str:
    return f"user.{user_id}"


@contextlib.contextmanager
def replying_to(channel_name: str | None) -> Iterator[None]:
    """Inside this block, a push of the request's result (`is_result=True`)
    skips `channel_name`, the socket that asked and gets it as its reply."""
    token = _reply_channel.set(channel_name)
    try:
        yield
    finally:
        _reply_channel.reset(token)


def _layer_message(payload: dict, exclude_channel: str | None) -> dict:
    return {"type": STREAM_PUSH, "frame": payload, "exclude": exclude_channel}


async def apush(user_ids: Iterable[int], payload: dict, *, exclude_channel: str | None = None):
    layer = get_channel_layer()
    message = _layer_message(payload, exclude_channel)
    for user_id in set(user_ids):
        await layer.group_send(user_stream(user_id), message)


class _PushLoop:
    """One event loop per process, in a daemon thread, for pushes from sync
    code (services after commit, Celery tasks). `async_to_sync` would start a
    new loop, and so open a new channel-layer connection, for every push:
    about 2.7 ms a push from a worker against 0.27 ms on this kept loop.
    Started on first use, and afresh in a forked child (a prefork worker
    inherits no threads)."""

    PUSH_TIMEOUT_S = 5.0

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="push-loop", daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def run(self, coroutine: Coroutine) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError("push() would block the event loop; await apush() instead")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            future.result(self.PUSH_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


_push_loop = _PushLoop()
os.register_at_fork(after_in_child=_push_loop._reset)


def _send(user_ids: list[int], payload: dict, exclude_channel: str | None) -> None:
    try:
        _push_loop.run(apush(user_ids, payload, exclude_channel=exclude_channel))
    except Exception:
        logger.exception("events.push_failed", extra={"type": payload.get("type")})


def _exclude(is_result: bool) -> str | None:
    return _reply_channel.get() if is_result else None


def push(user_ids: Iterable[int], payload: dict, *, is_result: bool = False) -> None:
    """Send now. A failed push is logged, never raised: the write it reports
    has committed, and clients re-read REST on a gap. `is_result`: this frame
    is what the asking socket gets as its reply, so that socket is skipped."""
    _send(list(user_ids), payload, _exclude(is_result))


def push_on_commit(user_ids: Iterable[int], payload: dict, *, is_result: bool = False) -> None:
    """As `push`, once the caller's transaction commits (never, if it rolls back)."""
    ids, exclude = list(user_ids), _exclude(is_result)
    transaction.on_commit(lambda: _send(ids, payload, exclude), robust=True)
