"""Every frame the server sends: message types and the shape of each payload
(PROTOCOL.md, "WebSocket"). Builders only: `taxi.infra.push` carries them.
A new push type is a constant and a builder here, and a call where it happens.
"""

from django.utils import timezone

from trips.serializers import TripSerializer

# Server -> client message types (PROTOCOL.md, "WebSocket").
TRIP_CREATED = "trip.created"
TRIP_UPDATED = "trip.updated"
TRIP_OFFER = "trip.offer"
TRIP_OFFER_REVOKED = "trip.offer.revoked"
# The reply to a driver's own `decline.trip` over the socket (REST answers 204).
TRIP_OFFER_DECLINED = "trip.offer.declined"
DRIVER_LOCATION = "driver.location"
DRIVER_STATUS = "driver.status"
# The reply to `auth.refresh`: the socket now lives until `expires_at`.
AUTH_REFRESHED = "auth.refreshed"
ERROR = "error"

# Close codes every socket of the service uses (PROTOCOL.md, "WebSocket").
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
# PROTOCOL.md, "WebSocket, extended": the credentials that opened the socket ended.
CLOSE_TOKEN_EXPIRED = (4001, "token_expired")
CLOSE_CREDENTIALS_REVOKED = (4003, "credentials_revoked")


class RevokeReason:
    """`trip.offer.revoked`'s `reason`."""

    EXPIRED = "expired"
    CANCELED = "canceled"


def frame(type_: str, data: object) -> dict:
    return {"type": type_, "data": data}


def trip_data(trip, viewer_id: int | None = None) -> dict:
    """The trip as `viewer_id` sees it (the PIN is the rider's; a driver no
    longer on the trip sees no rider)."""
    return TripSerializer(trip, context={"viewer_id": viewer_id}).data


def trip_participants(trip) -> list[int]:
    return [trip.rider_id] + ([trip.driver_id] if trip.driver_id else [])


def trip_created(trip) -> dict:
    return frame(TRIP_CREATED, trip_data(trip, trip.rider_id))


def trip_updated(trip, viewer_id: int | None = None) -> dict:
    return frame(TRIP_UPDATED, trip_data(trip, viewer_id))


def trip_offer(offer, trip, timeout_s: float) -> dict:
    """`trip.offer`: what the driver needs to decide, and no rider identity.
    `distance_km` is the straight line from the driver to the pick-up,
    `pickup_eta_s` the estimated drive there; `product` and `fare` (the
    rider's price, when known) say what the ride is."""
    return frame(
        TRIP_OFFER,
        {
            "offer_id": str(offer.pk),
            "expires_at": offer.expires_at.isoformat(),
            "timeout_s": timeout_s,
            "trip": {
                "id": str(trip.pk),
                "pick_up_address": trip.pick_up_address,
                "pick_up_lat": trip.pick_up_lat,
                "pick_up_lng": trip.pick_up_lng,
                "drop_off_address": trip.drop_off_address,
                "drop_off_lat": trip.drop_off_lat,
                "drop_off_lng": trip.drop_off_lng,
                "distance_km": offer.distance_km,
                "pickup_eta_s": offer.pickup_eta_s,
                "product": trip.product,
                "fare": trip.fare,
            },
        },
    )


def trip_offer_revoked(offer, reason: str) -> dict:
    return frame(
        TRIP_OFFER_REVOKED,
        {"trip_id": str(offer.trip_id), "offer_id": str(offer.pk), "reason": reason},
    )


def trip_offer_declined(offer) -> dict:
    return frame(TRIP_OFFER_DECLINED, {"trip_id": str(offer.trip_id), "offer_id": str(offer.pk)})


def driver_status(status: str) -> dict:
    return frame(DRIVER_STATUS, {"status": status})


def driver_location(
    trip_id: str, lat: float, lng: float, heading: float | None, eta_s: int | None = None
) -> dict:
    """`eta_s`: seconds to the pick-up until the rider is in, then to the
    drop-off (null without drop-off coordinates)."""
    return frame(
        DRIVER_LOCATION,
        {
            "trip_id": trip_id,
            "lat": lat,
            "lng": lng,
            "heading": heading,
            "eta_s": eta_s,
            "at": timezone.now().isoformat(),
        },
    )
