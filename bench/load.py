"""What every measurement shares: accounts, many sockets opened in bulk,
latency summaries, and the process's file-descriptor limit."""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.client import Api, FrameHandler, Session, Socket
from sim.kpi import percentile

# Bursts above ~100 concurrent handshakes or hang-ups exhaust the web process's
# channel-layer Redis pool (redis-py 8 caps a pool at 100 connections and then
# raises): see BENCHMARKS.md, "Findings".
CONNECT_CONCURRENCY = 48
CLOSE_CONCURRENCY = 32


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True)
class Accounts:
    drivers: list[Session]
    riders: list[Session]

    @classmethod
    def load(cls, path: Path) -> Accounts:
        raw = json.loads(path.read_text())

        def sessions(group: str) -> list[Session]:
            return [
                Session(user_id=a["id"], username=a["username"], group=group, access=a["access"])
                for a in raw[group]
            ]

        return cls(drivers=sessions("driver"), riders=sessions("rider"))


async def open_sockets(
    api: Api | Sequence[Api],
    sessions: Sequence[Session],
    handler_for: Callable[[int], FrameHandler],
    *,
    concurrency: int = CONNECT_CONCURRENCY,
    offset: int = 0,
) -> list[Socket]:
    """One socket per session, `concurrency` handshakes at a time, in order.
    Given several servers, socket i goes to server (i + offset) mod n."""
    apis = [api] if isinstance(api, Api) else list(api)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int, session: Session) -> Socket:
        target = apis[(index + offset) % len(apis)]
        async with semaphore:
            return await Socket.open(target, session, handler_for(index), ping_interval=None)

    return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(sessions))))


async def close_sockets(sockets: Sequence[Socket]) -> None:
    semaphore = asyncio.Semaphore(CLOSE_CONCURRENCY)

    async def one(socket: Socket) -> None:
        async with semaphore:
            await socket.close()

    await asyncio.gather(*(one(s) for s in sockets))


def summary_ms(seconds: Sequence[float]) -> dict:
    """count, p50/p95/p99, mean and max of latencies given in seconds, in ms."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000.0, 2)

    return {
        "count": len(seconds),
        "p50": ms(percentile(seconds, 50)),
        "p95": ms(percentile(seconds, 95)),
        "p99": ms(percentile(seconds, 99)),
        "mean": ms(sum(seconds) / len(seconds)) if seconds else None,
        "max": ms(max(seconds)) if seconds else None,
    }
