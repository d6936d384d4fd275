"""Throttles against brute force and floods: log-in (per address and per
username from one address), the admin's log-in form (the same), sign-up
(per address) and trip requests (per rider, REST and socket together) answer
429 `{"detail", "code": "rate_limited"}` (the admin: a plain page) with
Retry-After once over their rate, and a throttled request does nothing.

Rates are set low per test; the counters live in the real Redis (emptied
before each test). Who "the address" is follows NUM_PROXIES: the last tests
run the Procfile's web process to show that a made-up X-Forwarded-For does
not buy a fresh budget on the real server either.
"""

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import PASSWORD
from tests.web import web_process
from trips.models import Trip, User

LOG_IN, SIGN_UP, TRIPS = "/api/log_in/", "/api/sign_up/", "/api/trip/"
ADMIN_LOG_IN = "/admin/login/"
WRONG_PASSWORD = "wrong-password"
TRIP = {
    "pick_up_address": "123 Main Street",
    "pick_up_lat": 38.8977,
    "pick_up_lng": -77.0365,
    "drop_off_address": "456 Piney Road",
}


@pytest.fixture
def rates(settings):
    """Set some throttle rates for this test (the others stay out of the way)."""

    def set_rates(**scopes: str) -> None:
        rest = settings.REST_FRAMEWORK
        rates = {**dict.fromkeys(rest["DEFAULT_THROTTLE_RATES"], "1000/min"), **scopes}
        settings.REST_FRAMEWORK = {**rest, "DEFAULT_THROTTLE_RATES": rates}

    return set_rates


@pytest.fixture
def proxies(settings):
    def set_proxies(count: int) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}

    return set_proxies


def log_in(username: str, password: str = WRONG_PASSWORD, **meta):
    return APIClient().post(
        LOG_IN, {"username": username, "password": password}, format="json", **meta
    )


def sign_up(n: int, **meta):
    body = {
        "username": f"flood{n}@example.com",
        "password1": "a-Long-unusual-passphrase-42",
        "password2": "a-Long-unusual-passphrase-42",
        "first_name": "Flood",
        "last_name": "Er",
    }
    return APIClient().post(SIGN_UP, body, format="json", **meta)


def assert_rate_limited(response) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["code"] == "rate_limited"
    assert isinstance(body["detail"], str) and body["detail"]
    assert int(response["Retry-After"]) >= 1


# --- log-in -------------------------------------------------------------------------


@pytest.mark.django_db
def test_log_in_attempts_from_one_address_are_limited_even_with_the_right_password(rates, rider):
    rates(log_in="3/min")
    tried = [log_in(f"guess{n}@example.com", REMOTE_ADDR="198.51.100.1") for n in range(3)]

    right = log_in(rider.username, PASSWORD, REMOTE_ADDR="198.51.100.1")

    assert [r.status_code for r in tried] == [401] * 3
    assert_rate_limited(right)
    assert "access" not in right.json() and "sessionid" not in right.cookies
    # Another address still logs in.
    assert log_in(rider.username, PASSWORD, REMOTE_ADDR="198.51.100.2").status_code == 200


@pytest.mark.django_db
def test_guessing_one_accounts_password_from_one_address_is_limited(rates, rider, make_user):
    # Given a generous limit per address (many people behind one NAT) and 3 a
    # minute per username from one address.
    rates(log_in="1000/min", log_in_user="3/min")
    tried = [log_in(rider.username, REMOTE_ADDR="203.0.113.1") for _ in range(3)]

    # When the next guess from that address spells the name differently, or
    # carries the right password,
    variants = [rider.username.upper(), f"  {rider.username} ", rider.username]
    refused = [log_in(v, REMOTE_ADDR="203.0.113.1") for v in variants]
    right = log_in(rider.username, PASSWORD, REMOTE_ADDR="203.0.113.1")

    # Then all are refused and none logs in; other accounts at that address
    # are untouched.
    assert [r.status_code for r in tried] == [401] * 3
    for response in [*refused, right]:
        assert_rate_limited(response)
    other = make_user("rider")
    assert log_in(other.username, PASSWORD, REMOTE_ADDR="203.0.113.1").status_code == 200


@pytest.mark.django_db
def test_guesses_from_elsewhere_do_not_lock_the_account_owner_out(rates, rider):
    # Given someone who spent the victim's username budget from their address
    # (the per-username limit used to be one budget for the whole world),
    rates(log_in="1000/min", log_in_user="3/min")
    tried = [log_in(rider.username, REMOTE_ADDR="198.51.100.66") for _ in range(4)]
    assert [r.status_code for r in tried] == [401, 401, 401, 429]

    # When the owner logs in from their own address, they get in.
    owner = log_in(rider.username, PASSWORD, REMOTE_ADDR="203.0.113.5")

    assert owner.status_code == 200, owner.content
    assert "access" in owner.json()


