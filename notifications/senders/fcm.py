"""Firebase Cloud Messaging, HTTP v1 API (`POST /v1/projects/<id>/messages:send`).

Libraries: google-auth makes and refreshes the OAuth 2.0 access token from
the service account key (a JWT signed with the key, exchanged at the token
endpoint; kept until shortly before it expires), which is the part worth
not writing ourselves; httpx (already the project's HTTP client) makes the
send, with a kept connection pool. firebase-admin would bring the same
token logic plus a whole SDK, and fixes the API's base URL, which tests
move to a local server (FCM_URL, FCM_TOKEN_URL).

The provider's answers (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode):
404 / UNREGISTERED, SENDER_ID_MISMATCH and an INVALID_ARGUMENT that names
`message.token` mean the token is no use to us (deleted); 429, 500, 503
and network errors are transient; 401 gets a fresh access token once; the
rest is refused for good.
"""

import threading

import google.auth.exceptions
import httpx
import requests
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2 import service_account

from notifications.messages import Notification
from notifications.senders.base import (
    Outcome,
    PushRejected,
    Sender,
    TransientPushError,
    retry_after,
)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
INVALID_TOKEN_CODES = {"UNREGISTERED", "SENDER_ID_MISMATCH"}
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}


class FcmSender(Sender):
    platform = "fcm"

    def __init__(
        self,
        *,
        service_account: dict,
        project_id: str,
        base_url: str,
        token_url: str,
        timeout_s: float,
    ) -> None:
        info = {**service_account, "token_uri": token_url}
        self._credentials = service_account_credentials(info)
        self._url = f"{base_url}/v1/projects/{project_id}/messages:send"
        self._timeout_s = timeout_s
        self._auth_lock = threading.Lock()
        self._auth_session = requests.Session()
        self._client = httpx.Client(timeout=timeout_s)

    def send(self, token: str, notification: Notification) -> Outcome:
        body = {"message": message(token, notification)}
        response = self._post(body, self._access_token(force=False))
        if response.status_code == 401:
            response = self._post(body, self._access_token(force=True))
        return self._outcome(response)

    def _post(self, body: dict, access_token: str) -> httpx.Response:
        try:
            return self._client.post(
                self._url, json=body, headers={"Authorization": f"Bearer {access_token}"}
            )
        except httpx.TransportError as exc:
            raise TransientPushError(f"fcm: {type(exc).__name__}") from None

    def _access_token(self, *, force: bool) -> str:
        with self._auth_lock:
            if force or not self._credentials.valid:
                try:
                    self._refresh()
                except google.auth.exceptions.TransportError:
                    raise TransientPushError("fcm: token endpoint unreachable") from None
                except google.auth.exceptions.RefreshError as exc:
                    if getattr(exc, "retryable", False):
                        raise TransientPushError("fcm: token endpoint busy") from None
                    raise PushRejected("fcm: the service account was refused") from None
            return self._credentials.token

    def _refresh(self) -> None:
        request = GoogleAuthRequest(self._auth_session)
        # google-auth's transport takes a timeout per call; bound it as the send's.
        self._credentials.refresh(_TimedRequest(request, self._timeout_s))

    def _outcome(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if status == 200:
            return Outcome.DELIVERED
        code, token_field = _error(response)
        if status == 404 or code in INVALID_TOKEN_CODES:
            return Outcome.INVALID_TOKEN
        if code == "INVALID_ARGUMENT" and token_field:
            return Outcome.INVALID_TOKEN
        if status in TRANSIENT_STATUSES:
            raise TransientPushError(
                f"fcm: {status} {code or ''}".strip(),
                retry_after_s=retry_after(response.headers.get("retry-after")),
            )
        raise PushRejected(f"fcm: {status} {code or ''}".strip())


class _TimedRequest:
    """google-auth's request callable with a default timeout."""

    def __init__(self, request: GoogleAuthRequest, timeout_s: float) -> None:
        self._request, self._timeout_s = request, timeout_s

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        return self._request(
            url, method=method, body=body, headers=headers, timeout=timeout or self._timeout_s
        )


def service_account_credentials(info: dict) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])


def message(token: str, notification: Notification) -> dict:
    """The HTTP v1 `Message`: shown as a notification on Android and iOS
    (FCM relays iOS tokens to APNs), with the event in `data`; high priority
    and collapsed per trip or offer; dropped once it could no longer help."""
    ttl_s = notification.ttl_s()
    priority = "HIGH" if notification.urgent else "NORMAL"
    return {
        "token": token,
        "notification": {"title": notification.title, "body": notification.body},
        "data": notification.data,
        "android": {
            "priority": priority,
            "ttl": f"{ttl_s}s",
            "collapse_key": notification.collapse_key,
        },
        "apns": {
            "headers": {
                "apns-priority": "10" if notification.urgent else "5",
                "apns-expiration": str(int(notification.expires_at)),
                "apns-collapse-id": notification.collapse_key[:64],
            }
        },
    }


def _error(response: httpx.Response) -> tuple[str | None, bool]:
    """The FCM error code (details' `errorCode`, else the status), and
    whether a field violation names the token."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return None, False
    if not isinstance(error, dict):
        return None, False
    code, token_field = error.get("status"), False
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if detail.get("errorCode"):
            code = detail["errorCode"]
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                token_field = True
    return (code if isinstance(code, str) else None), token_field
