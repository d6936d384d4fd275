"""The Procfile's `web` as a real process against the test database and
Redis, for tests that must see what a client on the network sees."""

import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from django.db import connection

from scripts.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
# A proposed Procfile can be tried before it is adopted: TEST_PROCFILE=path.
PROCFILE = Path(os.environ.get("TEST_PROCFILE", ROOT / "Procfile"))


def web_argv(port: int, procfile: Path = PROCFILE) -> list[str]:
    """The Procfile's `web` command as a platform would run it, on a local
    port and address, with this virtualenv's programs."""
    line = next(line for line in procfile.read_text().splitlines() if line.startswith("web:"))
    argv = shlex.split(line.removeprefix("web:").replace("${PORT:-8000}", str(port)))
    argv[0] = (
        sys.executable if argv[0] == "python" else str(Path(sys.executable).with_name(argv[0]))
    )
    for flag in ("-b", "--bind"):
        if flag in argv:
            argv[argv.index(flag) + 1] = "127.0.0.1"
    return argv


def database_url() -> str:
    """The test database, for another process: committed rows are visible to it."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor != "postgresql":
        raise RuntimeError(f"no URL form for {db['ENGINE']}")
    auth = urllib.parse.quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + urllib.parse.quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


class Web(NamedTuple):
    base: str  # http://127.0.0.1:<port>
    process: subprocess.Popen


@contextmanager
def web_process(log: Path, **env: str):
    """The Procfile's `web` on a free port, against the test database and
    Redis (the test settings; `env` adds to them), its output in `log`."""
    port = free_port()
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            web_argv(port), cwd=ROOT, env=child_env, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while http_status(base + "/healthz") != 200:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the web process did not answer in 30 s"
            time.sleep(0.2)
        yield Web(base, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
