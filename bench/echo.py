"""WebSocket echo throughput: taxi's `/taxi/` `echo.message` against a bare
`websockets` echo server (the ceiling), both one process on this machine.

The same client runs against both: S sockets, each keeping W frames in
flight (a new frame for every reply) for a fixed time. Throughput is replies
per second. The client's own CPU use is reported: near 100 % means the
ceiling is the load generator's, not the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time

from websockets.asyncio.client import ClientConnection, connect

from bench.stack import ROOT, cpu_seconds, free_port
from sim.client import Session

FRAME = json.dumps({"type": "echo.message", "data": {"seq": 1, "pad": "x" * 96}})


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _pump(connection: ClientConnection, window: int, until: float) -> int:
    replies = 0
    for _ in range(window):
        await connection.send(FRAME)
    in_flight = window
    while in_flight:
        try:
            await asyncio.wait_for(
                connection.recv(), timeout=max(0.1, until - time.monotonic() + 2)
            )
        except TimeoutError:
            break
        in_flight -= 1
        replies += 1
        if time.monotonic() < until:
            await connection.send(FRAME)
            in_flight += 1
    return replies


async def throughput(urls: list[str], *, window: int, seconds: float, server_pid: int) -> dict:
    connections = [
        await connect(url, compression=None, proxy=None, ping_interval=None, max_queue=None)
        for url in urls
    ]
    try:
        for connection in connections:  # one round trip each, to warm up
            await connection.send(FRAME)
            await connection.recv()
        cpu_server, cpu_client = cpu_seconds(server_pid), _client_cpu()
        began = time.monotonic()
        replies = await asyncio.gather(*(_pump(c, window, began + seconds) for c in connections))
        elapsed = time.monotonic() - began
        return {
            "sockets": len(connections),
            "window": window,
            "seconds": round(elapsed, 2),
            "replies": sum(replies),
            "replies_per_s": round(sum(replies) / elapsed, 1),
            "server_cpu_percent": round(100 * (cpu_seconds(server_pid) - cpu_server) / elapsed, 1),
            "client_cpu_percent": round(100 * (_client_cpu() - cpu_client) / elapsed, 1),
        }
    finally:
        for connection in connections:
            with contextlib.suppress(Exception):
                await connection.close()


async def measure(
    taxi_url: str,
    taxi_pid: int,
    riders: list[Session],
    *,
    sockets: int,
    window: int,
    seconds: float,
    say,
) -> dict:
    if len(riders) < sockets:
        raise ValueError(f"echo needs {sockets} accounts, {len(riders)} seeded")
    port = free_port()
    bare = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.echo_server", "--port", str(port),
        cwd=ROOT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        await _wait_for_port(port, bare)
        bare_result = await throughput(
            [f"ws://127.0.0.1:{port}/"] * sockets,
            window=window,
            seconds=seconds,
            server_pid=bare.pid,
        )
        say(f"echo: bare websockets server {bare_result['replies_per_s']} replies/s")
    finally:
        if bare.returncode is None:
            bare.terminate()
        try:
            await asyncio.wait_for(bare.wait(), 5)
        except TimeoutError:
            bare.kill()
            await bare.wait()
    ws_base = taxi_url.replace("http://", "ws://", 1)
    urls = [f"{ws_base}/taxi/?token={r.access}" for r in riders[:sockets]]
    taxi_result = await throughput(urls, window=window, seconds=seconds, server_pid=taxi_pid)
    say(f"echo: taxi /taxi/ echo.message {taxi_result['replies_per_s']} replies/s")
    ratio = taxi_result["replies_per_s"] / bare_result["replies_per_s"]
    return {"bare": bare_result, "taxi": taxi_result, "ratio": round(ratio, 3)}


async def _wait_for_port(port: int, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and server.returncode is None:
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the bare echo server did not listen on {port}")
