"""No token or password reaches a log line, the web server's own output included."""

import http.cookies
import io
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from taxi.infra.logging import RedactSecretsFilter, StructuredFormatter, redact
from tests.web import web_process

ROOT = Path(__file__).resolve().parents[2]
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiaWQiOjF9"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)


# --- redact ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"GET /taxi/?token={JWT}", "GET /taxi/?token=[redacted]"),
        ("GET /taxi/?x=1&token=abc&y=2", "GET /taxi/?x=1&token=[redacted]&y=2"),
        (f"a jwt {JWT} in prose", "a jwt [redacted] in prose"),
        ("refresh=abc access=def", "refresh=[redacted] access=[redacted]"),
        ("password1=hunter2&password2=hunter2", "password1=[redacted]&password2=[redacted]"),
        (
            "Cookie: sessionid=abc; csrftoken=def",
            "Cookie: sessionid=[redacted]; csrftoken=[redacted]",
        ),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]"),
        ("authorization: bearer abc", "authorization: bearer [redacted]"),
        ('{"password": "hunter2", "n": 1}', '{"password": "[redacted]", "n": 1}'),
        ('{"refresh": "a\\"b", "access": ""}', '{"refresh": "[redacted]", "access": "[redacted]"}'),
    ],
)
def test_redact_scrubs_credentials(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "dispatch.offer_expired",
        "trip 3f1c0c9e-8a43-4c8e-9d7a-1b2c3d4e5f60 moved to STARTED",
        "GET /api/trip/?status=REQUESTED&limit=10",
        '{"trip_id": "abc", "driver_id": 5}',
    ],
)
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def make_record(msg: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("taxi.test", logging.INFO, __file__, 1, msg, args or None, None)
    record.__dict__.update(extra)
    return record


def test_structured_formatter_writes_one_json_object_with_the_extras():
    record = make_record("dispatch.offer_expired", trip_id="t-1", driver_id=7, when=object())

    line = StructuredFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["event"] == "dispatch.offer_expired"
    assert entry["level"] == "info"
    assert entry["logger"] == "taxi.test"
    assert entry["trip_id"] == "t-1"
    assert entry["driver_id"] == 7
    assert entry["when"].startswith("<object object")  # not JSON: written as text
    assert entry["ts"].endswith("+00:00")
    assert not {"msg", "args", "levelno", "pathname", "exc_info"} & set(entry)


def test_structured_formatter_scrubs_secrets_in_extras_and_tracebacks():
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        record = make_record("ws.failed", url=f"/taxi/?token={JWT}", password="hunter2")
        record.exc_info = sys.exc_info()

    line = StructuredFormatter().format(record)

    assert JWT not in line
    assert "hunter2" not in line
    entry = json.loads(line)
    assert entry["url"] == "/taxi/?token=[redacted]"
    assert entry["password"] == "[redacted]"
    assert "ValueError: bad token [redacted]" in entry["exc"]


def test_redact_filter_rewrites_the_message_of_any_formatter():
    record = make_record("GET %s", f"/taxi/?token={JWT}")

    assert RedactSecretsFilter().filter(record)

    assert record.getMessage() == "GET /taxi/?token=[redacted]"
    assert logging.Formatter().format(record) == "GET /taxi/?token=[redacted]"


def test_redact_filter_lets_a_bad_log_call_fail_inside_logging_not_in_the_caller():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    logger = logging.Logger("taxi.test.bad_call")
    logger.addHandler(handler)

    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        logger.info("%s and %s", "only one")  # a bug in a log call must not break a request
    finally:
        logging.raiseExceptions = raise_exceptions

    assert stream.getvalue() == ""


# --- the real server --------------------------------------------------------------


class Browser:
    """Plain HTTP with cookies, like an app would talk to the server (no proxies)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, body: dict | None = None, headers=None):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        # The base is always the test's own http://127.0.0.1 server.
        request = urllib.request.Request(self.base + path, data, headers, method=method)  # noqa: S310
        try:
            with self.opener.open(request, timeout=10) as response:
                status, raw, answer = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, answer = error.code, error.read(), error.headers
        for header in answer.get_all("Set-Cookie") or []:
            for name, morsel in http.cookies.SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        is_json = answer.get_content_type() == "application/json"
        return status, (json.loads(raw) if is_json and raw else raw)


@pytest.fixture
def daphne(transactional_db, tmp_path):
    """The Procfile's `web` on the test database, as talkative as an operator
    could make it. Yields (base URL, the process, the file holding its output)."""
    output = tmp_path / "daphne.log"
    env = {"SECRET_KEY": "log-test-" + os.urandom(24).hex(), "LOG_LEVEL": "DEBUG"}
    with web_process(output, **env) as web:
        yield web.base, web.process, output


def test_no_credential_reaches_the_servers_output(daphne):
    base, process, output = daphne
    password = "Wh1sper-" + os.urandom(6).hex()
    app = Browser(base)
    ws_base = base.replace("http://", "ws://")

    # Given a user who signs up and logs in (a session, and a token pair)
    status, _ = app.request(
        "POST",
        "/api/sign_up/",
        {
            "username": "logs@example.com",
            "password1": password,
            "password2": password,
            "first_name": "Log",
            "last_name": "Test",
        },
    )
    assert status == 201
    status, body = app.request(
        "POST", "/api/log_in/", {"username": "logs@example.com", "password": password}
    )
    assert status == 200
    access, refresh = body["access"], body["refresh"]
    session = app.cookies["sessionid"]

    # When they use every credential in every place a client might put it
    bearer = {"Authorization": f"Bearer {access}"}
    status, body = Browser(base).request("GET", "/api/trip/", headers=bearer)
    assert (status, body) == (200, [])
    status, _ = app.request("GET", "/api/trip/")  # by the session cookie
    assert status == 200
    status, _ = Browser(base).request("GET", "/healthz", headers={"Authorization": "Bearer x.y.z"})
    assert status == 200
    status, body = Browser(base).request("POST", "/api/token/refresh/", {"refresh": refresh})
    assert status == 200
    refreshed = body["access"]

    with connect(f"{ws_base}/taxi/?token={access}", proxy=None, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "echo.message", "data": "hello"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "echo.message", "data": "hello"}
    with connect(
        f"{ws_base}/taxi/",
        proxy=None,
        open_timeout=10,
        additional_headers={"Cookie": f"sessionid={session}", "Origin": base},
    ) as ws:
        ws.send(json.dumps({"type": "echo.message", "data": "by session"}))
        assert json.loads(ws.recv(timeout=10))["data"] == "by session"
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{ws_base}/taxi/?token={refresh}", proxy=None, open_timeout=10)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(f"{ws_base}/taxi/?token={access}x", proxy=None, open_timeout=10)

    # Tokens in a plain HTTP URL (a client that never upgraded, a probe)
    status, _ = Browser(base).request("GET", f"/taxi/?token={access}")
    assert status == 404
    status, _ = Browser(base).request("GET", f"/healthz?refresh={refresh}")
    assert status == 200

    status, _ = app.request(
        "POST",
        "/api/log_out/",
        {"refresh": refresh},
        headers={"X-CSRFToken": app.cookies["csrftoken"]},
    )
    assert status == 204
    status, _ = Browser(base).request("POST", "/api/token/refresh/", {"refresh": refresh})
    assert status == 401

    process.terminate()
    process.wait(timeout=10)
    text = output.read_text(errors="replace")

    # Then the server said what happened
    assert text.strip(), "daphne wrote nothing: the test would prove nothing"
    for event in ("auth.signed_up", "auth.logged_in", "ws.connected", "ws.refused_token"):
        assert event in text, f"{event!r} missing from the server's output:\n{text}"
    # ... and no credential, nor a recognisable part of one, is in any line of it
    secrets = {
        "access": access,
        "refresh": refresh,
        "refreshed access": refreshed,
        "password": password,
        "session id": session,
    }
    for token in (access, refresh, refreshed):
        secrets[f"signature of {token[:12]}"] = token.rsplit(".", 1)[1]
    for name, secret in secrets.items():
        assert secret not in text, f"the {name} appears in the server's output:\n{text}"
