"""Each sender against a local server that speaks its provider's HTTP API:
what arrives (headers, authentication, payload), and what each answer
means (delivered, token gone, try again, refused)."""

import json
import time

import http_ece
import pytest

from notifications.messages import Notification
from notifications.senders import Outcome, PushRejected, TransientPushError, sender_for
from notifications.senders.apns import ApnsSender
from tests.notifications.conftest import APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC, VAPID_SUBJECT
from tests.notifications.providers import (
    Answer,
    ApnsServer,
    self_signed_tls,
    vapid_claims,
)
from tests.notifications.support import Browser, apns_token, fcm_token


def notification(**changes) -> Notification:
    fields = {
        "kind": "trip.updated",
        "title": "Your driver is on the way",
        "body": "A driver accepted your ride.",
        "data": {"type": "trip.updated", "trip_id": "t-1", "status": "STARTED", "version": "2"},
        "collapse_key": "trip-t-1",
        "expires_at": time.time() + 600,
    }
    return Notification(**{**fields, **changes})


# --- FCM ----------------------------------------------------------------------------


def test_fcm_sends_an_http_v1_message_with_an_oauth_token_from_the_service_account(
    providers, fcm_server
):
    token = fcm_token()
    sent = notification()

    outcome = sender_for("fcm").send(token, sent)

    assert outcome is Outcome.DELIVERED
    # The token endpoint verified the assertion signed with the key; the
    # send carried the access token it issued.
    (received,) = fcm_server.received
    assert received.headers["authorization"] == "Bearer ya29.access-1"
    message = received.json()["message"]
    assert message["token"] == token
    assert message["notification"] == {"title": sent.title, "body": sent.body}
    assert message["data"] == sent.data
    assert message["android"]["priority"] == "HIGH"
    assert message["android"]["collapse_key"] == "trip-t-1"
    assert 590 <= int(message["android"]["ttl"].removesuffix("s")) <= 600
    assert message["apns"]["headers"]["apns-expiration"] == str(int(sent.expires_at))


def test_fcm_reuses_its_access_token_and_gets_a_new_one_when_refused(providers, fcm_server):
    sender = sender_for("fcm")
    sender.send(fcm_token(), notification())
    sender.send(fcm_token(), notification())
    assert fcm_server.token_requests == 1

    # When the provider stops accepting it (revoked, clock skew), one new
    # token is fetched and the send goes through
    fcm_server.revoke_access_tokens()
    assert sender.send(fcm_token(), notification()) is Outcome.DELIVERED
    assert fcm_server.token_requests == 2


UNREGISTERED = {
    "error": {
        "code": 404,
        "status": "NOT_FOUND",
        "details": [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "UNREGISTERED",
            }
        ],
    }
}
BAD_TOKEN = {
    "error": {
        "code": 400,
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.token", "description": "Invalid token"}],
            }
        ],
    }
}
BAD_PAYLOAD = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": []}}
MISMATCH = {
    "error": {
        "code": 403,
        "status": "PERMISSION_DENIED",
        "details": [{"errorCode": "SENDER_ID_MISMATCH"}],
    }
}


def assert_sent_as(expected, sender, token: str) -> None:
    """`expected`: the Outcome `send` returns, PushRejected, or the
    retry-after seconds a TransientPushError carries. No error names the token."""
    if isinstance(expected, Outcome):
        assert sender.send(token, notification()) is expected
        return
    error = PushRejected if expected is PushRejected else TransientPushError
    with pytest.raises(error) as raised:
        sender.send(token, notification())
    if error is TransientPushError:
        assert raised.value.retry_after_s == expected
    assert token not in str(raised.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(404, UNREGISTERED), Outcome.INVALID_TOKEN),
        (Answer(400, BAD_TOKEN), Outcome.INVALID_TOKEN),
        (Answer(403, MISMATCH), Outcome.INVALID_TOKEN),
        (Answer(400, BAD_PAYLOAD), PushRejected),
        (Answer(503, {"error": {"status": "UNAVAILABLE"}}, {"retry-after": "7"}), 7.0),
        (Answer(429, {"error": {"status": "RESOURCE_EXHAUSTED"}}), None),
        (Answer(500, None), None),
    ],
    ids=["unregistered", "token-violation", "sender-mismatch", "payload", "503", "429", "500"],
)
def test_fcm_answers(providers, fcm_server, answer, expected):
    token = fcm_token()
    fcm_server.answers[token].append(answer)
    sender = sender_for("fcm")

    assert_sent_as(expected, sender, token)


def test_fcm_unreachable_is_transient(providers, settings):
    settings.FCM_URL = "http://127.0.0.1:9"  # nothing listens

    with pytest.raises(TransientPushError):
        sender_for("fcm").send(fcm_token(), notification())


# --- APNs ---------------------------------------------------------------------------


def test_apns_posts_over_http2_with_an_es256_provider_token(providers, apns_server):
    token = apns_token()
    sent = notification()

    assert sender_for("apns").send(token, sent) is Outcome.DELIVERED

    (received,) = apns_server.received
    assert received.path == f"/3/device/{token}"
    headers = received.headers
    assert headers["apns-topic"] == APNS_TOPIC
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-expiration"] == str(int(sent.expires_at))
    assert headers["apns-collapse-id"] == "trip-t-1"
    assert headers["apns-id"] == sent.id
    assert received.json() == {
        "aps": {"alert": {"title": sent.title, "body": sent.body}, "sound": "default"},
        **sent.data,
    }


