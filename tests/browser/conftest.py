"""Fixtures for the browser tests: the real processes (tests/e2e/stack.py)
serving collected static files, and Chromium sessions that are checked for
console errors and foreign requests when the test ends.

Without Chromium and its driver the tests skip, and the run ends with a
banner saying so; in CI (CI=true) a missing browser is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.browser.support import Browser, find_browser, in_ci
from tests.e2e.stack import e2e_stack  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "browser"
STAFF_USERNAME = "staff@example.com"
STAFF_PASSWORD = "console-Pa55word!"
# Long enough that a slow CI machine's clicks land inside the offer window.
# A request nobody takes ends at once (the app's "no driver could take this
# trip"), rather than waiting DISPATCH_SEARCH_TIMEOUT_S for supply.
BROWSER_STACK_ENV = {
    "DISPATCH_OFFER_TIMEOUT_S": "15",
    "OPS_TICK_S": "0.5",
    "DISPATCH_SEARCH_TIMEOUT_S": "0",
}
_skipped: list[str] = []


def pytest_unconfigure(config) -> None:
    """After pytest's own last line, so a green run does not hide it."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if not _skipped or reporter is None:
        return
    bar = "!" * 72
    for line, markup in (
        (bar, {"red": True, "bold": True}),
        (f"THE BROWSER TESTS DID NOT RUN: {_skipped[0]}", {"red": True, "bold": True}),
        ("Install them (Debian/Ubuntu: apt-get install chromium chromium-driver).", {"red": True}),
        (bar, {"red": True, "bold": True}),
    ):
        reporter.write_line(line, **markup)


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    found = find_browser()
    if found is None:
        reason = "Chromium and chromedriver are not installed"
        if in_ci():
            pytest.fail(f"{reason}; in CI the browser tests must run (.ci/run installs them)")
        _skipped.append(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="session")
def static_root() -> Path:
    """The static files as `release` collects them for production (DEBUG off:
    hashed names, compressed), once per run."""
    root = Path(settings.VAR_DIR) / f"browser-static{settings.TEST_RUN_ID}"
    env = {**os.environ, "DEBUG": "0", "STATIC_ROOT": str(root), "SECRET_KEY": "collectstatic"}
    env["DJANGO_SETTINGS_MODULE"] = "taxi.settings"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--clear", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return root


@pytest.fixture
def live_stack(e2e_stack, static_root, browser_paths):  # noqa: F811
    stack = e2e_stack(env={**BROWSER_STACK_ENV, "STATIC_ROOT": str(static_root)})
    return stack


@pytest.fixture
def staff(live_stack) -> dict[str, str]:
    """A staff account made by `manage.py staff_user` in the stack's environment."""
    env = {**live_stack.base_env, "STAFF_PASSWORD": STAFF_PASSWORD}
    subprocess.run(
        [sys.executable, "manage.py", "staff_user", STAFF_USERNAME],
        cwd=ROOT,
        env=env,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    return {"username": STAFF_USERNAME, "password": STAFF_PASSWORD}


@pytest.fixture
def browsers(request, live_stack, browser_paths, tmp_path) -> Iterator[Callable[[str], Browser]]:
    """`browsers("rider")` opens a new browser session (a person of its own)
    on the stack. Each is checked at the end: no console error, no request
    to another host."""
    opened: list[Browser] = []
    shots = SHOTS / request.node.name

    def open_browser(name: str, base: str | None = None) -> Browser:
        base = base or live_stack.web_urls[0]
        browser = Browser(name, base, browser_paths, shots, tmp_path / f"profile-{name}")
        opened.append(browser)
        return browser

    yield open_browser
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else True
    problems = []
    for browser in opened:
        if failed:
            browser.screenshot("at-failure")
        problems += [f"{browser.name}: {problem}" for problem in browser.problems()]
        browser.quit()
    assert not problems, "\n".join(problems)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
