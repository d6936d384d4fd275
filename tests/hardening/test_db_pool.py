"""PostgreSQL connections under load: the real web process (the Procfile's)
borrows from a pool of DB_POOL_MAX and gives each connection back when a
request ends, so the database's connection count stays within the pool
however many requests are in flight, and a request that finds no connection
free within DB_POOL_TIMEOUT_S is answered 503 `unavailable`, never 500.

Before the pool, each request kept a connection on a thread of its own:
300 drivers signing up and logging in took PostgreSQL past
`max_connections` and log-in answered 500 ("too many clients already").

The counts come from `pg_stat_activity`, the web process's connections told
apart by the `application_name` it connects with (PGAPPNAME). The tests on
the real server are about PostgreSQL's connection limit; on SQLite there is
no pool and no connection count to bound, and they are skipped. The settings
(a pool on PostgreSQL only, sized by DB_POOL_MAX) are checked on both.
"""

import asyncio
import json
import threading
import time
from collections import Counter
from contextlib import contextmanager

import httpx
import psycopg
import pytest
import websockets
from django.db import connection

from tests.taxi.test_settings import last_line, production_env, start
from tests.web import web_process

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL's connection limit and pool; SQLite has neither",
)

APP_NAME = "taxi-pool-test-web"
PASSWORD = "Pool-pAssw0rd!42"
HIGH_RATES = {
    "THROTTLE_LOG_IN": "1000000/min",
    "THROTTLE_LOG_IN_USER": "1000000/min",
    "THROTTLE_SIGN_UP": "1000000/min",
    "THROTTLE_TRIP_CREATE": "1000000/min",
}
TRIP = {
    "pick_up_address": "123 Main Street",
    "pick_up_lat": 38.8977,
    "pick_up_lng": -77.0365,
    "drop_off_address": "456 Piney Road",
}


def conninfo() -> str:
    db = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )


def web_connections(observer: psycopg.Connection) -> int:
    """Connections the web process holds to the test database now."""
    row = observer.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        [connection.settings_dict["NAME"], APP_NAME],
    ).fetchone()
    return row[0]


class ConnectionSampler:
    """Samples the web process's connection count every 20 ms on a thread
    of its own, until stopped; `peak` is the most it saw."""

    def __init__(self) -> None:
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._observer = psycopg.connect(conninfo(), autocommit=True)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, web_connections(self._observer))
            self.samples += 1
            self._stop.wait(0.02)

    def __enter__(self) -> "ConnectionSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._observer.close()


