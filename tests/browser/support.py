"""Chromium (the OS package) driven by Selenium, and what every browser test
checks: no error in the browser's console, no request to another host.

Each session keeps its own profile, so two sessions are two people (their
own sessionStorage and cookies). Screenshots go under var/browser/<test>/.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
WAIT_S = 20.0
DESKTOP = (1280, 800)
PHONE = (390, 844)


def find_browser() -> tuple[str, str] | None:
    """(browser, driver) executables from the PATH, or None."""
    browser = next(filter(None, map(shutil.which, BROWSER_NAMES)), None)
    driver = next(filter(None, map(shutil.which, DRIVER_NAMES)), None)
    return (browser, driver) if browser and driver else None


class Browser:
    """One browser session against one base URL."""

    def __init__(self, name: str, base: str, paths: tuple[str, str], shots: Path, profile: Path):
        self.name, self.base, self.shots = name, base, shots
        options = webdriver.ChromeOptions()
        options.binary_location = paths[0]
        for argument in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",  # no update or safe-browsing calls
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        # The driver named explicitly: Selenium Manager would otherwise try
        # to download one.
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=paths[1]))
        self.console: list[dict] = []
        self.requests: list[str] = []
        self.shot_count = 0

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def by_id(self, element_id: str):
        return self.driver.find_element(By.ID, element_id)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, condition: Callable[[], object], what: str, within: float = WAIT_S):
        """The condition's first truthy value, polled; fails naming `what`."""
        deadline = time.monotonic() + within
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = condition()
            except WebDriverException as error:
                value, last_error = None, error
            if value:
                return value
            time.sleep(0.1)
        self.screenshot(f"timeout-{what.replace(' ', '-')[:40]}")
        raise AssertionError(f"{self.name}: waited {within:.0f}s for {what} ({last_error})")

    def text(self, element_id: str) -> str:
        return self.by_id(element_id).text

    def visible(self, element_id: str) -> bool:
        return self.by_id(element_id).is_displayed()

    def wait_text(self, element_id: str, expected: str, within: float = WAIT_S) -> str:
        return self.wait(
            lambda: expected in self.text(element_id) and self.text(element_id),
            f"{expected!r} in #{element_id}",
            within,
        )

    def click(self, element_id: str) -> None:
        self.wait(lambda: self.visible(element_id), f"#{element_id} visible")
        self.by_id(element_id).click()

    def fill(self, form_id: str, values: dict[str, str]) -> None:
        form = self.by_id(form_id)
        for name, value in values.items():
            field = form.find_element(By.NAME, name)
            if field.get_attribute("type") == "radio":
                form.find_element(By.CSS_SELECTOR, f'input[name="{name}"][value="{value}"]').click()
            else:
                field.clear()
                field.send_keys(value)

    def click_map(self, dx: int, dy: int, map_id: str = "map") -> None:
        """A tap on the map, dx/dy pixels from its centre."""
        element = self.by_id(map_id)
        ActionChains(self.driver).move_to_element_with_offset(element, dx, dy).click().perform()

    def resize(self, size: tuple[int, int]) -> None:
        self.driver.set_window_size(*size)

    def screenshot(self, label: str) -> Path:
        self.shot_count += 1
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{self.name}-{self.shot_count:02d}-{label}.png"
        self.driver.save_screenshot(str(path))
        return path

    def collect_logs(self) -> None:
        self.console += self.driver.get_log("browser")
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif message.get("method") == "Network.webSocketCreated":
                self.requests.append(params["url"])

    @contextmanager
    def tolerating(self, *patterns: str) -> Iterator[None]:
        """Console errors matching one of `patterns` are expected inside this
        block (a server taken down on purpose); any other still counts."""
        self.collect_logs()
        before = len(self.console)
        yield
        self.collect_logs()
        during = self.console[before:]
        self.console[before:] = [
            entry
            for entry in during
            if entry["level"] != "SEVERE" or not any(p in entry["message"] for p in patterns)
        ]

    def problems(self) -> list[str]:
        """Console errors, and requests that left the page's own host."""
        self.collect_logs()
        own = urlsplit(self.base).netloc
        found = [
            f"console {entry['level']}: {entry['message']}"
            for entry in self.console
            if entry["level"] == "SEVERE"
        ]
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about", "chrome"):
                continue
            if parts.netloc != own:
                found.append(f"request to another host: {url}")
        return found

    def quit(self) -> None:
        try:
            self.driver.quit()
        except WebDriverException:
            pass


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
