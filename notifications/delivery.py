"""Sending one notification to a user's devices: what the
`workers.push_notification` task does (notifications.services queues it).

Each device is sent to at most once per notification (a claim in Redis,
notifications/keys.py), so a task run twice, or retried after a transient
failure of one provider, reaches only the devices not reached yet. A
device whose provider says its token is gone is deleted. A notification
past its expiry is dropped, retried or not.
"""

import logging
from dataclasses import dataclass, field

from notifications import keys
from notifications.messages import Notification
from notifications.models import Device
from notifications.senders import (
    Outcome,
    PushRejected,
    TransientPushError,
    sender_for,
)
from taxi.infra.redis import get_redis

logger = logging.getLogger(__name__)


@dataclass
class Delivery:
    """What one run did, by device id."""

    delivered: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    expired: bool = False


def notification_deliver(*, user_id: int, notification: Notification) -> Delivery:
    """Send to each of the user's devices whose provider is configured.
    Raises TransientPushError (with the longest Retry-After asked) when some
    device should be tried again; the others are done."""
    delivery = Delivery()
    if notification.expired():
        delivery.expired = True
        logger.info("push.expired", extra=_about(user_id, notification))
        return delivery
    devices = list(Device.objects.filter(user_id=user_id, user__is_active=True))
    redis = get_redis()
    transient: list[TransientPushError] = []
    for device in devices:
        sender = sender_for(device.platform)
        claim = keys.sent(notification.id, str(device.pk))
        if sender is None or not redis.set(claim, "sending", nx=True, ex=keys.SENDING_TTL_S):
            delivery.skipped.append(str(device.pk))
            continue
        try:
            outcome = sender.send(device.token, notification)
        except TransientPushError as exc:
            redis.delete(claim)
            transient.append(exc)
            logger.warning(
                "push.retry", extra={**_about(user_id, notification, device), "error": str(exc)}
            )
            continue
        except PushRejected as exc:
            # Trying again would be refused again: done with this device.
            redis.set(claim, "sent", ex=keys.SENT_TTL_S)
            logger.error(
                "push.rejected", extra={**_about(user_id, notification, device), "error": str(exc)}
            )
            continue
        redis.set(claim, "sent", ex=keys.SENT_TTL_S)
        if outcome is Outcome.INVALID_TOKEN:
            # Only the row as read: a re-registration meanwhile stands.
            Device.objects.filter(pk=device.pk, token=device.token).delete()
            delivery.deleted.append(str(device.pk))
            logger.info("push.token_invalid_deleted", extra=_about(user_id, notification, device))
        else:
            delivery.delivered.append(str(device.pk))
            logger.info("push.sent", extra=_about(user_id, notification, device))
    if transient:
        waits = [exc.retry_after_s for exc in transient if exc.retry_after_s is not None]
        raise TransientPushError(
            f"{len(transient)} device(s) to retry", retry_after_s=max(waits) if waits else None
        )
    return delivery


def _about(user_id: int, notification: Notification, device: Device | None = None) -> dict:
    about = {"user_id": user_id, "kind": notification.kind, "notification_id": notification.id}
    if device is not None:
        about |= {"device_id": str(device.pk), "platform": device.platform}
    return about
