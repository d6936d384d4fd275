"""Trip bodies in and out. Coordinates are checked here, once, for REST and WS."""

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pricing.serializers import FareSerializer, VehiclePublicSerializer
from trips.auth import UserSerializer
from trips.fields import TextField, UUIDStringField
from trips.models import Trip

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

    def to_representation(self, instance: Trip) -> dict:
        data = super().to_representation(instance)
        request = self.context.get("request")
        viewer = getattr(request, "user", None)
        if viewer is not None and viewer.pk not in (instance.rider_id, instance.driver_id):
            data["rider"] = None
        return data

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
    """The assigned driver's moves: picked the rider up, dropped them off."""

    status = serializers.ChoiceField(choices=[(s, s) for s in Trip.DRIVER_MOVES])


class TripCancelSerializer(serializers.Serializer):
    reason = TextField(
        max_length=255, required=False, allow_null=True, allow_blank=True, default=None
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
            "too_large (413: a body over the size limit), server_error (500)."
        )
    )