def test_apns_keeps_one_connection_and_one_provider_token(providers, apns_server):
    sender = sender_for("apns")
    for _ in range(3):
        sender.send(apns_token(), notification())

    assert apns_server.connections == 1
    assert len(set(apns_server.provider_tokens)) == 1


def test_apns_negotiates_http2_over_tls(tmp_path):
    server_tls, client_tls = self_signed_tls(tmp_path)
    server = ApnsServer(key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID, topic=APNS_TOPIC, tls=server_tls)
    try:
        sender = ApnsSender(
            auth_key=server.key_pem,
            key_id=APNS_KEY_ID,
            team_id=APNS_TEAM_ID,
            topic=APNS_TOPIC,
            base_url=server.url,
            timeout_s=5,
            verify=client_tls,
        )

        assert sender.send(apns_token(), notification()) is Outcome.DELIVERED
        assert server.alpn == ["h2"]
        assert len(server.received) == 1
    finally:
        server.close()


def test_apns_gets_a_new_provider_token_when_apple_says_it_expired(providers, apns_server):
    token = apns_token()
    apns_server.answers[token].append(Answer(403, {"reason": "ExpiredProviderToken"}))

    assert sender_for("apns").send(token, notification()) is Outcome.DELIVERED
    assert len(apns_server.received) == 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(410, {"reason": "Unregistered", "timestamp": 1}), Outcome.INVALID_TOKEN),
        (Answer(400, {"reason": "BadDeviceToken"}), Outcome.INVALID_TOKEN),
        (Answer(400, {"reason": "DeviceTokenNotForTopic"}), Outcome.INVALID_TOKEN),
        (Answer(400, {"reason": "PayloadTooLarge"}), PushRejected),
        (Answer(429, {"reason": "TooManyRequests"}), None),
        (Answer(503, {"reason": "ServiceUnavailable"}, {"retry-after": "3"}), 3.0),
    ],
    ids=["unregistered", "bad-token", "not-for-topic", "payload", "429", "503"],
)
def test_apns_answers(providers, apns_server, answer, expected):
    token = apns_token()
    apns_server.answers[token].append(answer)
    sender = sender_for("apns")

    assert_sent_as(expected, sender, token)


# --- Web Push -----------------------------------------------------------------------


def _subscribe(webpush_server, name: str) -> tuple[Browser, str]:
    browser = Browser.make(webpush_server.endpoint(name))
    return browser, json.dumps(browser.subscription())


def test_web_push_posts_an_encrypted_payload_signed_with_vapid(providers, webpush_server):
    browser, token = _subscribe(webpush_server, "sub-1")
    sent = notification()

    assert sender_for("webpush").send(token, sent) is Outcome.DELIVERED

    (received,) = webpush_server.received
    assert received.path == "/push/sub-1"
    headers = received.headers
    assert headers["content-encoding"] == "aes128gcm"
    assert 590 <= int(headers["ttl"]) <= 600
    assert headers["urgency"] == "high"
    assert len(headers["topic"]) <= 32
    claims = vapid_claims(received, audience=webpush_server.url)
    assert claims["sub"] == VAPID_SUBJECT
    # Only the browser, with its private key and auth secret, reads it.
    plain = http_ece.decrypt(
        received.body,
        private_key=browser.private_key,
        auth_secret=browser.auth,
        version="aes128gcm",
    )
    assert json.loads(plain) == {"title": sent.title, "body": sent.body, "data": sent.data}
    assert sent.title.encode() not in received.body


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(410), Outcome.INVALID_TOKEN),
        (Answer(404), Outcome.INVALID_TOKEN),
        (Answer(413), PushRejected),
        (Answer(301, None, {"location": "http://127.0.0.1:9/elsewhere"}), PushRejected),
        (Answer(429, None, {"retry-after": "30"}), 30.0),
        (Answer(503), None),
    ],
    ids=["gone", "not-found", "too-large", "redirect", "429", "503"],
)
def test_web_push_answers(providers, webpush_server, answer, expected):
    _, token = _subscribe(webpush_server, "sub-2")
    webpush_server.answers["sub-2"].append(answer)
    sender = sender_for("webpush")

    assert_sent_as(expected, sender, token)
    assert len(webpush_server.received) == 1  # a redirect is not followed


def test_web_push_to_an_endpoint_no_longer_allowed_is_not_sent(providers, webpush_server, settings):
    _, token = _subscribe(webpush_server, "sub-3")
    settings.WEBPUSH_ALLOWED_HOSTS = ["push.services.mozilla.com"]

    assert sender_for("webpush").send(token, notification()) is Outcome.INVALID_TOKEN
    assert webpush_server.received == []


def test_a_provider_not_configured_has_no_sender(settings):
    settings.FCM_SERVICE_ACCOUNT_KEY = None
    settings.APNS_AUTH_KEY = ""
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""

    assert [sender_for(p) for p in ("fcm", "apns", "webpush")] == [None, None, None]
