"""Settings fail fast: a misconfigured process stops at start-up with a clear message.

Each case starts a fresh interpreter on the production settings module
(`taxi.settings`) with a controlled environment, as a deploy would.
"""

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, code: str = "", argv: list[str] | None = None, **env: str):
    """Run `django.setup()` (then `code`), or `manage.py argv`, on taxi.settings
    with only the environment given; var/ is a temporary directory."""
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "taxi.settings",
        "TAXI_VAR_DIR": str(tmp_path),
        **env,
    }
    command = (
        [sys.executable, "manage.py", *argv]
        if argv
        else [sys.executable, "-c", f"import django; django.setup()\n{code}"]
    )
    return subprocess.run(
        command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False
    )


def production_env() -> dict[str, str]:
    return {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "taxi.example.com"}


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_production_settings_start(tmp_path):
    result = start(
        tmp_path, "from django.conf import settings; print(settings.DEBUG)", **production_env()
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_no_secret_key_with_debug_off_stops_start_up(tmp_path):
    result = start(tmp_path)

    assert result.returncode != 0
    assert last_line(result.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set. It is required "
        "when DEBUG is off; set it to a long random string kept out of the repository."
    )
    assert not (tmp_path / "secret_key").exists()


def test_an_empty_secret_key_with_debug_off_stops_start_up(tmp_path):
    result = start(tmp_path, SECRET_KEY="")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in last_line(result.stderr)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean (1/0, true/false), got 'maybe'"),
        ({"DISPATCH_RADII_KM": "2,five,10"}, "DISPATCH_RADII_KM must be positive kilometres"),
        ({"DISPATCH_RADII_KM": "2,-5"}, "DISPATCH_RADII_KM must be positive kilometres"),
        ({"DISPATCH_RADII_KM": "0"}, "DISPATCH_RADII_KM must be positive kilometres"),
        ({"DISPATCH_RADII_KM": "nan"}, "DISPATCH_RADII_KM must be positive kilometres"),
        ({"DISPATCH_RADII_KM": ","}, "DISPATCH_RADII_KM must be positive kilometres"),
        ({"DISPATCH_OFFER_TIMEOUT_S": "soon"}, "DISPATCH_OFFER_TIMEOUT_S must be a number"),
        ({"DISPATCH_OFFER_TIMEOUT_S": "inf"}, "DISPATCH_OFFER_TIMEOUT_S must be at least"),
        ({"DISPATCH_OFFER_TIMEOUT_S": "0"}, "DISPATCH_OFFER_TIMEOUT_S must be at least"),
        ({"DISPATCH_MAX_OFFERS": "2.5"}, "DISPATCH_MAX_OFFERS must be an integer"),
        ({"DISPATCH_BATCH_CANDIDATES": "0"}, "DISPATCH_BATCH_CANDIDATES must be at least 1"),
        ({"DISPATCH_BATCH_CANDIDATES": "8.5"}, "DISPATCH_BATCH_CANDIDATES must be an integer"),
        ({"DISPATCH_BATCH_MAX_PICKUP_KM": "0"}, "DISPATCH_BATCH_MAX_PICKUP_KM must be at least"),
        ({"DISPATCH_BATCH_MAX_PICKUP_KM": "far"}, "DISPATCH_BATCH_MAX_PICKUP_KM must be a number"),
        ({"DISPATCH_BATCH_FAIR_WINDOWS": "0"}, "DISPATCH_BATCH_FAIR_WINDOWS must be at least 1"),
        ({"DRIVER_PRESENCE_TTL_S": "-1"}, "DRIVER_PRESENCE_TTL_S must be at least"),
        ({"PHOTO_MAX_PIXELS": "0"}, "PHOTO_MAX_PIXELS must be at least"),
        ({"CORS_ALLOWED_ORIGINS": "app.example.com"}, "CORS_ALLOWED_ORIGINS takes origins"),
        ({"CORS_ALLOWED_ORIGINS": "https://app.example.com/"}, "CORS_ALLOWED_ORIGINS takes"),
        ({"CORS_ALLOWED_ORIGINS": "*"}, "CORS_ALLOWED_ORIGINS takes origins"),
        ({"CORS_ALLOWED_ORIGINS": "ftp://app.example.com"}, "CORS_ALLOWED_ORIGINS takes"),
    ],
)
def test_bad_values_stop_start_up_with_a_message_naming_the_variable(tmp_path, env, message):
    result = start(tmp_path, **production_env(), **env)

    assert result.returncode != 0
    line = last_line(result.stderr)
    assert line.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert message in line


def test_debug_without_secret_key_generates_one_and_keeps_it(tmp_path):
    show_key = "from django.conf import settings; print(settings.SECRET_KEY)"

    first = start(tmp_path, show_key, DEBUG="1")
    second = start(tmp_path, show_key, DEBUG="1")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    key_file = tmp_path / "secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 50
    assert first.stdout.strip() == key
    assert second.stdout.strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_debug_with_an_empty_key_file_writes_a_new_key(tmp_path):
    """A key file left empty (a crash between create and write) is not a key."""
    (tmp_path / "secret_key").touch(mode=0o600)

    result = start(
        tmp_path, "from django.conf import settings; print(settings.SECRET_KEY)", DEBUG="1"
    )

    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert len(key) >= 50
    assert (tmp_path / "secret_key").read_text().strip() == key


def test_deploy_check_is_clean_with_production_settings(tmp_path):
    result = start(
        tmp_path, argv=["check", "--deploy", "--fail-level", "WARNING"], **production_env()
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_deploy_check_flags_a_weak_secret_key(tmp_path):
    """The check is live: the same command fails on a short key."""
    env = {**production_env(), "SECRET_KEY": "short"}

    result = start(tmp_path, argv=["check", "--deploy", "--fail-level", "WARNING"], **env)

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


@pytest.mark.parametrize(("num_proxies", "trusted"), [(None, "None"), ("0", "None"), ("1", "True")])
def test_forwarded_proto_is_believed_only_behind_a_trusted_proxy(tmp_path, num_proxies, trusted):
    # Without a proxy any client could write X-Forwarded-Proto: https and pass
    # for a secure request; behind NUM_PROXIES trusted proxies, the proxy's is believed.
    env = production_env()
    if num_proxies is not None:
        env["NUM_PROXIES"] = num_proxies
    code = (
        "from django.conf import settings\n"
        "header = getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)\n"
        "print(header and header == ('HTTP_X_FORWARDED_PROTO', 'https'))"
    )

    result = start(tmp_path, code, **env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == trusted
