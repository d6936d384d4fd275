"""The web pages in a real browser against the real processes (web, worker,
beat): a rider and a driver, each in a browser of their own, take a whole
trip through /app/, while a staff member watches it on /ops/.

Every browser is checked when its test ends: no error in its console, no
request to another host (tests/browser/conftest.py). Screenshots are saved
under var/browser/<test>/.
"""

import pytest

from tests.browser.support import PHONE
from tests.e2e.test_trip_flow import App

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pAssw0rd!x9"
STATUS = "trip-status"  # the rider's badge
DRIVER_STATUS = "dtrip-status"


def sign_up(browser, username: str, first_name: str, group: str) -> dict:
    browser.open("/app/")
    browser.click("tab-sign-up")
    browser.fill(
        "sign-up-form",
        {
            "username": username,
            "first_name": first_name,
            "last_name": "Example",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "group": group,
        },
    )
    browser.by_id("sign-up-form").submit()
    browser.wait(lambda: browser.visible(group), f"the {group} screen")
    browser.wait(lambda: browser.text("connection") == "live", "the socket")
    return browser.js("return JSON.parse(sessionStorage.getItem('taxi.session')).user")


def console_trip(ops, trip_id: str):
    return ops.js("return window.taxiOps.trip(arguments[0])", trip_id)


def console_driver(ops, driver_id: int):
    return ops.js("return window.taxiOps.driver(arguments[0])", driver_id)


def test_a_rider_and_a_driver_take_a_trip_and_the_console_follows(browsers, staff):
    ops, driver, rider = browsers("ops"), browsers("driver"), browsers("rider")

    # Staff: the console sends them through the admin's log-in, then back.
    ops.open("/ops/")
    ops.wait(lambda: "/admin/login/" in ops.driver.current_url, "the log-in redirect")
    ops.fill("login-form", staff)
    ops.by_id("login-form").submit()
    ops.wait(lambda: ops.driver.current_url.endswith("/ops/"), "the console after log-in")
    ops.wait(lambda: ops.text("connection") == "live", "the staff stream")
    ops.wait_text("count-online", "0")
    # The surge layer, offered by the stream, reads its map from /api/ops/surge/.
    ops.click("show-surge")
    ops.wait_text("surge-max", "3.0")

    # A driver signs up, places the car on the map and goes online.
    driver_user = sign_up(driver, "dana@example.com", "Dana", "driver")
    driver.click_map(0, 0)
    driver.wait(lambda: driver.js("return window.taxiApp.car()"), "the car on the map")
    driver.click("go-online")
    driver.wait_text("driver-state", "online")
    ops.wait_text("count-online", "1")
    ops.wait(
        lambda: (console_driver(ops, driver_user["id"]) or {}).get("state") == "free",
        "the free driver on the console",
    )
    ops.screenshot("driver-online")

    # A rider signs up, taps a pick-up near the car and a drop-off, requests.
    sign_up(rider, "riley@example.com", "Riley", "rider")
    rider.click_map(40, 20)
    rider.click_map(-120, 140)
    rider.wait(lambda: rider.by_id("drop-off-address").get_attribute("value"), "the drop-off")
    rider.screenshot("planned")
    rider.click("request")
    trip_id = rider.wait(
        lambda: (rider.js("return window.taxiApp.trip()") or {}).get("id"), "the rider's trip"
    )
    ops.wait(lambda: console_trip(ops, trip_id), "the request on the console")

    # The driver gets the offer with its countdown, and accepts.
    driver.wait(lambda: driver.visible("offer"), "the offer")
    countdown = driver.wait_text("offer-countdown", " s")
    assert 0 < int(countdown.split()[0]) <= 15
    assert "Pick-up at" in driver.text("offer-text")
    driver.screenshot("offer")
    driver.click("accept-offer")
    driver.wait_text(DRIVER_STATUS, "STARTED")
    assert not driver.visible("offer")

    rider.wait_text(STATUS, "STARTED")
    assert "Dana Example" in rider.text("driver-info")
    ops.wait(
        lambda: (console_trip(ops, trip_id) or {}).get("status") == "STARTED",
        "the started trip on the console",
    )
    ops.wait(
        lambda: (console_driver(ops, driver_user["id"]) or {}).get("state") == "on_trip",
        "the driver on a trip on the console",
    )

    # The driver drives (a tap on the map: the car drives there at city
    # speed): the rider sees the car approach, the console sees it move.
    driver.js(
        "const app = window.taxiApp; app.map.setView(app.car(), 18, {animate: false})"
    )  # a street's scale: a tap ~20 m away, a couple of seconds' drive
    for dx, dy in ((40, 10), (50, 30)):
        before = driver.js("return window.taxiApp.car()")
        driver.click_map(dx, dy)
        driver.wait(
            lambda before=before: driver.js("return window.taxiApp.car()") != before, "a move"
        )
        driver.wait(lambda: driver.text("position-text").startswith("Car at"), "the arrival")
        car = driver.js("return window.taxiApp.car()")
        rider.wait(lambda: rider.text("driver-eta").startswith("Car "), "the car's distance")
        ops.wait(
            lambda car=car: (
                abs(console_driver(ops, driver_user["id"])["lat"] - car[0]) < 1e-4
                and abs(console_driver(ops, driver_user["id"])["lng"] - car[1]) < 1e-4
            ),
            "the driver's new position on the console",
        )
        rider.wait(
            lambda car=car: (
                rider.js("return window.taxiApp.car()")
                and abs(rider.js("return window.taxiApp.car()")[0] - car[0]) < 1e-6
            ),
            "the car on the rider's map",
        )
    rider.screenshot("car-approaching")
    ops.screenshot("trip-started")

    for button, status in (("picked-up", "IN_PROGRESS"), ("dropped-off", "COMPLETED")):
        driver.click(button)
        driver.wait_text(DRIVER_STATUS, status)
        rider.wait_text(STATUS, status)
        ops.wait(
            lambda status=status: (console_trip(ops, trip_id) or {}).get("status") == status,
            f"{status} on the console",
        )
        ops.wait(
            lambda status=status: ops.js(
                "const row = document.querySelector(`#trips li[data-trip-id='${arguments[0]}']`);"
                "return row && row.dataset.status === arguments[1]",
                trip_id,
                status,
            ),
            f"{status} in the console's trip list",
        )
    rider.screenshot("completed")
    driver.screenshot("completed")

    # The console's side panel: the trip's offers, from the database.
    ops.js(f"document.querySelector(\"#trips li[data-trip-id='{trip_id}']\").click()")
    ops.wait_text("detail-history", "ACCEPTED")
    assert f"driver {driver_user['id']}" in ops.text("detail-history")
    ops.screenshot("trip-history")
    ops.wait(
        lambda: (console_driver(ops, driver_user["id"]) or {}).get("state") == "free",
        "the driver free again on the console",
    )

    # The same app on a phone-sized screen.
    rider.resize(PHONE)
    rider.click("new-ride")
    rider.wait(lambda: rider.visible("rider-plan"), "the planner on a phone")
    assert rider.by_id("map").size["height"] > 200
    rider.screenshot("phone")


