"""The `/taxi/` handshake: Origin check, then an access token or the session."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from tests.conftest import PASSWORD
from trips.auth import tokens_for
from trips.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(user: User, password: str = PASSWORD) -> tuple[Client, dict]:
    """A real log-in through the endpoint: the client holds the session
    cookie, the answer the token pair."""
    client = Client()
    response = client.post(
        "/api/log_in/",
        {"username": user.username, "password": password},
        content_type="application/json",
    )
    assert response.status_code == 200
    return client, response.json()


def cookie_of(client: Client) -> str:
    """The `Cookie` header a browser would send with the client's session."""
    return f"sessionid={client.cookies['sessionid'].value}"


@database_sync_to_async
def session_cookie(user: User, password: str = PASSWORD) -> str:
    """Log in through the real endpoint; the `Cookie` header a browser would send."""
    client, _ = log_in(user, password)
    return cookie_of(client)


@database_sync_to_async
def access_token(user: User) -> str:
    return tokens_for(user)["access"]


async def assert_echoes(ws) -> None:
    await ws.send_json_to({"type": "echo.message", "data": {"n": 1}, "request_id": "r1"})
    assert await ws.receive_json_from(timeout=5) == {
        "type": "echo.message",
        "data": {"n": 1},
        "request_id": "r1",
    }


async def test_connects_with_an_access_token(ws_connect, rider):
    ws, connected, _ = await ws_connect(rider)

    assert connected
    await assert_echoes(ws)


async def test_connects_with_the_session_cookie(ws_connect, rider):
    cookie = await session_cookie(rider)

    ws, connected, _ = await ws_connect(path="/taxi/", headers=[(b"cookie", cookie.encode())])

    assert connected
    await assert_echoes(ws)


async def test_the_socket_belongs_to_the_token_user(ws_connect, rider, driver):
    """The user behind the token joins their own stream and nobody else's."""
    from taxi.infra import push
    from trips import events

    ws, connected, _ = await ws_connect(driver)
    assert connected

    await push.apush([rider.pk], events.frame("test.push", {"to": "rider"}))
    await push.apush([driver.pk], events.frame("test.push", {"to": "driver"}))

    assert await ws.receive_json_from(timeout=5) == {"type": "test.push", "data": {"to": "driver"}}
    assert await ws.receive_nothing()


async def test_refused_without_credentials(ws_connect):
    _, connected, _ = await ws_connect(path="/taxi/")

    assert not connected


@pytest.mark.parametrize(
    "token",
    ["garbage", "eyJ.eyJ.x", "", "a" * 5000],
    ids=["garbage", "jwt-shaped", "empty", "long"],
)
async def test_refused_with_a_bad_token(ws_connect, token):
    _, connected, _ = await ws_connect(path=f"/taxi/?token={token}")

    assert not connected


async def test_refused_with_an_expired_token(ws_connect, rider):
    token = AccessToken.for_user(rider)
    token.set_exp(lifetime=timedelta(seconds=-1))

    _, connected, _ = await ws_connect(path=f"/taxi/?token={token}")

    assert not connected


async def test_refused_with_a_refresh_token(ws_connect, rider):
    refresh = (await database_sync_to_async(tokens_for)(rider))["refresh"]

    _, connected, _ = await ws_connect(path=f"/taxi/?token={refresh}")

    assert not connected


async def test_refused_with_a_token_signed_by_another_key(ws_connect, rider):
    import jwt

    forged = jwt.encode(
        {**AccessToken.for_user(rider).payload, "id": rider.pk},
        "not-the-site-key-" * 4,
        algorithm="HS256",
    )

    _, connected, _ = await ws_connect(path=f"/taxi/?token={forged}")

    assert not connected


async def test_refused_with_the_token_of_a_deactivated_user(ws_connect, make_user):
    user = await database_sync_to_async(make_user)()
    token = await access_token(user)
    await User.objects.filter(pk=user.pk).aupdate(is_active=False)

    _, connected, _ = await ws_connect(path=f"/taxi/?token={token}")

    assert not connected


