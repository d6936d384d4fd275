"""Fault fixtures: the end-to-end stack (tests/e2e/stack.py), torn down so
that nothing it started can outlive the test."""

import atexit
import signal
import threading
from collections.abc import Callable, Iterator

import pytest

from bench.stack import Stack
from tests.e2e.stack import e2e_stack  # noqa: F401
from tests.faults import processes

atexit.register(processes.kill_ledger)


@pytest.fixture(autouse=True)
def _teardown_on_sigterm() -> Iterator[None]:
    """A CI job's time limit sends SIGTERM, which would end pytest without any
    teardown and leave web, worker, beat and Redis running: while a fault test
    runs, it is an interruption instead, so the fixtures below still stop
    everything."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def fault_stack(e2e_stack) -> Iterator[Callable[..., Stack]]:  # noqa: F811
    """`e2e_stack`, plus: the processes a test adds, restarts or freezes
    (processes.spawn, processes.freeze) are thawed and stopped with the rest, and
    anything of them still alive after the graceful stop is killed.

    Call it on the test's own thread, not through `asyncio.to_thread`: an
    interruption (Ctrl-C, or SIGTERM, above) then lands in the code starting
    the processes, which stops what it started; in a helper thread it would
    leave that thread starting processes after the teardown has run."""
    stacks: list[Stack] = []

    def start(**options) -> Stack:
        stack = e2e_stack(**options)
        stacks.append(stack)
        processes.remember(stack)
        return stack

    try:
        yield start
    finally:
        try:
            for stack in stacks:
                for child in list(stack.children.values()):
                    processes.thaw(child)
                stack.stop()
        finally:
            processes.kill_ledger()
