"""A socket never outlives the credentials that opened it (PROTOCOL.md,
"WebSocket, extended"): closed 4001 at its access token's expiry unless
`auth.refresh` moved it, 4003 at log-out of its session or log-in and at the
user's deactivation. Against the real ASGI app, database and Redis; tokens
live a few seconds so the tests wait for the real expiry.
"""

import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.taxi import test_ws_handshake as handshake
from tests.trips.factories import TRIP_REQUEST
from tests.trips.test_consumer import QUIET_S, answers_echo, open_socket, request
from trips.auth import LOGIN_CLAIM, tokens_for
from trips.models import Trip, User

pytestmark = pytest.mark.django_db(transaction=True)

SHORT_S = 2  # a token's life in these tests
EXPIRED, REVOKED = 4001, 4003


@database_sync_to_async
def short_access_token(user: User, *, seconds: float = SHORT_S) -> str:
    """An access token of a real log-in (with its login claim), expiring soon."""
    refresh = RefreshToken(tokens_for(user)["refresh"])
    access = refresh.access_token
    access.set_exp(lifetime=timedelta(seconds=seconds))
    return str(access)


# A real log-in: a session (the client's cookie) and a token pair.
log_in = database_sync_to_async(handshake.log_in)


@database_sync_to_async
def log_out(client: Client, body: dict | None = None, **headers) -> None:
    response = client.post("/api/log_out/", body or {}, content_type="application/json", **headers)
    assert response.status_code == 204, response.content


async def token_socket(ws_connect, access: str):
    ws, connected, code = await ws_connect(path=f"/taxi/?token={access}")
    assert connected, code
    return ws


async def session_socket(ws_connect, client: Client):
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    ws, connected, code = await ws_connect(path="/taxi/", headers=[(b"cookie", cookie)])
    assert connected, code
    return ws


async def closed_with(ws, *, within_s: float = 10) -> int:
    """Read until the server closes the socket; its close code. Any frame
    before the close fails the test: control messages never reach the client."""
    output = await ws.receive_output(timeout=within_s)
    assert output["type"] == "websocket.close", output
    return output["code"]


# --- expiry -------------------------------------------------------------------------


async def test_the_socket_closes_4001_when_its_access_token_expires(ws_connect, rider):
    ws = await token_socket(ws_connect, await short_access_token(rider))
    assert await answers_echo(ws)

    assert await closed_with(ws) == EXPIRED

    # What it sends after is not acted on: no trip 8 s after expiry.
    await ws.send_json_to({"type": "create.trip", "data": TRIP_REQUEST})
    assert await ws.receive_nothing(timeout=QUIET_S)
    assert not await database_sync_to_async(Trip.objects.exists)()


async def test_auth_refresh_keeps_the_socket_past_the_old_expiry(ws_connect, rider):
    ws = await token_socket(ws_connect, await short_access_token(rider))
    fresh = await short_access_token(rider, seconds=SHORT_S + 4)
    started = time.time()

    reply = await request(ws, "auth.refresh", {"access": fresh})

    assert reply["type"] == "auth.refreshed", reply
    assert reply["request_id"] == "req-1"
    # Open well past the first token's expiry, still answering...
    assert await ws.receive_nothing(timeout=SHORT_S + 1)
    assert await answers_echo(ws)
    # ...and closed at the new one's.
    assert await closed_with(ws) == EXPIRED
    assert time.time() - started >= SHORT_S + 2


@pytest.mark.parametrize("which", ["garbage", "another_users", "expired", "refresh_token"])
async def test_a_refused_refresh_is_an_error_and_the_old_expiry_stands(
    ws_connect, rider, make_user, which
):
    ws = await token_socket(ws_connect, await short_access_token(rider))
    other = await database_sync_to_async(make_user)("rider")
    access = {
        "garbage": "not.a.token",
        "another_users": await short_access_token(other, seconds=60),
        "expired": await short_access_token(rider, seconds=-1),
        "refresh_token": (await database_sync_to_async(tokens_for)(rider))["refresh"],
    }[which]

    reply = await request(ws, "auth.refresh", {"access": access})

    assert reply["type"] == "error", reply
    assert reply["data"]["code"] == "not_authenticated"
    assert await answers_echo(ws)
    assert await closed_with(ws) == EXPIRED


