"""End-to-end fixtures: real web, worker and beat processes (tests/e2e/stack.py)."""

from tests.e2e.stack import e2e_stack  # noqa: F401
