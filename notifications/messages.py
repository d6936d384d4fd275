"""What a push notification says, built from the same facts as the socket's
frames (trips/events.py), and carried to the worker as JSON.

A notification is a hint that brings the app back: it names the event, the
trip and its status and `version`, and a line to show; the app then re-reads
REST, the truth. No addresses or names travel through the providers. Each
has an expiry (an offer's deadline; a few minutes for a trip update): a
notification that could no longer help is not sent, nor retried.
"""

import time
import uuid
from dataclasses import asdict, dataclass, field

from trips.models import Trip

TRIP_UPDATED = "trip.updated"
TRIP_OFFER = "trip.offer"

# A trip update older than this tells the app nothing it would not read anew.
TRIP_UPDATE_TTL_S = 15 * 60

# What the rider reads on the lock screen, per status the trip moved to.
RIDER_LINES = {
    Trip.Status.REQUESTED: ("Finding your driver", "We are looking for a driver near you."),
    Trip.Status.STARTED: ("Your driver is on the way", "A driver accepted your ride."),
    Trip.Status.ARRIVED: ("Your driver has arrived", "Your driver is at the pick-up."),
    Trip.Status.IN_PROGRESS: ("Your ride has started", "Enjoy the ride."),
    Trip.Status.COMPLETED: ("You have arrived", "Your ride is complete."),
    Trip.Status.CANCELED: ("Your ride was canceled", "Open the app for details."),
    Trip.Status.EXPIRED: ("No driver available", "No driver could take your ride."),
}
DRIVER_CANCELED = ("Finding you another driver", "Your driver had to cancel.")


@dataclass(frozen=True)
class Notification:
    kind: str
    title: str
    body: str
    # Strings only: FCM's `data` takes nothing else.
    data: dict[str, str]
    # Providers keep only the newest undelivered notification per key.
    collapse_key: str
    expires_at: float  # unix time
    urgent: bool = True
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def ttl_s(self, now: float | None = None) -> int:
        """Whole seconds left (0 once expired)."""
        return max(0, int(self.expires_at - (time.time() if now is None else now)))

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: object) -> "Notification":
        """From a task's argument; ValueError when it is not one."""
        if not isinstance(raw, dict):
            raise ValueError("not a notification")
        try:
            notification = cls(**raw)
        except TypeError:
            raise ValueError("not a notification") from None
        strings = (notification.kind, notification.title, notification.body, notification.id)
        if not all(isinstance(s, str) for s in (*strings, notification.collapse_key)):
            raise ValueError("not a notification")
        if not isinstance(notification.data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in notification.data.items()
        ):
            raise ValueError("not a notification")
        if not isinstance(notification.expires_at, int | float):
            raise ValueError("not a notification")
        return notification


def trip_updated(trip) -> Notification:
    """`trip.updated` for the trip's rider."""
    if trip.status == Trip.Status.REQUESTED and trip.status_reason == Trip.Reason.DRIVER_CANCELED:
        title, body = DRIVER_CANCELED
    else:
        title, body = RIDER_LINES.get(trip.status, ("Your ride", "Your ride was updated."))
    return Notification(
        kind=TRIP_UPDATED,
        title=title,
        body=body,
        data={
            "type": TRIP_UPDATED,
            "trip_id": str(trip.pk),
            "status": str(trip.status),
            "version": str(trip.version),
        },
        collapse_key=f"trip-{trip.pk}",
        expires_at=time.time() + TRIP_UPDATE_TTL_S,
    )


def trip_offer(offer, trip) -> Notification:
    """`trip.offer` for the offered driver, until the offer's deadline."""
    distance = f"{offer.distance_km:.1f} km away" if offer.distance_km is not None else "nearby"
    return Notification(
        kind=TRIP_OFFER,
        title="New ride request",
        body=f"Pick-up {distance}. Open the app to accept.",
        data={
            "type": TRIP_OFFER,
            "trip_id": str(trip.pk),
            "offer_id": str(offer.pk),
            "expires_at": offer.expires_at.isoformat(),
        },
        collapse_key=f"offer-{offer.pk}",
        expires_at=offer.expires_at.timestamp(),
    )
