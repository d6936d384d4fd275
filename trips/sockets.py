"""A user's open sockets: how many there may be, and closing them when the
credentials that opened them end (PROTOCOL.md, "WebSocket, extended").

The cap (`WS_MAX_SOCKETS_PER_USER`) holds across every web process: each
socket holds a lease in one Redis sorted set per user (dispatch/keys.py),
renewed while it lives, so a process that dies without closing its sockets
stops counting against its users once their leases run out.

Closing is a control message on the user's own stream, which every socket of
the user already listens to, whichever process holds it: each socket compares
it with its own credentials (`Credentials`) and closes (4003) on a match. The
consumer never forwards it to the client.
"""

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, replace

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError

from dispatch import keys
from taxi.infra.push import user_stream
from taxi.infra.redis import get_async_redis, get_redis

logger = logging.getLogger(__name__)

# The channel-layer message type of the control message; never a client frame.
STREAM_REVOKE = "stream.revoke"
RENEW_EVERY_S = keys.SOCKET_LEASE_S / 3


@dataclass(frozen=True)
class Credentials:
    """What a socket was opened (or last refreshed) with.

    `expires_at`: the access token's `exp` (unix time), None for a session.
    `login`: the log-in the access token came from (trips.authentication.LOGIN_CLAIM).
    `session`: a digest of the session key, never the key itself, so the
    control message on the stream carries no usable secret.
    """

    expires_at: float | None = None
    login: str | None = None
    session: str | None = None

    def refreshed(self, other: "Credentials") -> "Credentials":
        """After `auth.refresh`: the socket now lives by the new token."""
        return replace(other, session=None)


def session_digest(session_key: str | None) -> str | None:
    if not session_key:
        return None
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


# --- the per-user cap ---------------------------------------------------------------


async def lease_acquire(user_id: int, socket_id: str) -> bool:
    """Count this socket in, unless the user already has the most allowed.

    One transaction drops run-out leases, adds this one and counts; when the
    count is over the cap this socket takes itself out again. Two handshakes
    racing for the last place are ordered by Redis: one gets it."""
    key, now = keys.user_sockets(user_id), time.time()
    async with get_async_redis().pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {socket_id: now + keys.SOCKET_LEASE_S})
        pipe.expire(key, keys.SOCKET_LEASE_S)
        pipe.zcard(key)
        *_, count = await pipe.execute()
    if count <= settings.WS_MAX_SOCKETS_PER_USER:
        return True
    await get_async_redis().zrem(key, socket_id)
    return False


async def lease_keep(user_id: int, socket_id: str) -> None:
    """Renew the lease while the socket lives (cancelled when it ends). A
    failed renewal is retried at the next turn; the lease has room for two."""
    key = keys.user_sockets(user_id)
    while True:
        await asyncio.sleep(RENEW_EVERY_S)
        try:
            async with get_async_redis().pipeline(transaction=True) as pipe:
                pipe.zadd(key, {socket_id: time.time() + keys.SOCKET_LEASE_S})
                pipe.expire(key, keys.SOCKET_LEASE_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("ws.lease_renew_failed", extra={"error": type(exc).__name__})


async def lease_release(user_id: int, socket_id: str) -> None:
    with contextlib.suppress(RedisError, OSError):  # the lease runs out by itself
        await get_async_redis().zrem(keys.user_sockets(user_id), socket_id)


def user_has_open_socket(user_id: int) -> bool:
    """Whether any web process holds a live socket of the user (sync: one
    Redis call). A process that died without closing its sockets counts
    until their leases run out."""
    return get_redis().zcount(keys.user_sockets(user_id), time.time(), "+inf") > 0


# --- closing sockets ---------------------------------------------------------------


def revoke_message(
    *, login: str | None = None, session: str | None = None, every: bool = False
) -> dict:
    return {"type": STREAM_REVOKE, "login": login, "session": session, "every": every}


def revoke_matches(message: dict, credentials: Credentials) -> bool:
    if message.get("every"):
        return True
    login, session = message.get("login"), message.get("session")
    return bool(
        (login and login == credentials.login) or (session and session == credentials.session)
    )


def sockets_revoke_on_commit(
    user_id: int, *, login: str | None = None, session: str | None = None, every: bool = False
) -> None:
    """After commit, close the user's sockets opened with that log-in or
    session, or all of them. Logged, never raised: what it follows committed."""
    message = revoke_message(login=login, session=session, every=every)

    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(user_stream(user_id), message)
        except Exception:
            logger.exception("ws.revoke_failed", extra={"user_id": user_id})

    transaction.on_commit(send, robust=True)
