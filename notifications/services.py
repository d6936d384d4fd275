"""Devices and the notifications sent to them (PROTOCOL.md Part 2, "Devices
and push notifications").

Writes to devices, and the one way other code asks for a push notification:
`notify` queues the `workers.push_notification` task, which sends to each of
the user's devices through its provider (`notifications.delivery`), off the
request and the dispatch loop. Pushes over the socket stay the first way to
reach an app; a notification is for an app that is not listening:

- `trip.updated` goes to a rider with no open socket (`notify_rider_if_away_on_commit`,
  called by the trip services after every change the rider did not make);
- `trip.offer` goes to a driver whose sockets did not acknowledge it: the
  acknowledgement machinery calls `notify_offer` when it concludes that.
"""

import logging
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from redis.exceptions import RedisError

from notifications import messages
from notifications.messages import Notification
from notifications.models import Device
from notifications.tokens import DeviceToken
from trips import sockets
from trips.errors import NotFound
from trips.models import User
from workers import queue

logger = logging.getLogger(__name__)


def device_register(
    *, user: User, token: DeviceToken, login: str | None = None, session: str | None = None
) -> Device:
    """Record the device for `user`. The same token again is the same row
    (its id unchanged), now the caller's and remembered with the caller's
    log-in or session: a token that moves to another user moves. Past
    DEVICES_MAX_PER_USER, the user's least recently registered go."""
    with transaction.atomic():
        device, created = Device.objects.update_or_create(
            token_digest=token.digest,
            defaults={
                "user": user,
                "platform": token.platform,
                "token": token.value,
                "login": login or "",
                "session": session or "",
            },
        )
        surplus = list(
            Device.objects.filter(user=user)
            .order_by("-updated", "-created")
            .values_list("pk", flat=True)[settings.DEVICES_MAX_PER_USER :]
        )
        if surplus:
            Device.objects.filter(pk__in=surplus).delete()
    logger.info(
        "devices.registered",
        extra={
            "device_id": str(device.pk),
            "user_id": user.pk,
            "platform": token.platform,
            "new": created,
            "forgotten": len(surplus),
        },
    )
    return device


def device_delete(*, device_id: UUID, user: User) -> None:
    """The owner removes a device; anyone else's is NotFound (as if it did
    not exist)."""
    deleted, _ = Device.objects.filter(pk=device_id, user=user).delete()
    if not deleted:
        raise NotFound()
    logger.info("devices.deleted", extra={"device_id": str(device_id), "user_id": user.pk})


def devices_forget_log_out(
    *, user_id: int, logins: set[str] | frozenset[str] = frozenset(), session: str | None = None
) -> int:
    """Log-out: the devices registered with that log-in or session go.
    Returns how many."""
    match = Q(login__in=[login for login in logins if login])
    if session:
        match |= Q(session=session)
    if not logins and not session:
        return 0
    deleted, _ = Device.objects.filter(match, user_id=user_id).delete()
    if deleted:
        logger.info("devices.forgotten_at_log_out", extra={"user_id": user_id, "count": deleted})
    return deleted


# --- notifications ----------------------------------------------------------------


def notify(*, user_id: int, notification: Notification) -> None:
    """Queue `notification` for every device of the user, now. Never raises:
    a notification is a hint, and what it reports has happened."""
    queue.push_notification(user_id, notification.to_json())


def notify_on_commit(*, user_id: int, notification: Notification) -> None:
    transaction.on_commit(lambda: notify(user_id=user_id, notification=notification), robust=True)


def notify_offer(*, offer, trip) -> None:
    """`trip.offer` as a push notification to the offered driver's devices,
    living until the offer's deadline. For the acknowledgement machinery
    (PROTOCOL.md Part 2, "WebSocket, extended"): call it, outside any
    transaction, once an offer went unacknowledged for OFFER_ACK_TIMEOUT_S."""
    notify(user_id=offer.driver_id, notification=messages.trip_offer(offer, trip))


def notify_rider_if_away_on_commit(trip) -> None:
    """After commit, `trip.updated` as a push notification to the trip's
    rider if none of their sockets is open (on any web process: the socket
    leases of trips.sockets) and they registered a device."""
    notification = messages.trip_updated(trip)
    rider_id = trip.rider_id
    transaction.on_commit(lambda: _notify_if_away(rider_id, notification), robust=True)


def _notify_if_away(user_id: int, notification: Notification) -> None:
    try:
        if sockets.user_has_open_socket(user_id):
            return
    except (RedisError, OSError) as exc:
        # No broker either (one Redis): nothing could be queued.
        logger.warning("push.presence_unknown", extra={"error": type(exc).__name__})
        return
    if not Device.objects.filter(user_id=user_id).exists():
        return
    notify(user_id=user_id, notification=notification)
