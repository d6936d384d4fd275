"""The providers' local servers, and settings that point the senders at them."""

import pytest

from tests.notifications.providers import ApnsServer, FcmServer, WebPushServer
from tests.workers.conftest import dispatch_worker

__all__ = ["dispatch_worker"]

APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC = "KEY1234567", "TEAM123456", "com.example.taxi"
VAPID_SUBJECT = "mailto:ops@example.com"


@pytest.fixture
def fcm_server():
    server = FcmServer()
    yield server
    server.close()


@pytest.fixture
def apns_server():
    server = ApnsServer(key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID, topic=APNS_TOPIC)
    yield server
    server.close()


@pytest.fixture
def webpush_server():
    server = WebPushServer()
    yield server
    server.close()


@pytest.fixture
def vapid_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def providers(settings, fcm_server, apns_server, webpush_server, vapid_key):
    """Every provider configured, each at its local server."""
    settings.FCM_SERVICE_ACCOUNT_KEY = fcm_server.key
    settings.FCM_PROJECT_ID = fcm_server.project_id
    settings.FCM_URL = fcm_server.url
    settings.FCM_TOKEN_URL = fcm_server.token_url
    settings.APNS_AUTH_KEY = apns_server.key_pem
    settings.APNS_KEY_ID, settings.APNS_TEAM_ID = APNS_KEY_ID, APNS_TEAM_ID
    settings.APNS_TOPIC = APNS_TOPIC
    settings.APNS_URL = apns_server.url
    settings.WEBPUSH_VAPID_PRIVATE_KEY = vapid_key
    settings.WEBPUSH_VAPID_SUBJECT = VAPID_SUBJECT
    settings.WEBPUSH_ALLOWED_HOSTS = [*settings.WEBPUSH_ALLOWED_HOSTS, webpush_server.url]
    settings.PUSH_TIMEOUT_S = 5
    return {"fcm": fcm_server, "apns": apns_server, "webpush": webpush_server}
