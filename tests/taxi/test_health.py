"""`GET /healthz`: 200 when the database and Redis answer, 503 naming what does not."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    """A local port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthy(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "db": "ok", "redis": "ok"}


def test_head_is_answered_too(client):
    response = client.head("/healthz")

    assert response.status_code == 200


def test_unsafe_methods_are_refused(client):
    response = client.post("/healthz")

    assert response.status_code == 405


def test_503_names_redis_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "db": "ok", "redis": "error"}


# Runs in a fresh process whose only database is a closed port; Redis is the
# suite's own.
_HEALTH_SCRIPT = """
import json
import django
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"status_code": response.status_code, "body": response.json()}))
"""


def test_503_names_the_database_when_it_is_unreachable():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/taxi",
        "SECRET_KEY": "health-check-test-key-" * 3,
    }

    result = subprocess.run(
        [sys.executable, "-c", _HEALTH_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {
        "status_code": 503,
        "body": {"status": "error", "db": "error", "redis": "ok"},
    }
    assert "health.db_failed" in result.stderr
