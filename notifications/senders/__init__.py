"""The push providers' senders, one per platform, each built from settings
and off (None) until configured. Built once per process and per
configuration (a changed setting builds a new one); a forked child builds
its own, since HTTP connections do not survive a fork.
"""

import json
import os
import threading

from django.conf import settings

from notifications.senders.base import (
    Outcome,
    PushError,
    PushRejected,
    Sender,
    TransientPushError,
)

__all__ = ["Outcome", "PushError", "PushRejected", "Sender", "TransientPushError", "sender_for"]

_lock = threading.Lock()
_built: dict[tuple, Sender | None] = {}


def _config(platform: str) -> tuple:
    if platform == "fcm":
        return (
            platform,
            json.dumps(settings.FCM_SERVICE_ACCOUNT_KEY, sort_keys=True),
            settings.FCM_PROJECT_ID,
            settings.FCM_URL,
            settings.FCM_TOKEN_URL,
            settings.PUSH_TIMEOUT_S,
        )
    if platform == "apns":
        return (
            platform,
            settings.APNS_AUTH_KEY,
            settings.APNS_KEY_ID,
            settings.APNS_TEAM_ID,
            settings.APNS_TOPIC,
            settings.APNS_URL,
            settings.PUSH_TIMEOUT_S,
        )
    if platform == "webpush":
        return (
            platform,
            settings.WEBPUSH_VAPID_PRIVATE_KEY,
            settings.WEBPUSH_VAPID_SUBJECT,
            settings.PUSH_TIMEOUT_S,
        )
    return (platform,)


def _build(platform: str) -> Sender | None:
    if platform == "fcm" and settings.FCM_SERVICE_ACCOUNT_KEY:
        from notifications.senders.fcm import FcmSender

        return FcmSender(
            service_account=settings.FCM_SERVICE_ACCOUNT_KEY,
            project_id=settings.FCM_PROJECT_ID,
            base_url=settings.FCM_URL,
            token_url=settings.FCM_TOKEN_URL,
            timeout_s=settings.PUSH_TIMEOUT_S,
        )
    if platform == "apns" and settings.APNS_AUTH_KEY:
        from notifications.senders.apns import ApnsSender

        return ApnsSender(
            auth_key=settings.APNS_AUTH_KEY,
            key_id=settings.APNS_KEY_ID,
            team_id=settings.APNS_TEAM_ID,
            topic=settings.APNS_TOPIC,
            base_url=settings.APNS_URL,
            timeout_s=settings.PUSH_TIMEOUT_S,
        )
    if platform == "webpush" and settings.WEBPUSH_VAPID_PRIVATE_KEY:
        from notifications.senders.webpush import WebPushSender

        return WebPushSender(
            private_key=settings.WEBPUSH_VAPID_PRIVATE_KEY,
            subject=settings.WEBPUSH_VAPID_SUBJECT,
            timeout_s=settings.PUSH_TIMEOUT_S,
        )
    return None


def sender_for(platform: str) -> Sender | None:
    """The platform's sender, or None when that provider is not configured."""
    config = _config(platform)
    with _lock:
        if config not in _built:
            _built[config] = _build(platform)
        return _built[config]


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _built.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
