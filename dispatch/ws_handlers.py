"""Driver messages over the WebSocket: presence and positions (PROTOCOL.md).

Each handler is `async (consumer, data) -> reply frame | None`. Going online or
offline reads the database (is the driver on a trip, holding an offer?), so it
runs off the event loop; a position is the hot path and stays on it: one Redis
script call, and a push to the rider only when one is due.
"""

from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty

from dispatch.drivers import driver_go_offline, driver_go_online, driver_report_location_async
from taxi.infra.push import replying_to
from trips import events
from trips.errors import Forbidden
from trips.serializers import LocationSerializer, PositionSerializer, validated

# `update.location` is the hot path (every driver, every few seconds): its
# fields are validated one by one, without building a serializer per frame,
# by the very field objects (and `validate`) of LocationSerializer, so the
# rules and the error shape are the same. About 3 us a frame instead of 65.
_LOCATION = LocationSerializer()
_LOCATION_FIELDS = dict(_LOCATION.fields)


def _require_driver(consumer) -> None:
    if not consumer.user.is_driver:
        raise Forbidden("Only drivers can do that.")


def _location(data: dict) -> dict:
    values, errors = {}, {}
    for name, field in _LOCATION_FIELDS.items():
        try:
            values[name] = field.run_validation(data.get(name, empty))
        except ValidationError as exc:
            errors[name] = exc.detail
    if errors:
        raise ValidationError(errors)
    return _LOCATION.validate(values)


async def driver_online(consumer, data: dict) -> dict:
    _require_driver(consumer)
    position = validated(PositionSerializer, data)
    # The reply is `driver.status`: the service's push of it skips this socket.
    with replying_to(consumer.channel_name):
        await consumer.call(
            driver_go_online, driver=consumer.user, lat=position["lat"], lng=position["lng"]
        )
    return events.driver_status("online")


async def driver_offline(consumer, data: dict) -> dict:
    _require_driver(consumer)
    with replying_to(consumer.channel_name):
        await consumer.call(driver_go_offline, driver=consumer.user)
    return events.driver_status("offline")


async def update_location(consumer, data: dict) -> None:
    _require_driver(consumer)
    location = _location(data)
    await driver_report_location_async(
        driver=consumer.user,
        lat=location["lat"],
        lng=location["lng"],
        heading=location["heading"],
    )
    return None


HANDLERS: dict = {
    "driver.online": driver_online,
    "driver.offline": driver_offline,
    "update.location": update_location,
}
