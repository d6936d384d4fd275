"""Trip bodies in and out. Coordinates are checked here, once, for REST and WS."""

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pricing import money
from pricing.serializers import FareSerializer, VehiclePublicSerializer
from trips import cancellation
from trips.auth import UserSerializer
from trips.fields import FlatListField, TextField, UUIDStringField
from trips.models import Rating, Trip, TripEvent

# The latitude range a Redis GEO index accepts (PROTOCOL.md).
MAX_LAT = 85.05112878
MAX_LNG = 180.0


def validated(serializer_class: type[serializers.Serializer], data: object) -> dict:
    """`data` checked by a fresh `serializer_class`; ValidationError if it fails."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class BoundedFloatField(serializers.FloatField):
    """A finite JSON number within [low, high]; strings, booleans, NaN and
    infinities are refused."""

    default_error_messages = {
        "invalid": "A valid number is required.",
        "not_finite": "Must be a finite number.",
        "range": "Must be between {low} and {high}.",
    }

    def __init__(self, *, low: float, high: float, **kwargs) -> None:
        self.low, self.high = low, high
        # min_value/max_value put the range in the OpenAPI schema; the check
        # itself is the one below, which runs first.
        super().__init__(min_value=low, max_value=high, **kwargs)

    def to_internal_value(self, data: object) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, int) and not self.low <= data <= self.high:
            # JSON integers have no size limit: judge one exactly, before
            # float() would overflow on hundreds of digits.
            self.fail("range", low=self.low, high=self.high)
        value = float(data)
        if not math.isfinite(value):
            self.fail("not_finite")
        if not self.low <= value <= self.high:
            self.fail("range", low=self.low, high=self.high)
        return value


def latitude(**kwargs) -> BoundedFloatField:
    return BoundedFloatField(low=-MAX_LAT, high=MAX_LAT, **kwargs)


def longitude(**kwargs) -> BoundedFloatField:
    return BoundedFloatField(low=-MAX_LNG, high=MAX_LNG, **kwargs)


class OptionalMethodField(serializers.SerializerMethodField):
    """A field some answers leave out: the OpenAPI document does not list it
    as required (`taxi.infra.openapi.AutoSchema`)."""

    openapi_optional = True


class AssignedDriverSerializer(UserSerializer):
    """The trip's driver: the user object and, once assigned, their car."""

    vehicle = serializers.SerializerMethodField()

    class Meta(UserSerializer.Meta):
        fields = (*UserSerializer.Meta.fields, "vehicle")

    @extend_schema_field(VehiclePublicSerializer(allow_null=True))
    def get_vehicle(self, driver) -> dict | None:
        # Reads `driver.vehicle` as selected with the trip (select_related).
        vehicle = getattr(driver, "vehicle", None)
        return None if vehicle is None else VehiclePublicSerializer(vehicle).data


class TripSerializer(serializers.ModelSerializer):
    """The trip object. A driver who is only offered the trip sees `rider` as
    null: like `trip.offer`, it carries no rider identity before acceptance."""

    rider = UserSerializer(read_only=True, allow_null=True)
    driver = AssignedDriverSerializer(read_only=True, allow_null=True)
    fare = FareSerializer(read_only=True, allow_null=True)

    pin = OptionalMethodField(
        help_text="The ride PIN to show the driver: only in the rider's view, once a "
        "driver accepted and until the ride ends (absent otherwise)."
    )
    cancellation_fee = serializers.SerializerMethodField(
        help_text="What the cancel costs the rider, a decimal string in the fare's "
        "currency; null when free or not canceled."
    )

    def to_representation(self, instance: Trip) -> dict:
        data = super().to_representation(instance)
        request = self.context.get("request")
        viewer = getattr(request, "user", None)
        viewer_id = viewer.pk if viewer is not None else self.context.get("viewer_id")
        if viewer_id is not None and viewer_id not in (instance.rider_id, instance.driver_id):
            data["rider"] = None
        # The ride PIN is the rider's to show, once a driver is on the way.
        if (
            viewer_id is None
            or viewer_id != instance.rider_id
            or instance.status not in (Trip.ASSIGNED)
        ):
            data.pop("pin", None)
        return data

    @extend_schema_field(serializers.CharField(required=False))
    def get_pin(self, trip: Trip) -> str:
        return trip.pin

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_cancellation_fee(self, trip: Trip) -> str | None:
        if trip.cancellation_fee is None:
            return None
        currency = (trip.fare or {}).get("currency") or "USD"
        if trip.rate_card_id is not None:
            currency = trip.rate_card.currency
        return money.as_string(trip.cancellation_fee, currency)

    class Meta:
        model = Trip
        fields = (
            "id",
            "created",
            "updated",
            "status",
            "status_reason",
            "version",
            "pick_up_address",
            "pick_up_lat",
            "pick_up_lng",
            "drop_off_address",
            "drop_off_lat",
            "drop_off_lng",
            "rider",
            "driver",
            "product",
            "fare",
            "distance_m",
            "duration_s",
            "pickup_eta_s",
            "scheduled_for",
            "cancellation_fee",
            "cancel_reason_code",
            "pin",
        )
        read_only_fields = fields
        extra_kwargs = {  # noqa: RUF012 - DRF reads it as a class attribute
            "product": {"help_text": "The product's code (GET /api/products/)."},
            "distance_m": {"help_text": "The route from pick-up to drop-off as estimated."},
            "duration_s": {"help_text": "The ride time as estimated at the request."},
            "pickup_eta_s": {
                "help_text": "The driver's estimated drive to the pick-up (from the quote, "
                "then the accepted offer)."
            },
        }