@pytest.mark.django_db
def test_a_log_in_body_without_a_username_is_a_400_not_a_throttle_error(rates):
    rates(log_in_user="1/min")

    for body in ({}, {"username": ["x"]}, {"username": 5}, {"username": "  "}):
        response = APIClient().post(LOG_IN, body, format="json")
        assert response.status_code == 400, (body, response.content)


# --- the admin's log-in form ----------------------------------------------------------


def admin_log_in(username: str, password: str = WRONG_PASSWORD, **meta):
    return Client().post(ADMIN_LOG_IN, {"username": username, "password": password}, **meta)


@pytest.mark.django_db
def test_admin_log_in_guesses_on_one_account_are_limited(rates, make_user):
    # Given 3 guesses a minute per username from one address,
    rates(admin_log_in="1000/min", admin_log_in_user="3/min")
    admin_user = make_user("rider", is_staff=True, is_superuser=True)
    tried = [admin_log_in(admin_user.username, REMOTE_ADDR="198.51.100.9") for _ in range(3)]

    # When a fourth comes, even with the right password,
    right = admin_log_in(admin_user.username, PASSWORD, REMOTE_ADDR="198.51.100.9")

    # Then it is a 429 and no session starts; the owner elsewhere gets in.
    assert [r.status_code for r in tried] == [200] * 3  # the form again, with its error
    assert right.status_code == 429
    assert int(right["Retry-After"]) >= 1
    assert "sessionid" not in right.cookies
    elsewhere = admin_log_in(admin_user.username, PASSWORD, REMOTE_ADDR="203.0.113.9")
    assert elsewhere.status_code == 302 and "sessionid" in elsewhere.cookies


@pytest.mark.django_db
def test_admin_log_in_attempts_from_one_address_are_limited_whatever_the_name(rates):
    rates(admin_log_in="3/min")
    tried = [admin_log_in(f"guess{n}", REMOTE_ADDR="198.51.100.10") for n in range(4)]

    assert [r.status_code for r in tried] == [200, 200, 200, 429]
    assert admin_log_in("guess9", REMOTE_ADDR="198.51.100.11").status_code == 200
    # Reading the form is not an attempt.
    assert Client().get(ADMIN_LOG_IN, REMOTE_ADDR="198.51.100.10").status_code == 200


# --- sign-up ------------------------------------------------------------------------


@pytest.mark.django_db
def test_sign_ups_from_one_address_are_limited_and_the_refused_one_writes_nothing(rates):
    rates(sign_up="2/min")
    allowed = [sign_up(n, REMOTE_ADDR="198.51.100.7") for n in range(2)]

    refused = sign_up(3, REMOTE_ADDR="198.51.100.7")

    assert [r.status_code for r in allowed] == [201, 201]
    assert_rate_limited(refused)
    assert not User.objects.filter(username="flood3@example.com").exists()
    assert sign_up(4, REMOTE_ADDR="198.51.100.8").status_code == 201


# --- trip requests --------------------------------------------------------------------


@pytest.mark.django_db
def test_trip_requests_are_limited_per_rider_whatever_the_address(
    rates, rider, make_user, client_for
):
    rates(trip_create="2/min")
    client = client_for(rider)
    # Invalid requests count too: the throttle runs before anything else.
    for n in range(2):
        assert client.post(TRIPS, {}, format="json", REMOTE_ADDR=f"192.0.2.{n}").status_code == 400

    refused = client.post(TRIPS, TRIP, format="json", REMOTE_ADDR="192.0.2.9")

    assert_rate_limited(refused)
    assert not Trip.objects.exists()
    assert client_for(make_user("rider")).post(TRIPS, TRIP, format="json").status_code == 201


@pytest.mark.django_db(transaction=True)
async def test_the_socket_and_rest_share_one_trip_request_budget(
    rates, rider, ws_connect, client_for
):
    # Given a rider who spent their budget over REST,
    rates(trip_create="2/min")
    client = await sync_to_async(client_for)(rider)
    for _ in range(2):
        response = await sync_to_async(client.post)(TRIPS, {}, format="json")
        assert response.status_code == 400
    ws, connected, _ = await ws_connect(rider)
    assert connected

    # When they request a trip over the socket,
    await ws.send_json_to({"type": "create.trip", "data": TRIP, "request_id": "r1"})
    reply = await ws.receive_json_from(timeout=5)

    # Then it is refused the same way, writes nothing, and the socket stays.
    assert reply["type"] == "error"
    assert (reply["data"]["code"], reply["request_id"]) == ("rate_limited", "r1")
    assert not await sync_to_async(Trip.objects.exists)()
    await ws.send_json_to({"type": "echo.message", "data": 1})
    assert await ws.receive_json_from(timeout=5) == {"type": "echo.message", "data": 1}


