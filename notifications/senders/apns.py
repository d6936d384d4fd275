"""Apple Push Notification service: HTTP/2, token-based authentication
(`POST /3/device/<token>` with a provider token, a JWT signed ES256 with the
team's key).

Libraries: httpx with its HTTP/2 support (h2) and PyJWT. httpx is already
the project's HTTP client; with `http1=False` it speaks HTTP/2 only (ALPN
over TLS, as APNs requires, or prior knowledge on a plain `http://` URL,
which tests use), keeps one multiplexed connection per process, and takes
APNS_URL from settings. PyJWT (already here through simplejwt) signs the
provider token with `cryptography`. aioapns does the same on asyncio, but a
Celery task is synchronous, and it fixes Apple's hosts in code.

Provider tokens are kept and reused (Apple refuses a new one more often
than every 20 minutes, and any older than an hour): a new one every 50
minutes, or at once when Apple answers ExpiredProviderToken.

The provider's answers (developer.apple.com, "Handling notification
responses from APNs"): 410 (Unregistered, ExpiredToken), BadDeviceToken and
DeviceTokenNotForTopic mean the token is no use to us (deleted); 429, 500,
503 and network errors are transient; the rest is refused for good.
"""

import json
import threading
import time

import httpx
import jwt

from notifications.messages import Notification
from notifications.senders.base import (
    Outcome,
    PushRejected,
    Sender,
    TransientPushError,
    retry_after,
)

PROVIDER_TOKEN_LIFE_S = 50 * 60
INVALID_TOKEN_REASONS = {"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"}
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}


class ApnsSender(Sender):
    platform = "apns"

    def __init__(
        self,
        *,
        auth_key: str,
        key_id: str,
        team_id: str,
        topic: str,
        base_url: str,
        timeout_s: float,
        verify: object = True,
    ) -> None:
        self._auth_key, self._key_id, self._team_id = auth_key, key_id, team_id
        self._topic, self._base_url = topic, base_url
        self._lock = threading.Lock()
        self._provider_token: tuple[str, float] | None = None
        # HTTP/2 only: APNs speaks nothing else.
        self._client = httpx.Client(http1=False, http2=True, timeout=timeout_s, verify=verify)

    def send(self, token: str, notification: Notification) -> Outcome:
        response = self._post(token, notification, fresh=False)
        if response.status_code == 403 and _reason(response) == "ExpiredProviderToken":
            response = self._post(token, notification, fresh=True)
        return self._outcome(response)

    def _post(self, token: str, notification: Notification, *, fresh: bool) -> httpx.Response:
        headers = {
            "authorization": f"bearer {self._jwt(fresh=fresh)}",
            "apns-topic": self._topic,
            "apns-push-type": "alert",
            "apns-priority": "10" if notification.urgent else "5",
            "apns-expiration": str(int(notification.expires_at)),
            "apns-collapse-id": notification.collapse_key[:64],
            "apns-id": notification.id,
        }
        try:
            return self._client.post(
                f"{self._base_url}/3/device/{token}",
                content=json.dumps(payload(notification), separators=(",", ":")),
                headers=headers,
            )
        except httpx.TransportError as exc:
            raise TransientPushError(f"apns: {type(exc).__name__}") from None

    def _jwt(self, *, fresh: bool) -> str:
        with self._lock:
            now = time.time()
            if fresh or self._provider_token is None or self._provider_token[1] <= now:
                signed = jwt.encode(
                    {"iss": self._team_id, "iat": int(now)},
                    self._auth_key,
                    algorithm="ES256",
                    headers={"kid": self._key_id},
                )
                self._provider_token = (signed, now + PROVIDER_TOKEN_LIFE_S)
            return self._provider_token[0]

    def _outcome(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if status == 200:
            return Outcome.DELIVERED
        reason = _reason(response)
        if status == 410 or reason in INVALID_TOKEN_REASONS:
            return Outcome.INVALID_TOKEN
        if status in TRANSIENT_STATUSES:
            raise TransientPushError(
                f"apns: {status} {reason or ''}".strip(),
                retry_after_s=retry_after(response.headers.get("retry-after")),
            )
        raise PushRejected(f"apns: {status} {reason or ''}".strip())


def payload(notification: Notification) -> dict:
    """An alert the system shows, with the event's data beside `aps`."""
    return {
        "aps": {
            "alert": {"title": notification.title, "body": notification.body},
            "sound": "default",
        },
        **notification.data,
    }


def _reason(response: httpx.Response) -> str | None:
    try:
        reason = response.json().get("reason")
    except (ValueError, AttributeError):
        return None
    return reason if isinstance(reason, str) else None