BOTH_OR_NEITHER = "Optional; give both drop-off coordinates, or neither."


class TripCreateSerializer(serializers.Serializer):
    """What a rider may say about a new trip; anything else in the body is ignored."""

    pick_up_address = TextField(max_length=255)
    pick_up_lat = latitude()
    pick_up_lng = longitude()
    drop_off_address = TextField(max_length=255)
    drop_off_lat = latitude(
        required=False, allow_null=True, default=None, help_text=BOTH_OR_NEITHER
    )
    drop_off_lng = longitude(
        required=False, allow_null=True, default=None, help_text=BOTH_OR_NEITHER
    )

    product = serializers.SlugField(
        max_length=32,
        required=False,
        allow_null=True,
        default=None,
        help_text="A product code (GET /api/products/); DEFAULT_PRODUCT when none.",
    )
    scheduled_for = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Book for later: between SCHEDULE_MIN_AHEAD_S (15 min) and 7 days ahead. "
        "The trip is SCHEDULED until dispatch starts SCHEDULE_DISPATCH_LEAD_S before.",
    )
    quote_id = UUIDStringField(
        required=False,
        allow_null=True,
        default=None,
        help_text="A quote of the caller's (POST /api/quotes/): the trip keeps its price.",
    )

    def validate(self, attrs: dict) -> dict:
        if (attrs.get("drop_off_lat") is None) != (attrs.get("drop_off_lng") is None):
            raise serializers.ValidationError(
                {"drop_off_lat": ["Give both drop-off coordinates, or neither."]}
            )
        return attrs


class PositionSerializer(serializers.Serializer):
    lat = latitude()
    lng = longitude()


class LocationSerializer(PositionSerializer):
    heading = BoundedFloatField(low=0, high=360, required=False, allow_null=True, default=None)
    # PROTOCOL.md lets a driver send `speed`, so a bad one is a 400 like any
    # bad field; nothing uses it (the rider's `driver.location` carries none),
    # so no service takes it.
    speed = BoundedFloatField(low=0, high=1000, required=False, allow_null=True, default=None)


class TripMoveSerializer(serializers.Serializer):
    """The assigned driver's moves: at the pick-up, picked the rider up, dropped them off."""

    status = serializers.ChoiceField(choices=[(s, s) for s in Trip.DRIVER_MOVES])
    pin = TextField(
        max_length=8,
        required=False,
        allow_null=True,
        default=None,
        help_text="The rider's ride PIN: needed for IN_PROGRESS when RIDE_PIN_REQUIRED.",
    )


class TripCancelSerializer(serializers.Serializer):
    reason = TextField(
        max_length=255, required=False, allow_null=True, allow_blank=True, default=None
    )
    reason_code = serializers.ChoiceField(
        choices=sorted(cancellation.RIDER_CODES | cancellation.DRIVER_CODES),
        required=False,
        allow_null=True,
        default=None,
        help_text="Riders: changed_mind, driver_too_far, wrong_pickup, other. Drivers: "
        "rider_no_show (NO_SHOW_WAIT_S after arriving: cancels, with the fee), "
        "vehicle_issue, unsafe, other (the trip goes back to dispatch).",
    )