@pytest.mark.django_db(transaction=True)
async def test_socket_trip_requests_alone_are_limited_too(rates, make_user, ws_connect):
    rates(trip_create="2/min")
    rider = await sync_to_async(make_user)("rider")
    ws, connected, _ = await ws_connect(rider)
    assert connected
    codes = []
    for n in range(3):
        await ws.send_json_to({"type": "create.trip", "data": {}, "request_id": n})
        codes.append((await ws.receive_json_from(timeout=5))["data"]["code"])

    assert codes == ["invalid", "invalid", "rate_limited"]


# --- who "the address" is ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("num_proxies", [None, 0])
def test_without_trusted_proxies_a_made_up_forwarded_for_buys_nothing(rates, proxies, num_proxies):
    # NUM_PROXIES 0 (the default): the connection's address is the client.
    # (Unset, DRF would key on the whole header, a new budget per value.)
    rates(log_in="3/min")
    if num_proxies is not None:
        proxies(num_proxies)
    spoofed = [
        log_in("x@example.com", REMOTE_ADDR="198.51.100.20", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
        for n in range(4)
    ]

    assert [r.status_code for r in spoofed[:3]] == [401] * 3
    assert_rate_limited(spoofed[3])


@pytest.mark.django_db
def test_behind_one_trusted_proxy_the_address_it_saw_is_the_client(rates, proxies):
    # The proxy appends the address it saw; what the client wrote before it
    # changes nothing, and each real client has its own budget.
    rates(log_in="3/min")
    proxies(1)

    def through_proxy(client_address: str, made_up: str):
        return log_in(
            "x@example.com",
            REMOTE_ADDR="10.0.0.1",  # the proxy
            HTTP_X_FORWARDED_FOR=f"{made_up}, {client_address}",
        )

    tried = [through_proxy("203.0.113.50", f"192.0.2.{n}") for n in range(4)]

    assert [r.status_code for r in tried[:3]] == [401] * 3
    assert_rate_limited(tried[3])
    assert through_proxy("203.0.113.51", "192.0.2.1").status_code == 401


# --- on the real server ----------------------------------------------------------------


def post_json(base: str, path: str, body: dict, headers: dict) -> int:
    request = urllib.request.Request(  # noqa: S310 - our own test server
        base + path,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("num_proxies", "forwarded_for"),
    [
        ("0", lambda n: f"10.9.0.{n}"),  # no proxy: the header is the client's own
        ("1", lambda n: f"10.9.0.{n}, 203.0.113.77"),  # behind one: the last hop counts
    ],
    ids=["no-proxy", "one-proxy"],
)
def test_the_real_server_keys_log_in_on_the_trusted_address(tmp_path, num_proxies, forwarded_for):
    env = {"THROTTLE_LOG_IN": "3/min", "NUM_PROXIES": num_proxies}
    with web_process(tmp_path / "web.log", **env) as web:
        statuses = [
            post_json(
                web.base,
                LOG_IN,
                {"username": "x@example.com", "password": WRONG_PASSWORD},
                {"X-Forwarded-For": forwarded_for(n)},
            )
            for n in range(4)
        ]

    assert statuses == [401, 401, 401, 429]


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_real_server_limits_admin_password_guessing(tmp_path, make_user):
    # Given the admin as a browser meets it: a CSRF cookie and the form's token,
    admin_user = make_user("rider", is_staff=True, is_superuser=True)
    with web_process(tmp_path / "web.log") as web:
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        with opener.open(web.base + ADMIN_LOG_IN, timeout=10) as page:
            form = page.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)

        # When 30 wrong passwords are sent (default rates),
        answers = []
        for _ in range(30):
            body = urllib.parse.urlencode(
                {
                    "csrfmiddlewaretoken": token,
                    "username": admin_user.username,
                    "password": WRONG_PASSWORD,
                }
            ).encode()
            request = urllib.request.Request(web.base + ADMIN_LOG_IN, body, method="POST")  # noqa: S310
            try:
                with opener.open(request, timeout=10) as response:
                    answers.append((response.status, None))
            except urllib.error.HTTPError as error:
                answers.append((error.code, error.headers.get("Retry-After")))

    # Then the first 5 are answered and every one after is a 429 with Retry-After.
    statuses = [status for status, _ in answers]
    assert statuses[:5] == [200] * 5, statuses
    assert statuses[5:] == [429] * 25, statuses
    assert all(int(retry_after) >= 1 for _, retry_after in answers[5:])
