"""What the real web process (the Procfile's `web`) shows a client on the
network when a request goes wrong.

- With DEBUG on, error pages (a Host not allowed, a body Django will not
  read, a path out of the media directory, an unknown page) never show a
  password, though DATABASE_URL and REDIS_URL carry one: here REDIS_URL
  points at a Redis that requires it (and on PostgreSQL, DATABASE_URL too).
- On API paths every error is `{"detail", "code"}` JSON, DEBUG on or off.
- A body over the limit is refused from its headers with a 413, before it
  is sent: a client announcing 100 MB is answered at once (taxi/server.py).
"""

import http.client
import json
import socket
import subprocess
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.db import connection

from scripts.stack import free_port, redis_server_binary
from taxi.http_errors import request_body_limit
from tests.web import database_url, web_process

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SECRET = "Sup3r-s3cret-pw"  # noqa: S105 - the password that must not show
ANSWER_TIMEOUT_S = 10


@contextmanager
def redis_with_password(data_dir: Path):
    """A Redis of its own that refuses clients without SECRET."""
    port = free_port()
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind", "127.0.0.1", "--port", str(port), "--requirepass", SECRET,
            "--save", "", "--appendonly", "no", "--dir", str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port, password=SECRET, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the private Redis did not start"
                time.sleep(0.05)
        yield f"redis://:{SECRET}@127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def database_url_with_password() -> str:
    """The test database's URL, with SECRET as its password where the URL
    can carry one (PostgreSQL here accepts it, checking none)."""
    url = database_url()
    if connection.vendor != "postgresql" or connection.settings_dict["PASSWORD"]:
        return url
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=parts.netloc.replace("@", f":{SECRET}@", 1)).geturl()


@pytest.fixture(params=["debug-on", "debug-off"])
def web(request, tmp_path):
    debug = "1" if request.param == "debug-on" else "0"
    with (
        redis_with_password(tmp_path) as redis_url,
        web_process(
            tmp_path / "web.log",
            DEBUG=debug,
            REDIS_URL=redis_url,
            DATABASE_URL=database_url_with_password(),
        ) as web,
    ):
        yield web
    # Nor in what it wrote.
    assert SECRET not in (tmp_path / "web.log").read_text()


def fetch(base: str, method: str, path: str, body: bytes | None = None, headers=None):
    """One request as written (the path is not normalised): (status, headers, body)."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=ANSWER_TIMEOUT_S)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def assert_json_error(answer, status: int, code: str) -> None:
    got_status, headers, body = answer
    assert got_status == status, body[:500]
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["code"] == code


def multipart_form(size: int) -> tuple[bytes, dict]:
    """A form whose one text field is `size` bytes long (no file)."""
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
        + b"x" * size
        + b"\r\n--b0undary--\r\n"
    )
    return body, {"Content-Type": "multipart/form-data; boundary=b0undary"}


# --- error pages ---------------------------------------------------------------------


def test_error_pages_never_show_a_password(web, request):
    big_form, form_headers = multipart_form(3 * 1024 * 1024)
    # A CSRF cookie, so that Django reads the form (and finds it too big).
    form_headers["Cookie"] = "csrftoken=" + "a" * 32
    answers = {
        "host not allowed": fetch(web.base, "GET", "/", headers={"Host": "evil.example"}),
        "admin, host not allowed": fetch(
            web.base, "GET", "/admin/", headers={"Host": "evil.example"}
        ),
        "form too big": fetch(web.base, "POST", "/admin/login/", big_form, form_headers),
        "out of media": fetch(web.base, "GET", "/media/../x"),
        "unknown page": fetch(web.base, "GET", "/no-such-page/"),
    }

    for what, (status, _, body) in answers.items():
        assert 400 <= status < 500, (what, status)
        assert SECRET.encode() not in body, what
        assert urllib.parse.quote(SECRET).encode() not in body, what
    if request.node.callspec.params["web"] == "debug-on":
        # The debug page did list the settings, with the URLs scrubbed.
        page = answers["host not allowed"][2]
        assert b"DisallowedHost" in page and b"REDIS_URL" in page
        assert b"redis://********@127.0.0.1" in page
        if connection.vendor == "postgresql":
            assert b"postgres://********@" in page


# --- API paths: JSON -------------------------------------------------------------------


def test_api_errors_are_json_in_every_mode(web):
    assert_json_error(fetch(web.base, "GET", "/api/no-such-thing/"), 404, "not_found")
    for path in ("/api/trip/", "/healthz"):
        answer = fetch(web.base, "GET", path, headers={"Host": "evil.example"})
        assert_json_error(answer, 400, "invalid")
        assert SECRET.encode() not in answer[2]
    too_big = b'{"username": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    answer = fetch(web.base, "POST", "/api/log_in/", too_big, {"Content-Type": "application/json"})
    assert_json_error(answer, 413, "too_large")


# --- bodies refused from their headers ---------------------------------------------------


def raw_exchange(base: str, head: bytes, body_chunks=()) -> tuple[bytes, float]:
    """Send `head` (and `body_chunks`, stopping if the server closes), then
    read the answer until the server closes; (answer, seconds to its first byte)."""
    parts = urllib.parse.urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=ANSWER_TIMEOUT_S) as sock:
        started = time.monotonic()
        sock.sendall(head)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break
        answer = sock.recv(65536)  # the first bytes; times out if none come
        first_byte_s = time.monotonic() - started
        while data := sock.recv(65536):
            answer += data
    return answer, first_byte_s


def parse(answer: bytes) -> tuple[int, dict, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def plain_web(tmp_path):
    with web_process(tmp_path / "web.log") as web:
        yield web


@pytest.mark.parametrize(
    ("path", "content_type", "expect"),
    [
        ("/api/sign_up/", "multipart/form-data; boundary=b0undary", False),
        ("/api/sign_up/", "multipart/form-data; boundary=b0undary", True),
        ("/api/log_in/", "application/json", False),
        ("/admin/login/", "application/x-www-form-urlencoded", False),
    ],
    ids=["multipart", "multipart-expect-100", "json", "admin-form"],
)
def test_a_request_announcing_100_mb_is_refused_before_its_body(
    plain_web, path, content_type, expect
):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n"
        + ("Expect: 100-continue\r\n" if expect else "")
        + "\r\n"
    ).encode()

    answer, first_byte_s = raw_exchange(plain_web.base, head)  # and no body at all

    status, headers, body = parse(answer)
    assert status == 413, answer[:300]  # not `100 Continue`: no body is invited
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["code"] == "too_large"
    print(f"413 for 100 MB announced on {path}: first byte after {first_byte_s * 1000:.1f} ms")


def test_a_chunked_body_is_cut_off_once_it_runs_over(plain_web):
    limit = request_body_limit("application/json")
    head = (
        b"POST /api/log_in/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    pieces = limit // len(piece) + 1  # one over the limit, and no end chunk
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * pieces

    answer, _ = raw_exchange(plain_web.base, head, chunks)

    status, _, body = parse(answer)
    assert status == 413, answer[:300]
    assert json.loads(body)["code"] == "too_large"


def test_a_body_within_the_limit_is_still_answered(plain_web):
    # The log-in reads a body of almost the whole limit (a wrong password: 401).
    body = json.dumps({"username": "nobody@example.com", "password": "x"}).encode()
    body += b" " * (request_body_limit("application/json") - len(body))

    status, _, answer = fetch(
        plain_web.base, "POST", "/api/log_in/", body, {"Content-Type": "application/json"}
    )

    assert status == 401, answer[:300]
