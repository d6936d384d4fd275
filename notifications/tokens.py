"""What a device token must look like on each platform, and what makes two
registrations the same device.

- `fcm`: an FCM registration token, letters, digits and `_ - : .`.
- `apns`: an APNs device token, hex (32 bytes today; Apple allows longer),
  kept lower-case.
- `webpush`: the browser's PushSubscription, as the object
  `subscription.toJSON()` gives or that object as a JSON string:
  `endpoint` (an https URL of a push service in WEBPUSH_ALLOWED_HOSTS: the
  worker will POST to it, so it cannot be any URL a client names),
  `keys.p256dh` (a P-256 public key, base64url) and `keys.auth` (16 bytes,
  base64url). The endpoint identifies the device; new keys for a known
  endpoint replace the old ones.
"""

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

FCM_TOKEN = re.compile(r"[A-Za-z0-9_:.\-]{8,4096}")
APNS_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){32,100}")
MAX_ENDPOINT_CHARS = 2048
MAX_SUBSCRIPTION_CHARS = 8192


class TokenInvalid(ValueError):
    """The token cannot be a device of that platform; the message says why."""


@dataclass(frozen=True)
class DeviceToken:
    platform: str
    value: str  # what the sender hands the provider
    identity: str  # what makes two registrations the same device

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.platform}\n{self.identity}".encode()).hexdigest()


def parse(platform: str, raw: object) -> DeviceToken:
    if platform == "fcm":
        return _fcm(raw)
    if platform == "apns":
        return _apns(raw)
    if platform == "webpush":
        return _webpush(raw)
    raise TokenInvalid(f"Unknown platform {platform!r}.")


def _fcm(raw: object) -> DeviceToken:
    if not isinstance(raw, str) or not FCM_TOKEN.fullmatch(raw):
        raise TokenInvalid("An FCM registration token is 8 to 4096 letters, digits or _-:.")
    return DeviceToken("fcm", raw, raw)


def _apns(raw: object) -> DeviceToken:
    if not isinstance(raw, str) or not APNS_TOKEN.fullmatch(raw):
        raise TokenInvalid("An APNs device token is 64 to 200 hexadecimal digits.")
    token = raw.lower()
    return DeviceToken("apns", token, token)


def _webpush(raw: object) -> DeviceToken:
    if isinstance(raw, str):
        if len(raw) > MAX_SUBSCRIPTION_CHARS:
            raise TokenInvalid("The subscription is too long.")
        try:
            raw = json.loads(raw)
        except ValueError:
            raise TokenInvalid("A Web Push token is the browser's PushSubscription JSON.") from None
    if not isinstance(raw, dict):
        raise TokenInvalid("A Web Push token is the browser's PushSubscription JSON.")
    endpoint = raw.get("endpoint")
    keys = raw.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, dict):
        raise TokenInvalid("The subscription needs an endpoint and keys (p256dh, auth).")
    endpoint_check(endpoint)
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    _check_p256dh(p256dh)
    if len(_b64url(auth, "auth")) != 16:
        raise TokenInvalid("keys.auth must be 16 bytes, base64url-encoded.")
    value = json.dumps(
        {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}, separators=(",", ":")
    )
    return DeviceToken("webpush", value, endpoint)


def endpoint_check(endpoint: str) -> None:
    """Refuse an endpoint the worker may not POST to. Read at registration
    and again before each send (the setting may have changed since)."""
    if len(endpoint) > MAX_ENDPOINT_CHARS or any(c.isspace() or c < " " for c in endpoint):
        raise TokenInvalid("The endpoint is not a push service URL.")
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        origin = f"{parts.scheme}://{parts.netloc}".lower()
    except ValueError:
        raise TokenInvalid("The endpoint is not a push service URL.") from None
    if parts.username or parts.password or not host:
        raise TokenInvalid("The endpoint is not a push service URL.")
    for allowed in settings.WEBPUSH_ALLOWED_HOSTS:
        allowed = allowed.lower()
        if "://" in allowed:
            # A whole origin, scheme and port included (a local push service).
            if origin == allowed:
                return
        elif parts.scheme == "https" and (host == allowed or host.endswith("." + allowed)):
            return
    raise TokenInvalid("The endpoint is not a known push service (WEBPUSH_ALLOWED_HOSTS).")


def _b64url(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+={0,2}", value):
        raise TokenInvalid(f"keys.{name} must be base64url-encoded.")
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise TokenInvalid(f"keys.{name} must be base64url-encoded.") from None


def _check_p256dh(value: object) -> None:
    raw = _b64url(value, "p256dh")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise TokenInvalid(
            "keys.p256dh must be a P-256 public key (65 bytes, uncompressed)."
        ) from None
    if len(raw) != 65:
        raise TokenInvalid("keys.p256dh must be a P-256 public key (65 bytes, uncompressed).")
