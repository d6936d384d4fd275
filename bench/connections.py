"""Concurrent WebSockets held by one web process, and its memory per socket.

A fresh web process (its own daphne, same Redis and database) takes sockets
in steps, each an authenticated `/taxi/` connection of a distinct user that
joins its user stream, as every app's socket does. RSS (VmRSS from /proc)
is read after each step settles; per-socket memory is the growth over the
baseline divided by the sockets open. At the end every socket must still
answer an `echo.message`.
"""

from __future__ import annotations

import asyncio
import time

from bench.load import close_sockets, open_sockets
from bench.stack import rss_bytes
from sim.client import Api, Session, SimError, Socket

MIB = 1024 * 1024
SETTLE_S = 2.0


async def measure(
    web_url: str, web_pid: int, sessions: list[Session], *, steps: list[int], say
) -> dict:
    if len(sessions) < max(steps):
        raise SimError(f"connections need {max(steps)} accounts; {len(sessions)} were seeded")
    api = Api(web_url)
    sockets: list[Socket] = []
    try:
        warm = await open_sockets(api, sessions[:10], lambda i: lambda frame, arrived: None)
        await close_sockets(warm)
        await asyncio.sleep(SETTLE_S)
        baseline = rss_bytes(web_pid)
        rows = []
        for step in steps:
            began = time.monotonic()
            sockets += await open_sockets(
                api, sessions[len(sockets) : step], lambda i: lambda frame, arrived: None
            )
            took = time.monotonic() - began
            await asyncio.sleep(SETTLE_S)
            rss = rss_bytes(web_pid)
            rows.append(
                {
                    "sockets": len(sockets),
                    "rss_mib": round(rss / MIB, 1),
                    "kib_per_socket": round((rss - baseline) / 1024 / len(sockets), 1),
                    "handshakes_per_s": round(
                        (step - (rows[-1]["sockets"] if rows else 0)) / took, 1
                    ),
                }
            )
            say(f"connections: {len(sockets)} open, web RSS {rows[-1]['rss_mib']} MiB")
        alive = await _echo_all(sockets)
        say(f"connections: {alive}/{len(sockets)} answered an echo")
        return {"baseline_rss_mib": round(baseline / MIB, 1), "steps": rows, "answered_echo": alive}
    finally:
        await close_sockets(sockets)
        await api.close()


async def _echo_all(sockets: list[Socket]) -> int:
    gate = asyncio.Semaphore(256)

    async def one(socket: Socket) -> bool:
        async with gate:
            try:
                reply = await socket.request("echo.message", {"ping": True}, wait_s=30)
            except (SimError, TimeoutError):
                return False
            return reply.get("type") == "echo.message"

    return sum(await asyncio.gather(*(one(s) for s in sockets)))
