"""The push providers' credentials, read from the environment at start-up
(settings.py), so that a bad key stops the process with a message instead
of failing its first notification.

Each credential is given either inline (the PEM or JSON itself, which suits
platforms that set secrets as variables) or as the path of a file holding
it. None of them is ever logged; settings that hold them have KEY in their
names, which Django's debug pages mask.
"""

import json
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def secret_text(name: str) -> str:
    """The variable's value, or the contents of the file it names."""
    raw = os.environ.get(name, "").strip()
    if not raw or raw.startswith(("-----BEGIN", "{")):
        return raw
    path = Path(raw)
    if path.is_file():
        try:
            return path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ImproperlyConfigured(f"{name}: cannot read {raw!r} ({exc})") from None
    if "/" in raw or raw.endswith((".json", ".p8", ".pem")):
        raise ImproperlyConfigured(f"{name} names a file that does not exist: {raw!r}")
    return raw  # a key inline in another encoding (a VAPID key's base64url)


def fcm_service_account(name: str) -> dict | None:
    """A Google service account key (JSON), for FCM's HTTP v1 API."""
    raw = secret_text(name)
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a service account key (JSON)") from None
    required = ("client_email", "private_key")
    if (
        not isinstance(info, dict)
        or info.get("type") != "service_account"
        or not all(isinstance(info.get(k), str) and info[k] for k in required)
    ):
        raise ImproperlyConfigured(
            f"{name} must be a service account key: type service_account, "
            "client_email and private_key"
        )
    _private_key(info["private_key"], name)
    return info


def apns_auth_key(name: str) -> str:
    """An APNs token-signing key (the .p8 file's PEM): a P-256 private key."""
    pem = secret_text(name)
    if pem:
        from cryptography.hazmat.primitives.asymmetric import ec

        key = _private_key(pem, name)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ImproperlyConfigured(f"{name} must be a P-256 (ES256) private key")
    return pem


def vapid_private_key(name: str) -> str:
    """A VAPID private key: PEM, or the raw key base64url-encoded."""
    raw = secret_text(name)
    if raw:
        from py_vapid import Vapid

        try:
            if raw.startswith("-----BEGIN"):
                Vapid.from_pem(raw.encode())
            else:
                Vapid.from_string(raw)
        except Exception:  # py_vapid raises several kinds for a bad key
            raise ImproperlyConfigured(f"{name} is not a VAPID (P-256) private key") from None
    return raw


def _private_key(pem: str, name: str):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(f"{name}: the private key does not load (PEM)") from None
