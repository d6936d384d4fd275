"""A client app's view of the server: REST calls, log-in, one WebSocket.

Only the public protocol (PROTOCOL.md) is used. Tokens stay in memory and
never reach a log line or the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 15.0
REPLY_TIMEOUT_S = 15.0
THROTTLE_HINT = (
    "the server throttles sign-up/log-in per client address (HTTP 429). Start it with "
    "higher limits, e.g. THROTTLE_LOG_IN=100000/min THROTTLE_SIGN_UP=100000/hour "
    "(`make demo` does), or wait and run with fewer --drivers/--riders."
)


class SimError(Exception):
    """The run cannot go on; the message says why and what to do."""


class Throttled(SimError):
    def __init__(self, path: str, retry_after: str | None) -> None:
        wait = f" (Retry-After: {retry_after}s)" if retry_after else ""
        super().__init__(f"{path}: {THROTTLE_HINT}{wait}")


@dataclass
class Session:
    user_id: int
    username: str
    group: str
    access: str

    def __repr__(self) -> str:  # never show the token
        return f"Session(user_id={self.user_id}, username={self.username!r})"


class Api:
    """REST over one pooled HTTP client."""

    def __init__(self, base_url: str, *, max_connections: int = 100) -> None:
        self.base_url = base_url.rstrip("/")
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=50)
        self.http = httpx.AsyncClient(
            base_url=self.base_url, timeout=HTTP_TIMEOUT_S, limits=limits, trust_env=False
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.request(method, path, json=body, headers=headers)
        if response.status_code == 429 and path.rstrip("/").endswith(("log_in", "sign_up")):
            raise Throttled(path, response.headers.get("Retry-After"))
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = {"detail": response.text[:200]}
        return response.status_code, data

    @property
    def ws_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/taxi/"


async def log_in_or_sign_up(
    api: Api, *, username: str, password: str, group: str, first_name: str
) -> Session:
    """Log in; an unknown account is signed up first (so reruns reuse accounts)."""
    status, body = await api.call(
        "POST", "/api/log_in/", body={"username": username, "password": password}
    )
    if status == 401:
        status, body = await api.call(
            "POST",
            "/api/sign_up/",
            body={
                "username": username,
                "password1": password,
                "password2": password,
                "first_name": first_name,
                "last_name": "Sim",
                "group": group,
            },
        )
        if status != 201:
            raise SimError(
                f"sign-up of {username} failed ({status}): {_short(body)}; if the account "
                "exists with another password, set SIM_PASSWORD to it"
            )
        logger.debug("sim.signed_up", extra={"username": username, "group": group})
        status, body = await api.call(
            "POST", "/api/log_in/", body={"username": username, "password": password}
        )
    if status != 200 or not isinstance(body, dict) or "access" not in body:
        raise SimError(f"log-in of {username} failed ({status}): {_short(body)}")
    if body.get("group") != group:
        raise SimError(f"{username} exists as a {body.get('group')}, not a {group}")
    return Session(user_id=body["id"], username=username, group=group, access=body["access"])


def _short(body: Any) -> str:
    text = json.dumps(body) if not isinstance(body, str) else body
    return text[:300]


FrameHandler = Callable[[dict, float], None]


class Socket:
    """One `/taxi/` WebSocket: a reader task hands every frame (with its
    arrival time, `time.monotonic()`) to `on_frame`, and resolves the reply of
    a `request` by its request_id."""

    _ids = itertools.count(1)

    def __init__(self, connection: ClientConnection, on_frame: FrameHandler) -> None:
        self.connection = connection
        self.on_frame = on_frame
        self.pending: dict[str, asyncio.Future] = {}
        self.reader = asyncio.create_task(self._read())
        self.closed = asyncio.Event()
        self.closing = False  # we hung up, as opposed to the server

    @property
    def dropped_by_server(self) -> bool:
        """The server closed this socket while we still wanted it."""
        return self.closed.is_set() and not self.closing

    @classmethod
    async def open(
        cls, api: Api, session: Session, on_frame: FrameHandler, *, ping_interval: float | None = 20
    ) -> Socket:
        try:
            connection = await connect(
                f"{api.ws_url}?token={session.access}",
                compression=None,
                proxy=None,
                open_timeout=HTTP_TIMEOUT_S,
                ping_interval=ping_interval,
                max_queue=None,
            )
        except InvalidStatus as error:
            raise SimError(
                f"the WebSocket handshake for {session.username} was refused "
                f"({error.response.status_code})"
            ) from None
        return cls(connection, on_frame)

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                arrived = time.monotonic()
                try:
                    frame = json.loads(raw)
                except ValueError:
                    logger.warning("sim.bad_frame")
                    continue
                if not isinstance(frame, dict):
                    continue
                self.on_frame(frame, arrived)
                future = self.pending.pop(str(frame.get("request_id")), None)
                if future is not None and not future.done():
                    future.set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(SimError("the socket closed"))
            self.pending.clear()

    async def send(
        self, type_: str, data: dict | None = None, request_id: str | None = None
    ) -> None:
        message: dict[str, Any] = {"type": type_, "data": data or {}}
        if request_id is not None:
            message["request_id"] = request_id
        try:
            await self.connection.send(json.dumps(message))
        except ConnectionClosed:
            raise SimError("the socket closed") from None

    async def request(
        self, type_: str, data: dict | None = None, *, wait_s: float = REPLY_TIMEOUT_S
    ) -> dict:
        """Send a frame and wait for the frame that carries its request_id back."""
        request_id = f"r{next(self._ids)}"
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            await self.send(type_, data, request_id)
            return await asyncio.wait_for(future, wait_s)
        finally:
            self.pending.pop(request_id, None)

    async def close(self) -> None:
        self.closing = True
        with contextlib.suppress(ConnectionClosed, OSError):
            await self.connection.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


def is_error(frame: dict) -> bool:
    return frame.get("type") == "error"


def error_code(frame: dict) -> str:
    data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
    return str(data.get("code", "unknown"))
