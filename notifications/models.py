"""A device a user registered for push notifications (PROTOCOL.md Part 2,
"Devices and push notifications").

`token` is what the provider needs to reach the device: an FCM registration
token, an APNs device token (hex), or a browser's Web Push subscription
(JSON: endpoint and keys). It is a credential to that device: it never
leaves the database except to its provider, and is never logged.
"""

import uuid

from django.conf import settings
from django.db import models


class Device(models.Model):
    class Platform(models.TextChoices):
        FCM = "fcm", "Firebase Cloud Messaging"
        APNS = "apns", "Apple Push Notification service"
        WEBPUSH = "webpush", "Web Push"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    platform = models.CharField(max_length=8, choices=Platform.choices)
    token = models.TextField()
    # One row per device, whoever registers it last: a digest of the platform
    # and what identifies the device (the token; a subscription's endpoint).
    token_digest = models.CharField(max_length=64, unique=True)
    # What registered it, so that log-out forgets it: the log-in id of the
    # access token (trips.authentication.LOGIN_CLAIM), or a digest of the
    # session key (trips.sockets.session_digest), never the key itself.
    login = models.CharField(max_length=64, blank=True, default="")
    session = models.CharField(max_length=64, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-updated"], name="device_user_recent")]

    def __str__(self) -> str:
        return f"{self.platform} device {self.pk}"
