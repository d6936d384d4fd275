"""Processes of a running stack (the Procfile's commands, started by
`tests/e2e/stack.py`): kill, freeze, stop or restart one of them, always by
its whole process group (Celery's pool children included), and start extra
ones (a new worker, a second beat, Redis again on its port) that the stack
stops with the rest. Every process group started here is written in a ledger
that the `fault_stack` fixture empties at teardown, whatever happened.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from bench.stack import ROOT, Child, Stack, argv_for, http_get_status, procfile_commands

STOP_WAIT_S = 10.0


def wait_until(check: Callable[[], Any], *, within: float, what: str, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; that value, or a failure
    naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what}")
        time.sleep(every)


# --- processes ---------------------------------------------------------------------

# Process groups started by this test (each child leads its own group), with
# their leader's start time, so that a recycled pid is never signalled.
LEDGER: dict[int, str | None] = {}


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def remember(stack: Stack) -> None:
    for child in stack.children.values():
        LEDGER.setdefault(child.pid, _start_time(child.pid))


def kill_ledger() -> None:
    """Last line of defence: every process group started by the current test
    is continued (if frozen) and killed, whatever state it was left in. A group
    id cannot be reused while any member lives, and a leader whose start time
    changed is someone else's process: it is left alone."""
    for pgid, started in sorted(LEDGER.items()):
        now = _start_time(pgid)
        if now is not None and now != started:
            continue
        for signum in (signal.SIGCONT, signal.SIGKILL):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)
    LEDGER.clear()


def live_group_members(pgid: int) -> list[int]:
    """Pids of the group's processes that still run (zombies do not count)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def signal_group(child: Child, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def _wait_group_gone(child: Child, timeout: float) -> None:
    with suppress(subprocess.TimeoutExpired):
        child.process.wait(timeout)
    wait_until(
        lambda: child.process.poll() is not None and not live_group_members(child.pid),
        within=timeout,
        what=f"{child.name} (process group {child.pid}) gone",
    )


def kill_group(stack: Stack, name: str) -> float:
    """SIGKILL the process and its whole group; returns when nothing of it
    runs any more, with the `time.monotonic()` of the kill."""
    child = stack.children[name]
    killed_at = time.monotonic()
    signal_group(child, signal.SIGKILL)
    _wait_group_gone(child, STOP_WAIT_S)
    return killed_at


def terminate_group(stack: Stack, name: str) -> int:
    """SIGTERM, as a platform stops a process; returns its exit code once it
    and its whole group are gone. Fails if it ignores the signal."""
    child = stack.children[name]
    signal_group(child, signal.SIGTERM)
    _wait_group_gone(child, STOP_WAIT_S)
    return child.process.returncode


def freeze(child: Child) -> None:
    """SIGSTOP the group: a process that holds its connections but reads
    nothing (a long pause). `thaw` undoes it; teardown thaws whatever is left."""
    signal_group(child, signal.SIGSTOP)


def thaw(child: Child) -> None:
    signal_group(child, signal.SIGCONT)


def spawn(stack: Stack, name: str, argv: list[str]) -> Child:
    """Start a process the stack stops with the others, its output appended to
    logs/<name>.log. `name` may be that of a process already dead (a restart)."""
    old = stack.children.get(name)
    assert old is None or old.process.poll() is not None, f"{name} still runs"
    log_path = stack.work_dir / "logs" / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=stack.base_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped whole
        )
    LEDGER[process.pid] = _start_time(process.pid)
    child = Child(name, process, log_path)
    stack.children[name] = child
    return child


def add_worker(stack: Stack, name: str) -> Child:
    child = stack.add_worker(name)
    LEDGER[child.pid] = _start_time(child.pid)
    return child


def add_beat(stack: Stack, name: str) -> Child:
    return spawn(stack, name, argv_for(procfile_commands()["beat"], stack.base_env))


def wait_worker_ready(child: Child, within: float = 60.0) -> float:
    """Blocks until the worker logged that it is ready; returns when (monotonic)."""
    wait_until(
        lambda: child.process.poll() is None and " ready." in log_text(child),
        within=within,
        what=f"{child.name} ready",
    )
    return time.monotonic()


def web_url(stack: Stack) -> str:
    return stack.web_urls[0]


def healthz(stack: Stack) -> int | None:
    return http_get_status(web_url(stack), "/healthz", timeout=1.0)


# --- the private Redis -------------------------------------------------------------


def redis_port(stack: Stack) -> int:
    return urlsplit(stack.base_env["REDIS_URL"]).port


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_again(stack: Stack, argv: list[str]) -> float:
    """The same Redis command (same port, nothing kept on disk) once more;
    returns the monotonic time it was started at, once it answers PING."""
    started_at = time.monotonic()
    spawn(stack, "redis", argv)
    wait_until(lambda: redis_answers(redis_port(stack)), within=STOP_WAIT_S, what="Redis back")
    return started_at


def broker(stack: Stack) -> redis.Redis:
    """A client of the stack's own Redis (never the machine's)."""
    return redis.Redis.from_url(stack.base_env["REDIS_URL"], socket_timeout=2)


def queued_tasks(stack: Stack) -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in the broker's queue."""
    queued = []
    with broker(stack) as client:
        for raw in client.lrange("celery", 0, -1):
            message = json.loads(raw)
            args = json.loads(base64.b64decode(message["body"]))[0]
            queued.append((message["headers"]["task"], args))
    return queued


def reserved_tasks(stack: Stack) -> list[tuple[str, list]]:
    """(task name, args) of every message a worker has taken from the queue
    and not yet acknowledged (kombu's `unacked` hash): a task with a
    countdown sits there, in its worker, until it runs."""
    reserved = []
    with broker(stack) as client:
        for raw in client.hvals("unacked"):
            message = json.loads(raw)[0]
            args = json.loads(base64.b64decode(message["body"]))[0]
            reserved.append((message["headers"]["task"], args))
    return reserved


def consumers_waiting_on_broker(stack: Stack) -> int:
    """Redis clients blocked in BRPOP: Celery workers waiting for a message
    (the channel layer's BZPOPMIN is another command)."""
    with broker(stack) as client:
        return sum(
            1 for c in client.client_list() if c["cmd"] == "brpop" and "b" in c.get("flags", "")
        )


# --- logs --------------------------------------------------------------------------


def log_text(child: Child) -> str:
    try:
        return child.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def log_events(child: Child) -> list[dict]:
    """The structured (JSON) lines of a process's output."""
    events = []
    for line in log_text(child).splitlines():
        if line.startswith("{"):
            with suppress(ValueError):
                events.append(json.loads(line))
    return events


def task_runs(child: Child, task: str) -> list[dict]:
    """Celery's `received` lines of one task in a worker's log."""
    return [
        e["data"]
        for e in log_events(child)
        if e.get("logger") == "celery.worker.strategy"
        and e.get("data", {}).get("name") == task
        and "received" in e.get("event", "")
    ]