class TripPageSerializer(serializers.Serializer):
    """`GET /api/trip/` with `limit` or `offset`: one page of the list."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = TripSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    """Every 4xx body that is not a field-validation error (PROTOCOL.md, "Errors")."""

    detail = serializers.CharField()
    code = serializers.CharField(
        help_text=(
            "Stable machine code: not_authenticated, forbidden, not_found, invalid, "
            "invalid_transition, offer_not_available, active_trip_exists, rate_limited, "
            "quote_expired, quote_mismatch, too_many_scheduled, invalid_pin, pin_locked, "
            "too_early, already_rated, not_rateable, not_shareable, "
            "too_large (413: a body over the size limit), "
            "unavailable (503: a backing service did not answer; retry shortly), "
            "server_error (500)."
        )
    )


# After the ride (PROTOCOL.md Part 2): ratings, share links, a trip's history.
MAX_RATING_TAGS = 10
MAX_RATING_TAG_CHARS = 32
MAX_RATING_COMMENT_CHARS = 1000


class StarsField(serializers.IntegerField):
    """A whole JSON number of stars, 1 to 5: strings, booleans and fractions are refused."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(data)


class RatingCreateSerializer(serializers.Serializer):
    stars = StarsField(min_value=1, max_value=5)
    comment = TextField(
        max_length=MAX_RATING_COMMENT_CHARS, required=False, allow_blank=True, default=""
    )
    tags = FlatListField(
        child=TextField(max_length=MAX_RATING_TAG_CHARS),
        max_length=MAX_RATING_TAGS,
        required=False,
        default=list,
        help_text=f"At most {MAX_RATING_TAGS} short labels ({MAX_RATING_TAG_CHARS} characters "
        'each), e.g. "clean car".',
    )


class RatingSerializer(serializers.ModelSerializer):
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    side = serializers.ChoiceField(
        choices=Rating.Side.choices,
        read_only=True,
        help_text="Who rated: the rider (rating the driver) or the driver (rating the rider).",
    )

    class Meta:
        model = Rating
        fields = ("stars", "comment", "tags", "created", "side")
        read_only_fields = fields


class ShareLinkSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Unguessable; anyone holding it can follow the trip.")
    url = serializers.URLField(help_text="The public view: GET /api/shared/<token>/.")
    expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="Null while the trip runs; SHARE_LINK_AFTER_END_S (30 min) after it ends.",
    )


class SharedPositionSerializer(serializers.Serializer):
    lat = serializers.FloatField()
    lng = serializers.FloatField()
    at = serializers.DateTimeField(help_text="When the driver was last heard from.")


class SharedDriverSerializer(serializers.Serializer):
    first_name = serializers.CharField()
    vehicle = VehiclePublicSerializer(allow_null=True)


class SharedTripSerializer(serializers.Serializer):
    """A shared trip as anyone with its link sees it: no rider identity, and
    of the driver only the first name and the car."""

    status = serializers.ChoiceField(choices=Trip.Status.choices)
    driver = SharedDriverSerializer(allow_null=True, help_text="Null until a driver accepts.")
    position = SharedPositionSerializer(
        allow_null=True,
        help_text="The driver's last position while on the way to the pick-up, there, "
        "or driving (STARTED, ARRIVED, IN_PROGRESS); else null.",
    )
    eta_s = serializers.IntegerField(
        allow_null=True,
        help_text="Seconds to the pick-up, or to the drop-off once the rider is in; "
        "null when the position or the destination is unknown.",
    )


class TripEventSerializer(serializers.Serializer):
    """One status change in a trip's history."""

    def get_fields(self) -> dict:
        # Built here, not declared on the class: `from` is a Python keyword.
        return {
            "at": serializers.DateTimeField(),
            "from": serializers.ChoiceField(
                choices=Trip.Status.choices,
                source="from_status",
                allow_null=True,
                help_text="Null for the trip's creation.",
            ),
            "to": serializers.ChoiceField(choices=Trip.Status.choices, source="to_status"),
            "by": serializers.ChoiceField(choices=TripEvent.By.choices),
            "reason": serializers.CharField(
                allow_null=True,
                help_text="As the trip's `status_reason` after this change "
                "(no_drivers, stale, driver_canceled, a cancel's reason), or null.",
            ),
        }