def wait_for(check, *, within: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + within
    while not (value := check()):
        assert time.monotonic() < deadline, f"not within {within:.0f}s: {what}"
        time.sleep(every)
    return value


# --- load ---------------------------------------------------------------------------

USERS = 260  # four requests each: 1,040 in all
IN_FLIGHT = 50
POOL_MAX = 8


async def one_account(client: httpx.AsyncClient, n: int, statuses: Counter) -> None:
    """Sign up, log in, list trips, health: an app's first minute."""
    username = f"load{n}@pool.test"

    async def call(kind: str, method: str, path: str, **kwargs) -> httpx.Response:
        response = await client.request(method, path, **kwargs)
        statuses[(kind, response.status_code)] += 1
        return response

    group = "driver" if n % 2 else "rider"
    await call(
        "sign_up",
        "POST",
        "/api/sign_up/",
        json={
            "username": username,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "first_name": "Load",
            "last_name": f"Tester{n}",
            "group": group,
        },
    )
    logged_in = await call(
        "log_in", "POST", "/api/log_in/", json={"username": username, "password": PASSWORD}
    )
    access = logged_in.json().get("access") if logged_in.status_code == 200 else "none"
    await call("trip_list", "GET", "/api/trip/", headers={"Authorization": f"Bearer {access}"})
    await call("health", "GET", "/healthz")


async def mixed_load(base: str) -> Counter:
    """USERS accounts through `one_account`, IN_FLIGHT at a time."""
    statuses: Counter = Counter()
    numbers = iter(range(USERS))
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for n in numbers:
                await one_account(client, n, statuses)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return statuses


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_mixed_load_stays_within_the_pool_and_never_answers_5xx(tmp_path):
    # Given the real web process on PostgreSQL with a pool of 8, allowed to
    # wait long enough for a busy machine (what is measured is the count)
    env = {
        **HIGH_RATES,
        "DB_POOL_MAX": str(POOL_MAX),
        "DB_POOL_TIMEOUT_S": "60",
        "PGAPPNAME": APP_NAME,
    }
    with web_process(tmp_path / "web.log", **env) as web, ConnectionSampler() as sampler:
        # When 1,040 requests (sign-up, log-in, trip list, health) arrive
        # 50 at a time
        started = time.monotonic()
        statuses = asyncio.run(mixed_load(web.base))
        took = time.monotonic() - started

    # Then every one succeeded: none answered 500 or more
    total = sum(statuses.values())
    assert total == 4 * USERS >= 1000
    server_errors = {key: n for key, n in statuses.items() if key[1] >= 500}
    assert server_errors == {}
    expected = {"sign_up": 201, "log_in": 200, "trip_list": 200, "health": 200}
    assert statuses == Counter({(kind, code): USERS for kind, code in expected.items()})
    # and the web process never held more connections than its pool
    assert sampler.samples > 10
    assert 0 < sampler.peak <= POOL_MAX, sampler.peak
    print(
        f"\nPOOL load: requests={total}, in_flight={IN_FLIGHT}, pool_max={POOL_MAX}, "
        f"peak_connections={sampler.peak}, samples={sampler.samples}, "
        f"5xx={sum(server_errors.values())}, seconds={took:.1f}, "
        f"requests_per_s={total / took:.0f}",
        flush=True,
    )


# --- an exhausted pool --------------------------------------------------------------


@contextmanager
def users_table_locked():
    """Every query on the users table waits, holding the connection it runs
    on, until this ends: a stand-in for slow queries filling the pool."""
    with psycopg.connect(conninfo()) as locker:
        locker.execute("LOCK TABLE trips_user IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            locker.rollback()


def waiting_on_lock(observer: psycopg.Connection) -> int:
    row = observer.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = %s AND application_name = %s AND wait_event_type = 'Lock'",
        [connection.settings_dict["NAME"], APP_NAME],
    ).fetchone()
    return row[0]


async def sign_up_and_log_in(client: httpx.AsyncClient, username: str, group: str) -> str:
    body = {
        "username": username,
        "password1": PASSWORD,
        "password2": PASSWORD,
        "first_name": "Pool",
        "last_name": "Tester",
        "group": group,
    }
    assert (await client.post("/api/sign_up/", json=body)).status_code == 201
    logged_in = await client.post("/api/log_in/", json={"username": username, "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.text
    return logged_in.json()["access"]


async def next_error(socket) -> dict:
    """The socket's next `error` frame (pushes before it are skipped)."""
    async with asyncio.timeout(60):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "error":
                return frame


async def exhausted_pool_answers(base: str) -> dict:
    """With the only connection held by a log-in stuck on a lock: what REST,
    the admin, a socket's handshake and an open socket answer."""
    ws_base = base.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        access = await sign_up_and_log_in(client, "held@pool.test", "rider")
        admin_form = await client.get("/admin/login/")
        csrf = admin_form.cookies["csrftoken"]
        async with websockets.connect(f"{ws_base}/taxi/?token={access}") as socket:
            observer = await asyncio.to_thread(psycopg.connect, conninfo(), autocommit=True)
            try:
                with users_table_locked():
                    stuck = asyncio.ensure_future(
                        client.post(
                            "/api/log_in/",
                            json={"username": "held@pool.test", "password": PASSWORD},
                        )
                    )
                    await asyncio.to_thread(
                        wait_for,
                        lambda: waiting_on_lock(observer),
                        within=30,
                        what="a log-in holding the pool's one connection",
                    )
                    started = time.monotonic()
                    rest = await client.get(
                        "/api/trip/", headers={"Authorization": f"Bearer {access}"}
                    )
                    rest_s = time.monotonic() - started
                    admin = await client.post(
                        "/admin/login/",
                        data={
                            "username": "held@pool.test",
                            "password": PASSWORD,
                            "csrfmiddlewaretoken": csrf,
                        },
                        headers={"X-CSRFToken": csrf},
                    )
                    try:
                        async with websockets.connect(f"{ws_base}/taxi/?token={access}"):
                            handshake = 101
                    except websockets.InvalidStatus as refused:
                        handshake = refused.response.status_code
                    await socket.send(json.dumps({"type": "create.trip", "data": TRIP}))
                    frame = await next_error(socket)
                    assert not stuck.done()
                # the lock gone, the stuck log-in finishes normally
                finished = await asyncio.wait_for(stuck, timeout=60)
            finally:
                await asyncio.to_thread(observer.close)
        after = await client.get("/api/trip/", headers={"Authorization": f"Bearer {access}"})
    return {
        "rest": rest,
        "rest_s": rest_s,
        "handshake": handshake,
        "admin": admin,
        "frame": frame,
        "finished": finished,
        "after": after,
    }


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_an_exhausted_pool_answers_503_unavailable_never_500(tmp_path):
    # Given the real web process with a pool of one connection, waited for
    # at most a second, and that connection held by a request stuck on a lock
    env = {
        **HIGH_RATES,
        "DB_POOL_MAX": "1",
        "DB_POOL_TIMEOUT_S": "1",
        "PGAPPNAME": APP_NAME,
    }
    with web_process(tmp_path / "web.log", **env) as web:
        # When REST, the admin (outside DRF), a handshake and a socket each
        # need the database
        answers = asyncio.run(exhausted_pool_answers(web.base))
        log = (tmp_path / "web.log").read_text()

    # Then REST answers 503 `unavailable` after the pool's wait, not a 500
    rest = answers["rest"]
    assert rest.status_code == 503, rest.text
    assert rest.json()["code"] == "unavailable"
    assert isinstance(rest.json()["detail"], str) and rest.json()["detail"]
    assert 1 <= answers["rest_s"] < 30
    # and so does the admin's log-in, which Django serves outside DRF
    assert answers["admin"].status_code == 503, answers["admin"].text
    # and a new socket is refused at the handshake (403, retry), not a 500
    assert answers["handshake"] == 403
    # and an open socket gets an `unavailable` error frame, not `internal`
    frame = answers["frame"]
    assert frame["type"] == "error", frame
    assert frame["data"]["code"] == "unavailable", frame
    # and the request that held the connection, and the next one, succeed
    assert answers["finished"].status_code == 200
    assert answers["after"].status_code == 200
    # and the web process logged the pool's refusal as such
    assert "db.pool_exhausted" in log
    assert "ws.handler_failed" not in log
    assert "Exception inside application" not in log
    print(
        f"\nPOOL exhausted: pool_max=1, wait_s=1, REST {rest.status_code} after "
        f"{answers['rest_s']:.2f}s, admin {answers['admin'].status_code}, "
        f"handshake {answers['handshake']}, frame {frame['data']['code']}",
        flush=True,
    )


# --- settings ------------------------------------------------------------------------

POSTGRES_URL = "postgres://taxi@db.example:5432/taxi"
SHOW_DATABASE = (
    "from django.conf import settings; db = settings.DATABASES['default']; "
    "print(db['ENGINE'], db['CONN_MAX_AGE'], db['OPTIONS'].get('pool'))"
)


def test_postgresql_connections_come_from_a_pool_of_db_pool_max(tmp_path):
    default = start(tmp_path, SHOW_DATABASE, DATABASE_URL=POSTGRES_URL, **production_env())
    sized = start(
        tmp_path,
        SHOW_DATABASE,
        DATABASE_URL=POSTGRES_URL,
        DB_POOL_MAX="7",
        DB_POOL_TIMEOUT_S="2.5",
        **production_env(),
    )

    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == (
        "taxi.postgresql 0 {'min_size': 1, 'max_size': 20, 'timeout': 5}"
    )
    assert sized.stdout.strip() == (
        "taxi.postgresql 0 {'min_size': 1, 'max_size': 7, 'timeout': 2.5}"
    )


def test_sqlite_keeps_persistent_connections_and_no_pool(tmp_path):
    result = start(tmp_path, SHOW_DATABASE, **production_env())

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.sqlite3 60 None"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CONN_MAX_AGE": "60"}, "CONN_MAX_AGE applies to SQLite only"),
        ({"DB_POOL_MAX": "0"}, "DB_POOL_MAX must be at least 1"),
        ({"DB_POOL_MAX": "many"}, "DB_POOL_MAX must be an integer"),
        ({"DB_POOL_TIMEOUT_S": "0"}, "DB_POOL_TIMEOUT_S must be at least 0.1"),
    ],
)
def test_bad_pool_settings_stop_start_up(tmp_path, env, message):
    result = start(tmp_path, DATABASE_URL=POSTGRES_URL, **env, **production_env())

    assert result.returncode != 0
    assert message in last_line(result.stderr)