async def test_refused_with_the_token_of_a_deleted_user(ws_connect, make_user):
    user = await database_sync_to_async(make_user)()
    token = await access_token(user)
    await User.objects.filter(pk=user.pk).adelete()

    _, connected, _ = await ws_connect(path=f"/taxi/?token={token}")

    assert not connected


async def test_refused_with_the_session_of_a_deactivated_user(ws_connect, make_user):
    user = await database_sync_to_async(make_user)()
    cookie = await session_cookie(user)
    await User.objects.filter(pk=user.pk).aupdate(is_active=False)

    _, connected, _ = await ws_connect(path="/taxi/", headers=[(b"cookie", cookie.encode())])

    assert not connected


async def test_refused_with_a_made_up_session(ws_connect):
    _, connected, _ = await ws_connect(path="/taxi/", headers=[(b"cookie", b"sessionid=made-up")])

    assert not connected


async def test_refused_after_log_out_ends_the_session(ws_connect, rider):
    @database_sync_to_async
    def log_in_and_out() -> str:
        client = Client()
        client.post(
            "/api/log_in/",
            {"username": rider.username, "password": PASSWORD},
            content_type="application/json",
        )
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        assert client.post("/api/log_out/", content_type="application/json").status_code == 204
        return cookie

    cookie = await log_in_and_out()

    _, connected, _ = await ws_connect(path="/taxi/", headers=[(b"cookie", cookie.encode())])

    assert not connected


async def test_a_bad_token_is_refused_even_with_a_good_session(ws_connect, rider):
    """A token that was given is judged alone, never downgraded to the session."""
    cookie = await session_cookie(rider)

    _, connected, _ = await ws_connect(
        path="/taxi/?token=garbage", headers=[(b"cookie", cookie.encode())]
    )

    assert not connected


@pytest.mark.parametrize(
    "origin",
    [
        b"http://evil.example.com",
        b"https://localhost.evil.example.com",
        b"http://127.0.0.1.evil.example.com:8000",
        b"null",
        b"localhost",
        b"",
    ],
)
async def test_refused_with_a_foreign_origin_even_with_a_good_token(ws_connect, rider, origin):
    token = await access_token(rider)

    _, connected, _ = await ws_connect(path=f"/taxi/?token={token}", headers=[(b"origin", origin)])

    assert not connected


@pytest.mark.parametrize(
    "origin",
    [b"http://localhost:8000", b"https://127.0.0.1", b"http://testserver", b"HTTP://LOCALHOST"],
)
async def test_accepted_with_an_allowed_origin(ws_connect, rider, origin):
    token = await access_token(rider)

    ws, connected, _ = await ws_connect(path=f"/taxi/?token={token}", headers=[(b"origin", origin)])

    assert connected
    await assert_echoes(ws)


async def test_origin_follows_allowed_hosts(ws_connect, rider, settings):
    settings.ALLOWED_HOSTS = ["taxi.example.com"]
    token = await access_token(rider)

    _, refused, _ = await ws_connect(
        path=f"/taxi/?token={token}", headers=[(b"origin", b"http://localhost:8000")]
    )
    ws, accepted, _ = await ws_connect(
        path=f"/taxi/?token={token}", headers=[(b"origin", b"https://taxi.example.com")]
    )

    assert not refused
    assert accepted


async def test_allowed_origin_still_needs_credentials(ws_connect):
    _, connected, _ = await ws_connect(
        path="/taxi/", headers=[(b"origin", b"http://localhost:8000")]
    )

    assert not connected


async def test_accepted_without_origin_when_the_token_is_good(ws_connect, rider):
    token = await access_token(rider)

    ws, connected, _ = await ws_connect(path=f"/taxi/?token={token}", headers=[])

    assert connected
    await assert_echoes(ws)
