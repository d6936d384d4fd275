"""Trip messages over the WebSocket (PROTOCOL.md, "WebSocket"; docs/asyncapi.yaml).

Each handler is `async (consumer, data) -> reply frame | None`: validate
`data`, call one service off the event loop and build the reply there too
(serialising a trip reads its rider and driver, which is ORM work and must not
run on the event loop). Who may do what is the services' call, as for REST,
so a socket and a REST client get the same error codes; but what a user's
group settles is refused here, on the event loop, before a database thread
is taken (every socket's database work shares that thread, so a flood of
frames the user may not send slowed everyone), with the code the service
would give.

A handler that changes a trip answers its own socket with the new trip (the
reply carries the request_id) and calls the service inside
`push.replying_to(channel)`, so the service's push of that result after
commit skips that one socket instead of sending it the same trip a second
time. Every other socket, the caller's own included, still gets the push.
"""

from collections.abc import Callable
from uuid import UUID

from rest_framework import serializers

from dispatch.offers import offer_decline
from taxi.infra.push import replying_to
from trips import events
from trips.errors import Forbidden, OfferNotAvailable
from trips.fields import TextField
from trips.models import Trip
from trips.serializers import TripCancelSerializer, TripCreateSerializer, validated
from trips.services import trip_accept, trip_cancel, trip_create, trip_move
from trips.throttles import trip_create_throttle_check


class TripIdField(serializers.UUIDField):
    """A trip id as the API writes it: a UUID string. Numbers are refused
    (DRF's UUIDField would read 5 as 00000000-0000-0000-0000-000000000005)."""

    def to_internal_value(self, data: object) -> UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class TripRefSerializer(serializers.Serializer):
    id = TripIdField()


class TripUpdateSerializer(TripRefSerializer):
    """`update.trip`: only `id` and `status` count; other fields are ignored.
    Any trip status is well-formed; the table decides which moves happen."""

    status = serializers.ChoiceField(choices=Trip.Status.choices)
    pin = TextField(max_length=8, required=False, allow_null=True, default=None)


class TripCancelMessageSerializer(TripCancelSerializer):
    """`cancel.trip`: the trip's id, and the REST body (`reason?`)."""

    id = TripIdField()


def _require_rider(consumer) -> None:
    if not consumer.user.is_rider:
        raise Forbidden("Only riders can request trips.")


def _require_offer_holder(consumer) -> None:
    """Only a driver ever holds an offer; a rider asking is told there is none."""
    if not consumer.user.is_driver:
        raise OfferNotAvailable()


async def _change_trip(consumer, reply_type: str, service: Callable, **kwargs) -> dict:
    def run() -> dict:
        with replying_to(consumer.channel_name):
            trip = service(**kwargs)
        return events.frame(reply_type, events.trip_data(trip, consumer.user.pk))

    return await consumer.call(run)


async def create_trip(consumer, data: dict) -> dict:
    _require_rider(consumer)

    def run() -> dict:
        # Counted before validation, as the REST call counts every request;
        # all in one trip to the sync thread.
        trip_create_throttle_check(user=consumer.user)
        fields = validated(TripCreateSerializer, data)
        with replying_to(consumer.channel_name):
            trip = trip_create(rider=consumer.user, **fields)
        return events.frame(events.TRIP_CREATED, events.trip_data(trip, consumer.user.pk))

    return await consumer.call(run)


async def update_trip(consumer, data: dict) -> dict:
    """The course's message. STARTED accepts the caller's live offer (as
    `accept.trip`); CANCELED cancels (as `cancel.trip`, default reason);
    ARRIVED, IN_PROGRESS and COMPLETED move the caller's assigned trip (as
    REST's status call, `pin` included). SCHEDULED, REQUESTED and EXPIRED are
    statuses no client sets: `invalid_transition`, as for every move the
    table refuses."""
    fields = validated(TripUpdateSerializer, data)
    trip_id, status = fields["id"], fields["status"]
    if status == Trip.Status.CANCELED:
        return await _change_trip(
            consumer, events.TRIP_UPDATED, trip_cancel, trip_id=trip_id, user=consumer.user
        )
    if status == Trip.Status.STARTED:
        _require_offer_holder(consumer)
        return await _change_trip(
            consumer, events.TRIP_UPDATED, trip_accept, trip_id=trip_id, driver=consumer.user
        )
    return await _change_trip(
        consumer,
        events.TRIP_UPDATED,
        trip_move,
        trip_id=trip_id,
        user=consumer.user,
        status=status,
        pin=fields["pin"],
    )


async def accept_trip(consumer, data: dict) -> dict:
    trip_id = validated(TripRefSerializer, data)["id"]
    _require_offer_holder(consumer)
    return await _change_trip(
        consumer, events.TRIP_UPDATED, trip_accept, trip_id=trip_id, driver=consumer.user
    )


async def decline_trip(consumer, data: dict) -> dict:
    """REST answers 204; a socket answers `trip.offer.declined`, so the
    request_id gets its reply like every other request's."""
    trip_id = validated(TripRefSerializer, data)["id"]
    _require_offer_holder(consumer)
    offer = await consumer.call(offer_decline, trip_id=trip_id, driver=consumer.user)
    return events.trip_offer_declined(offer)


async def cancel_trip(consumer, data: dict) -> dict:
    fields = validated(TripCancelMessageSerializer, data)
    return await _change_trip(
        consumer,
        events.TRIP_UPDATED,
        trip_cancel,
        trip_id=fields["id"],
        user=consumer.user,
        reason=fields["reason"],
        reason_code=fields["reason_code"],
    )


HANDLERS: dict = {
    "create.trip": create_trip,
    "update.trip": update_trip,
    "accept.trip": accept_trip,
    "decline.trip": decline_trip,
    "cancel.trip": cancel_trip,
}