def test_the_landing_page_links_the_pages_and_the_console_is_staff_only(browsers, live_stack):
    visitor = browsers("visitor")
    visitor.open("/")
    for link, path in (
        ("link-app", "/app/"),
        ("link-ops", "/ops/"),
        ("link-docs", "/api/docs/"),
        ("link-admin", "/admin/"),
    ):
        assert visitor.by_id(link).get_attribute("href").endswith(path)
    visitor.screenshot("landing")
    visitor.resize(PHONE)
    visitor.screenshot("landing-phone")

    visitor.click("link-ops")
    visitor.wait(lambda: "/admin/login/" in visitor.driver.current_url, "the log-in page")
    assert "next=/ops/" in visitor.driver.current_url


def test_after_a_dropped_socket_the_app_reconnects_and_re_reads_its_trip(browsers, live_stack):
    """The rider's web process goes down while the driver (on another web
    process) picks the rider up: the push is lost with the socket. When the
    process is back, the app reconnects by itself and re-reads the trip."""
    rider_web = live_stack.add_web("web2", wait=True)
    driver_app = App(live_stack.web_urls[0])
    rider = browsers("rider", base=rider_web.url)
    sign_up(rider, "riley@example.com", "Riley", "rider")
    driver_user = driver_app.sign_up_and_log_in("dana@example.com", "driver")
    token = driver_user["access"]
    driver_app.call("POST", "/api/driver/online/", {"lat": 38.9, "lng": -77.04}, token)

    rider.click_map(10, 0)
    rider.click("request")
    rider.wait_text(STATUS, "REQUESTED")
    trip_id = rider.js("return window.taxiApp.trip().id")
    rider.wait(
        lambda: driver_app.call("POST", f"/api/trip/{trip_id}/accept/", {}, token)[0] == 200,
        "the driver's accept",
    )
    rider.wait_text(STATUS, "STARTED")

    port = int(rider_web.url.rsplit(":", 1)[1])
    with rider.tolerating("WebSocket connection to", "ERR_CONNECTION_REFUSED"):
        live_stack.stop_child("web2")
        rider.wait(lambda: rider.text("connection").startswith("offline"), "the drop noticed")
        status, moved = driver_app.call(
            "POST", f"/api/trip/{trip_id}/status/", {"status": "IN_PROGRESS"}, token
        )
        assert (status, moved["status"]) == (200, "IN_PROGRESS")
        assert rider.text(STATUS) == "STARTED", "no socket, no news"
        live_stack.add_web("web2", wait=True, port=port)
        rider.wait(lambda: rider.text("connection") == "live", "the socket back", within=45)
    rider.wait_text(STATUS, "IN_PROGRESS")
    rider.screenshot("re-read-after-reconnect")


def test_a_declined_request_expires_and_a_canceled_one_leaves_the_drivers_screen(browsers):
    driver, rider = browsers("driver"), browsers("rider")
    sign_up(driver, "dana@example.com", "Dana", "driver")
    driver.click_map(0, 0)
    driver.click("go-online")
    driver.wait_text("driver-state", "online")
    sign_up(rider, "riley@example.com", "Riley", "rider")

    # The only driver declines: no one is left, the request expires.
    rider.click_map(20, 10)
    rider.click("request")
    driver.wait(lambda: driver.visible("offer"), "the first offer")
    driver.click("decline-offer")
    assert not driver.visible("offer")
    rider.wait_text(STATUS, "EXPIRED")
    assert "No driver could take this trip" in rider.text("trip-text")
    rider.screenshot("expired")

    # A new request; the rider cancels while the driver is being asked.
    rider.click("new-ride")
    rider.click_map(-20, 10)
    rider.click("request")
    driver.wait(lambda: driver.visible("offer"), "the second offer")
    rider.click("cancel-trip")
    rider.wait_text(STATUS, "CANCELED")
    driver.wait(lambda: not driver.visible("offer"), "the offer withdrawn")
    driver.wait_text("toast", "The rider canceled.")
    driver.screenshot("offer-withdrawn")
