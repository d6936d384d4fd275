"""The run and deploy files agree with each other; the private Redis starts and stops.

Docker is not available where the suite runs, so docker-compose.yml and the
Dockerfile are read as data and held against the Procfile, the one description
of the processes.
"""

import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat", "matcher")
FROM_ENV = "value-from-the-environment"
# ${NAME}, ${NAME:-default}, ${NAME:?message} (and the forms without the colon)
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
REQUIRED_FROM_ENV = re.compile(r"\$\{\w+:\?[^}]*\}")


def interpolate(text: str) -> str:
    """Spell out shell/compose defaults; a required variable becomes FROM_ENV."""

    def value(match: re.Match[str]) -> str:
        return match.group(3) if match.group(2) == "-" else FROM_ENV

    return INTERPOLATION.sub(value, text)


def argv(command: str | list[str]) -> list[str]:
    """A command as the process would see it: defaults filled, `sh -c`/`exec` removed."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(words[2])
    if words[:1] == ["exec"]:
        words = words[1:]
    return shlex.split(interpolate(shlex.join(words)))


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and not line.startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def and_steps(script: str) -> list[list[str]]:
    """`a && b` -> [argv(a), argv(b)]"""
    return [argv(step) for step in script.split("&&")]


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_procfile_has_the_five_process_types():
    assert set(procfile()) == {"release", "web", "worker", "beat", "matcher"}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_service_runs_the_procfile_command(services, name):
    assert argv(services[name]["command"]) == argv(procfile()[name])


def test_image_default_command_is_the_procfile_web_command():
    cmd = next(
        line.removeprefix("CMD").strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("CMD ")
    )
    assert argv(json.loads(cmd)) == argv(procfile()["web"])


def test_compose_release_runs_the_procfile_release_steps_the_image_has_not_run(services):
    steps = and_steps(procfile()["release"])
    collectstatic = ["python", "manage.py", "collectstatic", "--noinput"]
    assert collectstatic in steps
    assert shlex.join(collectstatic) in (ROOT / "Dockerfile").read_text()  # done at build

    shell, flag, script = shlex.split(services["release"]["command"])
    assert (shell, flag) == ("sh", "-c")
    assert and_steps(script) == [step for step in steps if step != collectstatic]


@pytest.mark.parametrize("name", (*APP_SERVICES, "release"))
def test_compose_service_waits_for_healthy_postgres_and_redis(services, name):
    depends_on = services[name]["depends_on"]
    for dependency in ("postgres", "redis"):
        assert depends_on[dependency]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_app_services_start_after_a_successful_release(services, name):
    assert services[name]["depends_on"]["release"]["condition"] == (
        "service_completed_successfully"
    )


@pytest.mark.parametrize("name", (*APP_SERVICES, "release"))
def test_compose_urls_point_at_the_compose_services(services, name):
    environment = services[name]["environment"]
    database = urlsplit(interpolate(environment["DATABASE_URL"]))
    redis = urlsplit(interpolate(environment["REDIS_URL"]))

    assert (database.scheme, database.hostname) == ("postgres", "postgres")
    assert database.password == FROM_ENV
    assert (redis.scheme, redis.hostname) == ("redis", "redis")


def test_no_secret_is_committed(services):
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search("SECRET|PASSWORD|TOKEN", key):
                assert REQUIRED_FROM_ENV.fullmatch(str(value)), (
                    f"{name}: {key} must be required from the environment, with no default"
                )
    for name in APP_SERVICES:
        assert "SECRET_KEY" in services[name]["environment"]

    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith(("ENV", "ARG")):
            assert "SECRET_KEY" not in line, "the image must not carry a SECRET_KEY"


def makefile_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


@pytest.mark.parametrize(
    ("target", "command"),
    [("run", "scripts/stack.py run"), ("test", "scripts/stack.py test $(ARGS)")],
)
def test_make_target_calls_the_stack_script(target, command):
    assert any(line.endswith(command) for line in makefile_recipe(target))


def test_ci_runs_the_documented_test_command():
    ci = ROOT / ".ci" / "run"
    assert "make test" in ci.read_text()
    assert os.access(ci, os.X_OK)


def test_ci_installs_the_browser_and_makes_a_missing_one_a_failure():
    script = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y -qq chromium chromium-driver" in script
    assert 'export CI="${CI:-true}"' in script
    assert script.index("chromium-driver") < script.index("run_suite PostgreSQL")


# --- the private Redis of scripts/stack.py -----------------------------------------


@pytest.fixture(scope="module")
def stack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stack", ROOT / "scripts" / "stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def resp_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64)


def assert_gone(server) -> None:
    assert server.process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(server.process.pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_private_redis_answers_ping_and_is_gone_after(stack, tmp_path):
    with stack.private_redis(tmp_path) as server:
        assert resp_ping(server.port) == b"+PONG\r\n"
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert (tmp_path / "redis.pid").read_text().strip() == str(server.process.pid)

    assert_gone(server)
    assert not (tmp_path / "redis.pid").exists()
    assert not list(tmp_path.glob("*.rdb")), "the private Redis must keep nothing on disk"


def test_private_redis_stops_when_the_block_fails(stack, tmp_path):
    with pytest.raises(RuntimeError), stack.private_redis(tmp_path) as server:
        raise RuntimeError("a step failed")

    assert_gone(server)


# --- where the web process listens ---------------------------------------------------


def test_the_procfile_web_listens_on_host_defaulting_to_all_interfaces():
    words = shlex.split(procfile()["web"])
    assert words[words.index("-b") + 1] == "${HOST:-0.0.0.0}"


EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - what the tests expect, not a bind


@pytest.mark.parametrize(
    ("given", "host"),
    [
        ({"DEBUG": "1"}, "127.0.0.1"),
        ({"DEBUG": "True"}, "127.0.0.1"),
        ({"DEBUG": "0"}, EVERY_INTERFACE),
        ({"DEBUG": "1", "HOST": EVERY_INTERFACE}, EVERY_INTERFACE),
        ({"DEBUG": "1", "HOST": "192.0.2.5"}, "192.0.2.5"),
        ({"DEBUG": "0", "HOST": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_run_listens_on_this_machine_only_when_debugging_unless_told(stack, given, host):
    env = dict(given)
    stack.bind_locally_when_debugging(env)
    assert env["HOST"] == host


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_make_runs_web_with_debug_on_listens_on_this_machine_only(stack, tmp_path):
    # Given the environment `make run` gives the Procfile's web with DEBUG on,
    env = stack.child_env()
    for name in ("HOST", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    port = stack.free_port()
    env.update({"DEBUG": "1", "PORT": str(port), "TAXI_VAR_DIR": str(tmp_path)})
    stack.bind_locally_when_debugging(env)

    # when it runs,
    process = subprocess.Popen(
        stack.honcho("web"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not stack.port_answers(port):
            assert process.poll() is None, "the web process exited"
            assert time.monotonic() < deadline, "the web process did not listen in 60 s"
            time.sleep(0.2)

        # then it listens on 127.0.0.1 only, not on every interface.
        assert listening_addresses(port) == {"0100007F"}
    finally:
        stack.stop_group(process, 10)
