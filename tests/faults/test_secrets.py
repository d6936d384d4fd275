"""Secrets stay out of the logs (issue 6, item 5).

A whole trip through the real processes, the way apps do it: sign-up, log-in,
a refused log-in, token refresh, sockets with `?token=` (and a refused one
carrying a refresh token), REST with Bearer, the offer, its acceptance, the
location stream, pick-up, drop-off, log-out. Then every line every process
wrote (release, web, worker, beat, Redis) is searched for every token the
test was issued, every password it used and its session cookies.
"""

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.dispatch.support import km_north
from tests.faults.apps import (
    ACCEPT,
    Api,
    DriverApp,
    LiveSocket,
    report,
)
from tests.faults.processes import (
    web_url,
)
from tests.notifications.support import Browser, apns_token, fcm_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RIDER_PASSWORD = "Rider-s3cret-Pw!41"
DRIVER_PASSWORD = "Driver-s3cret-Pw!42"
WRONG_PASSWORD = "Wrong-s3cret-Pw!43"
PUSH_ENDPOINT = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABsecretsubscription"
ENV = {
    "DISPATCH_OFFER_TIMEOUT_S": "10",
    "DISPATCH_SWEEP_EVERY_S": "1",
    # The most a process will say: what is kept out at DEBUG is kept out at INFO.
    "LOG_LEVEL": "DEBUG",
}


async def test_no_token_or_password_appears_in_any_process_output(fault_stack):
    # Given the real processes
    stack = fault_stack(env=ENV)
    api = Api(web_url(stack))
    driver_app = rider_ws = None
    try:
        # When a rider and a driver sign up and log in, someone fails to log
        # in, and both refresh their access token
        rider = await api.sign_up_and_log_in("rider@faults.test", "rider", RIDER_PASSWORD)
        driver = await api.sign_up_and_log_in("driver@faults.test", "driver", DRIVER_PASSWORD)
        status, _ = await api.call(
            "POST", "/api/log_in/", body={"username": rider.username, "password": WRONG_PASSWORD}
        )
        assert status == 401
        for account in (rider, driver):
            status, body = await api.call(
                "POST", "/api/token/refresh/", body={"refresh": account.refresh}
            )
            assert status == 200
            account.access = body["access"]
            account.refresh = body.get("refresh", account.refresh)

        # and both register their phones (and the rider a browser) for push notifications
        subscription = Browser.make(PUSH_ENDPOINT).subscription()
        devices = {
            "an FCM token": ("fcm", fcm_token(), rider),
            "a Web Push subscription": ("webpush", subscription, rider),
            "an APNs token": ("apns", apns_token(), driver),
        }
        for platform, token, account in devices.values():
            status, _ = await api.call(
                "POST",
                "/api/devices/",
                token=account.access,
                body={"platform": platform, "token": token},
            )
            assert status == 201

        # and a socket is refused for carrying a refresh token instead of an access one
        with pytest.raises(InvalidStatus):
            async with connect(f"{_ws_base(api)}/taxi/?token={rider.refresh}", open_timeout=5):
                pass

        # and the driver goes online over REST and over the socket, the rider
        # requests over REST, the driver accepts the offer over the socket
        status, _ = await api.call(
            "POST", "/api/driver/online/", token=driver.access, body=_at(km_north(0.5))
        )
        assert status == 200
        driver_app = await DriverApp(api, driver, km_north(0.5), then=ACCEPT, drive=False).start()
        rider_ws = await LiveSocket(api, rider).start()
        trip = await api.create_trip(rider)
        started = await rider_ws.next("trip.updated", id=trip["id"])
        assert started["data"]["status"] == "STARTED"

        # and the driver's positions stream to the rider, over the socket and REST
        # (10 m a step: a car's pace, which the speed check lets through)
        for step in range(3):
            await driver_app.live.send("update.location", {**_at(km_north(0.49 - step / 100))})
            await rider_ws.next("driver.location", trip_id=trip["id"])
            await asyncio.sleep(0.3)  # an app's pace, past the forwarding interval
        status, _ = await api.call(
            "POST", "/api/driver/location/", token=driver.access, body=_at(km_north(0.46))
        )
        assert status == 204
        await rider_ws.next("driver.location", trip_id=trip["id"])

        # and the trip is driven to the end over REST, read back, and both log out
        for next_status in ("IN_PROGRESS", "COMPLETED"):
            status, body = await api.call(
                "POST",
                f"/api/trip/{trip['id']}/status/",
                token=driver.access,
                body={"status": next_status},
            )
            assert (status, body["status"]) == (200, next_status)
        assert (await api.trip(rider, trip["id"]))["status"] == "COMPLETED"
        status, listed = await api.call("GET", "/api/trip/", token=driver.access)
        assert status == 200 and [t["id"] for t in listed] == [trip["id"]]
        for account in (rider, driver):
            status, _ = await api.call(
                "POST", "/api/log_out/", token=account.access, body={"refresh": account.refresh}
            )
            assert status == 204
        driver_app.check()
    finally:
        if driver_app is not None:
            await driver_app.close()
        if rider_ws is not None:
            await rider_ws.close()
        await api.close()

    # When every process has stopped, so that its output is complete
    await asyncio.to_thread(stack.stop)
    outputs = await asyncio.to_thread(_outputs, stack.work_dir / "logs")
    assert {"release.log", "web1.log", "worker1.log", "beat.log", "redis.log"} <= set(outputs)

    # Then none of it holds a token the test was issued (nor the unique parts
    # of one), a password it used, or its session cookies
    secrets = {}
    for token in api.issued:
        secrets[token] = "a token"
        header, payload, signature = token.split(".")
        secrets[payload] = "a token's payload"
        secrets[signature] = "a token's signature"
    for password in (RIDER_PASSWORD, DRIVER_PASSWORD, WRONG_PASSWORD):
        secrets[password] = "a password"
    for name, value in api.http.cookies.items():
        secrets[value] = f"the {name} cookie"
    for kind, (_, token, _) in devices.items():
        parts = [token] if isinstance(token, str) else [token["endpoint"], *token["keys"].values()]
        for part in parts:
            secrets[part] = kind
    assert len(api.issued) >= 6  # two log-ins and two refreshes, each an access and a refresh
    leaks = [
        f"{kind} in {name}"
        for name, text in outputs.items()
        for secret, kind in secrets.items()
        if secret in text
    ]
    assert leaks == []

    # and what was searched is the run's real output
    assert "auth.logged_in" in outputs["web1.log"]
    assert outputs["web1.log"].count("devices.registered") == 3
    assert trip["id"] in outputs["worker1.log"]
    assert "Sending due task" in outputs["beat.log"]
    assert "migrations" in outputs["release.log"].lower()
    report(
        "secrets",
        tokens_checked=len(api.issued),
        secrets_checked=len(secrets),
        output_lines=sum(text.count("\n") for text in outputs.values()),
        files=",".join(sorted(outputs)),
    )


def _at(position: tuple[float, float]) -> dict:
    return {"lat": position[0], "lng": position[1]}


def _ws_base(api: Api) -> str:
    return "ws://" + api.base_url.split("://", 1)[1]


def _outputs(logs: Path) -> dict[str, str]:
    """Everything each process wrote, stdout and stderr (the stack sends both
    to logs/<process>.log)."""
    return {path.name: path.read_text(errors="replace") for path in sorted(logs.iterdir())}
