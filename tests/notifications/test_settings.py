"""The push providers' settings fail fast, and say which variable is wrong
without printing the key they were given."""

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.notifications.providers import apns_signing_key, service_account_key
from tests.taxi.test_settings import last_line, production_env, start

SHOW = (
    "from django.conf import settings as s; "
    "print(s.FCM_PROJECT_ID, s.FCM_TOKEN_URL, bool(s.APNS_AUTH_KEY), s.WEBPUSH_VAPID_SUBJECT)"
)


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_every_provider_configured_from_files_and_inline_keys_starts(tmp_path):
    fcm_key, _ = service_account_key("taxi-prod")
    (tmp_path / "fcm.json").write_text(json.dumps(fcm_key))
    apns_pem, _ = apns_signing_key()
    (tmp_path / "AuthKey.p8").write_text(apns_pem)

    result = start(
        tmp_path,
        SHOW,
        **production_env(),
        FCM_CREDENTIALS=str(tmp_path / "fcm.json"),
        APNS_KEY=str(tmp_path / "AuthKey.p8"),
        APNS_KEY_ID="KEY1234567",
        APNS_TEAM_ID="TEAM123456",
        APNS_TOPIC="com.example.taxi",
        WEBPUSH_VAPID_PRIVATE_KEY=_pem(ec.generate_private_key(ec.SECP256R1())),
        WEBPUSH_VAPID_SUBJECT="mailto:ops@example.com",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "taxi-prod",
        "https://oauth2.googleapis.com/token",
        "True",
        "mailto:ops@example.com",
    ]


def test_nothing_configured_starts_with_every_provider_off(tmp_path):
    result = start(tmp_path, SHOW, **production_env())

    assert result.returncode == 0, result.stderr


RSA_PEM = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PEM = _pem(ec.generate_private_key(ec.SECP256R1()))
BROKEN_KEY = {**service_account_key()[0], "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FCM_CREDENTIALS": "{not json"}, "FCM_CREDENTIALS must be a service account key"),
        ({"FCM_CREDENTIALS": '{"type": "user"}'}, "FCM_CREDENTIALS must be a service account"),
        ({"FCM_CREDENTIALS": json.dumps(BROKEN_KEY)}, "FCM_CREDENTIALS: the private key"),
        ({"FCM_CREDENTIALS": "/nowhere/key.json"}, "FCM_CREDENTIALS names a file that does"),
        ({"APNS_KEY_ID": "KEY1234567"}, "missing APNS_KEY, APNS_TEAM_ID, APNS_TOPIC"),
        ({"APNS_KEY": RSA_PEM}, "APNS_KEY must be a P-256 (ES256) private key"),
        ({"WEBPUSH_VAPID_PRIVATE_KEY": "not-a-key"}, "is not a VAPID (P-256) private key"),
        ({"WEBPUSH_VAPID_PRIVATE_KEY": EC_PEM}, "WEBPUSH_VAPID_SUBJECT must be a mailto:"),
    ],
    ids=["fcm-json", "fcm-type", "fcm-key", "fcm-file", "apns-partial", "apns-rsa", "vapid", "sub"],
)
def test_a_bad_provider_setting_stops_start_up_naming_it(tmp_path, env, message):
    result = start(tmp_path, **production_env(), **env)

    assert result.returncode != 0
    line = last_line(result.stderr)
    assert line.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert message in line
    for value in env.values():
        if value.startswith("-----BEGIN"):
            assert value.splitlines()[1] not in result.stderr