async def test_auth_refresh_without_a_token_is_invalid(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    reply = await request(ws, "auth.refresh", {"access": 5})

    assert reply["data"]["code"] == "invalid"
    assert "access" in reply["data"]["errors"]


# --- log-out ------------------------------------------------------------------------


async def test_log_out_closes_the_sockets_of_that_log_in_only(ws_connect, rider):
    # Given two devices, each logged in, each with a socket on its access token.
    phone, phone_tokens = await log_in(rider)
    _tablet, tablet_tokens = await log_in(rider)
    phone_ws = await token_socket(ws_connect, phone_tokens["access"])
    tablet_ws = await token_socket(ws_connect, tablet_tokens["access"])

    # When the phone logs out, revoking its refresh token.
    await log_out(phone, {"refresh": phone_tokens["refresh"]})

    # Then the phone's socket closes 4003, the tablet's stays and answers.
    assert await closed_with(phone_ws) == REVOKED
    assert await tablet_ws.receive_nothing(timeout=QUIET_S)
    assert await answers_echo(tablet_ws)
    # And the phone's access token opens no socket and refreshes none.
    _, connected, _ = await ws_connect(path=f"/taxi/?token={phone_tokens['access']}")
    assert not connected
    reply = await request(tablet_ws, "auth.refresh", {"access": phone_tokens["access"]})
    assert reply["data"]["code"] == "not_authenticated"


def test_log_out_refuses_that_log_ins_access_tokens_on_rest_too(rider):
    phone, tablet = tokens_for(rider), tokens_for(rider)

    def get_trips(access: str) -> int:
        return Client().get("/api/trip/", HTTP_AUTHORIZATION=f"Bearer {access}").status_code

    assert get_trips(phone["access"]) == 200
    response = Client().post(
        "/api/log_out/",
        {"refresh": phone["refresh"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {phone['access']}",
    )
    assert response.status_code == 204

    refused = Client().get("/api/trip/", HTTP_AUTHORIZATION=f"Bearer {phone['access']}")
    assert refused.status_code == 401
    assert refused.json()["code"] == "not_authenticated"
    assert get_trips(tablet["access"]) == 200


async def test_log_out_with_a_bearer_token_closes_the_log_ins_sockets(ws_connect, rider):
    tokens = await database_sync_to_async(tokens_for)(rider)
    ws = await token_socket(ws_connect, tokens["access"])

    await log_out(
        Client(), {"refresh": tokens["refresh"]}, HTTP_AUTHORIZATION=f"Bearer {tokens['access']}"
    )

    assert await closed_with(ws) == REVOKED


async def test_log_out_of_a_session_closes_its_sockets_only(ws_connect, rider):
    browser, _ = await log_in(rider)
    other_browser, _ = await log_in(rider)
    browser_ws = await session_socket(ws_connect, browser)
    other_ws = await session_socket(ws_connect, other_browser)
    app_ws = await open_socket(ws_connect, rider)

    await log_out(browser)

    assert await closed_with(browser_ws) == REVOKED
    for ws in (other_ws, app_ws):
        assert await ws.receive_nothing(timeout=QUIET_S)
        assert await answers_echo(ws)


async def test_a_refreshed_socket_follows_its_new_log_in(ws_connect, rider):
    # Opened with the phone's token, refreshed with the tablet's: the phone's
    # log-out no longer concerns it, the tablet's does.
    phone, phone_tokens = await log_in(rider)
    tablet, tablet_tokens = await log_in(rider)
    ws = await token_socket(ws_connect, phone_tokens["access"])
    assert (await request(ws, "auth.refresh", {"access": tablet_tokens["access"]}))[
        "type"
    ] == "auth.refreshed"

    await log_out(phone, {"refresh": phone_tokens["refresh"]})
    assert await ws.receive_nothing(timeout=QUIET_S)

    await log_out(tablet, {"refresh": tablet_tokens["refresh"]})
    assert await closed_with(ws) == REVOKED


# --- deactivation -------------------------------------------------------------------


@database_sync_to_async
def deactivate(user: User) -> None:
    user.is_active = False
    user.save()


async def test_deactivating_the_user_closes_all_their_sockets(ws_connect, rider, driver):
    browser, _ = await log_in(rider)
    sockets = [await open_socket(ws_connect, rider), await session_socket(ws_connect, browser)]
    bystander = await open_socket(ws_connect, driver)

    await deactivate(rider)

    for ws in sockets:
        assert await closed_with(ws) == REVOKED
    assert await answers_echo(bystander)


async def test_deleting_the_user_closes_their_sockets(ws_connect, make_user):
    rider = await database_sync_to_async(make_user)("rider")
    ws = await open_socket(ws_connect, rider)

    await database_sync_to_async(rider.delete)()

    assert await closed_with(ws) == REVOKED


async def test_saving_an_active_user_closes_nothing(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    await database_sync_to_async(rider.save)()

    assert await ws.receive_nothing(timeout=QUIET_S)
    assert await answers_echo(ws)


def test_the_login_claim_is_in_both_tokens_and_differs_per_log_in(rider):
    first, second = tokens_for(rider), tokens_for(rider)

    claim = RefreshToken(first["refresh"])[LOGIN_CLAIM]
    assert AccessToken(first["access"])[LOGIN_CLAIM] == claim
    assert AccessToken(str(RefreshToken(first["refresh"]).access_token))[LOGIN_CLAIM] == claim
    assert RefreshToken(second["refresh"])[LOGIN_CLAIM] != claim
