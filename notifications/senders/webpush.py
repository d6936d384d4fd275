"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload
encryption (RFC 8291), to the push service named by the browser's
subscription.

Library: pywebpush (with py-vapid and http-ece, from the same web-push-libs
project), the reference Python implementation: it encrypts the payload for
the subscription's keys and signs the VAPID header. Its `WebPusher` posts
through a requests session we give it, which here refuses redirects: the
endpoint was checked against WEBPUSH_ALLOWED_HOSTS (again before each send),
and a redirect must not take the request anywhere else.

The push service's answers (RFC 8030, section 7): 404 and 410 mean the
subscription is gone (deleted); 429 and 5xx are transient; the rest (400,
401, 403, 413) is refused for good.
"""

import hashlib
import json
import threading
import time
from urllib.parse import urlsplit

import requests
from py_vapid import Vapid
from pywebpush import WebPusher, WebPushException

from notifications import tokens
from notifications.messages import Notification
from notifications.senders.base import (
    Outcome,
    PushRejected,
    Sender,
    TransientPushError,
    retry_after,
)

TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
# A VAPID JWT may live up to 24 hours; each send signs a fresh one.
VAPID_LIFE_S = 12 * 3600


class _NoRedirects(requests.Session):
    def request(self, method, url, *args, **kwargs):
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


class WebPushSender(Sender):
    platform = "webpush"

    def __init__(self, *, private_key: str, subject: str, timeout_s: float) -> None:
        if private_key.startswith("-----BEGIN"):
            self._vapid = Vapid.from_pem(private_key.encode())
        else:
            self._vapid = Vapid.from_string(private_key)
        self._subject, self._timeout_s = subject, timeout_s
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = _NoRedirects()
        return self._local.session

    def send(self, token: str, notification: Notification) -> Outcome:
        subscription = json.loads(token)
        endpoint = subscription["endpoint"]
        try:
            tokens.endpoint_check(endpoint)
        except tokens.TokenInvalid:
            # No longer an allowed push service (the setting changed).
            return Outcome.INVALID_TOKEN
        parts = urlsplit(endpoint)
        claims = {
            "sub": self._subject,
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + VAPID_LIFE_S,
        }
        headers = dict(self._vapid.sign(claims))
        headers["urgency"] = "high" if notification.urgent else "normal"
        # RFC 8030 topics are at most 32 base64url characters.
        headers["topic"] = _topic(notification.collapse_key)
        body = json.dumps(
            {"title": notification.title, "body": notification.body, "data": notification.data},
            separators=(",", ":"),
        )
        try:
            response = WebPusher(subscription, requests_session=self._session()).send(
                body, headers, ttl=notification.ttl_s(), timeout=self._timeout_s
            )
        except requests.RequestException as exc:
            raise TransientPushError(f"webpush: {type(exc).__name__}") from None
        except WebPushException:
            return Outcome.INVALID_TOKEN  # keys it cannot encrypt for
        return _outcome(response)


def _outcome(response: requests.Response) -> Outcome:
    status = response.status_code
    if status in (200, 201, 202):
        return Outcome.DELIVERED
    if status in (404, 410):
        return Outcome.INVALID_TOKEN
    if status in TRANSIENT_STATUSES:
        raise TransientPushError(
            f"webpush: {status}", retry_after_s=retry_after(response.headers.get("retry-after"))
        )
    raise PushRejected(f"webpush: {status}")


def _topic(collapse_key: str) -> str:
    return hashlib.sha256(collapse_key.encode()).hexdigest()[:32]
