"""The cancellation policy (PROTOCOL.md Part 2, "Statuses, extended"): which
reason codes each side may give, when a driver may cancel for a no-show, and
when a cancel costs the rider the product's cancellation fee."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings

from pricing import money
from trips.errors import InvalidInput
from trips.models import Actor, Trip

RIDER_NO_SHOW = "rider_no_show"
RIDER_CODES = frozenset({"changed_mind", "driver_too_far", "wrong_pickup", "other"})
DRIVER_CODES = frozenset({RIDER_NO_SHOW, "vehicle_issue", "unsafe", "other"})


def check_reason_code(actor: str, code: str | None) -> None:
    """A code the side canceling may give (or none); else a 400."""
    if code is None:
        return
    allowed = RIDER_CODES if actor == Actor.RIDER else DRIVER_CODES
    if code not in allowed:
        raise InvalidInput(f"reason_code must be one of {', '.join(sorted(allowed))}.")


def no_show_due(trip: Trip, now: datetime) -> bool:
    """The driver has waited NO_SHOW_WAIT_S at the pick-up."""
    if trip.status != Trip.Status.ARRIVED or trip.arrived_at is None:
        return False
    return now >= trip.arrived_at + timedelta(seconds=settings.NO_SHOW_WAIT_S)


def fee(trip: Trip, actor: str, code: str | None, now: datetime) -> Decimal | None:
    """What the rider owes for this cancel: the product's cancellation fee
    (from the rate card the trip was priced with) for a rider's cancel more
    than RIDER_FREE_CANCEL_S after a driver accepted, or a driver's no-show
    cancel; None (free) for every other."""
    if trip.rate_card_id is None:
        return None
    charged = code == RIDER_NO_SHOW and actor == Actor.ASSIGNED_DRIVER
    if actor == Actor.RIDER and trip.accepted_at is not None:
        free_until = trip.accepted_at + timedelta(seconds=settings.RIDER_FREE_CANCEL_S)
        charged = trip.status in Trip.BEFORE_PICK_UP and now > free_until
    if not charged:
        return None
    card = trip.rate_card
    return money.quantize(card.cancellation_fee, card.currency)
