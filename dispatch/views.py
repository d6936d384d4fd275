"""Drivers over REST (PROTOCOL.md, "Drivers"): presence, positions, the public map."""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch import presence
from dispatch.drivers import driver_go_offline, driver_go_online, driver_report_location
from trips.auth import IsDriver
from trips.serializers import (
    MAX_LAT,
    MAX_LNG,
    BoundedFloatField,
    ErrorSerializer,
    LocationSerializer,
    PositionSerializer,
    latitude,
    longitude,
)
from trips.throttles import ScopeThrottle

# /nearby/ answers at most this many drivers within at most this radius. A
# radius below NEARBY_SMALLEST_RADIUS_KM is a 400; one below the setting
# NEARBY_MIN_RADIUS_KM (larger) is searched as that (`presence.nearby`).
NEARBY_MAX_RADIUS_KM = 50.0
NEARBY_SMALLEST_RADIUS_KM = 0.001
NEARBY_DEFAULT_RADIUS_KM = 5.0
NEARBY_MAX_DRIVERS = 100


UNAVAILABLE = OpenApiResponse(
    ErrorSerializer, description="`unavailable`: presence storage did not answer; retry."
)
StatusSerializer = inline_serializer(
    "DriverStatus", {"status": serializers.ChoiceField(choices=["online", "offline"])}
)


class DriverOnlineView(APIView):
    permission_classes = (permissions.IsAuthenticated, IsDriver)

    @extend_schema(
        summary="Go online at a position (drivers)",
        request=PositionSerializer,
        responses={200: StatusSerializer, 503: UNAVAILABLE},
    )
    def post(self, request: Request) -> Response:
        serializer = PositionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        driver_go_online(driver=request.user, **serializer.validated_data)
        return Response({"status": "online"})


class DriverOfflineView(APIView):
    permission_classes = (permissions.IsAuthenticated, IsDriver)

    @extend_schema(
        summary="Go offline (drivers); a live offer is withdrawn, a trip continues",
        request=None,
        responses={200: StatusSerializer, 503: UNAVAILABLE},
    )
    def post(self, request: Request) -> Response:
        driver_go_offline(driver=request.user)
        return Response({"status": "offline"})


class DriverLocationView(APIView):
    permission_classes = (permissions.IsAuthenticated, IsDriver)

    @extend_schema(
        summary="Report a position (drivers); forwarded to the rider during a trip",
        description=(
            "A position implying a move faster than LOCATION_MAX_SPEED_KMH (250 km/h) "
            "from the driver's last accepted one is not used: not stored, not sent to "
            "the rider, and the driver gets no offers until a plausible position "
            "arrives. The answer is 204 all the same. Going online is checked alike."
        ),
        request=LocationSerializer,
        responses={204: None, 503: UNAVAILABLE},
    )
    def post(self, request: Request) -> Response:
        serializer = LocationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        location = serializer.validated_data
        driver_report_location(
            driver=request.user,
            lat=location["lat"],
            lng=location["lng"],
            heading=location["heading"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _number(low: float, high: float) -> dict:
    """A query parameter's schema: a number in [low, high], as the view checks."""
    return {"type": "number", "minimum": low, "maximum": high}


class NearbyQuerySerializer(serializers.Serializer):
    lat = latitude()
    lng = longitude()
    radius_km = BoundedFloatField(
        low=NEARBY_SMALLEST_RADIUS_KM,
        high=NEARBY_MAX_RADIUS_KM,
        required=False,
        default=NEARBY_DEFAULT_RADIUS_KM,
    )

    def to_internal_value(self, data):
        # A query string carries text: read each value as a number first, so
        # the bounded fields (strict about JSON types) judge range and finiteness.
        numbers, errors = {}, {}
        for name in ("lat", "lng", "radius_km"):
            raw = data.get(name)
            if raw is None:
                continue
            try:
                numbers[name] = float(raw)
            except (TypeError, ValueError):
                errors[name] = ["A valid number is required."]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(numbers)


NearbySerializer = inline_serializer(
    "NearbyDrivers",
    {
        "count": serializers.IntegerField(),
        "drivers": inline_serializer(
            "NearbyDriver",
            {"lat": serializers.FloatField(), "lng": serializers.FloatField()},
            many=True,
        ),
    },
)


class DriverNearbyView(APIView):
    """Available drivers around a point, for a map: positions on a grid of
    about 100 m, no identities, at most NEARBY_MAX_DRIVERS within
    NEARBY_MAX_RADIUS_KM (`presence.nearby` says why the grid comes first).
    Throttled per user (THROTTLE_NEARBY): each query is a little of what a
    search for one driver needs."""

    throttle_classes = (ScopeThrottle,)
    throttle_scope = "nearby"

    @extend_schema(
        summary="Available drivers near a point, on a 100 m grid, without identities",
        description=(
            "The centre is taken to its grid cell's centre, and each driver to "
            "theirs, before the radius is applied. A radius below "
            "NEARBY_MIN_RADIUS_KM (0.5 km by default) is read as that."
        ),
        parameters=[
            OpenApiParameter("lat", _number(-MAX_LAT, MAX_LAT), required=True),
            OpenApiParameter("lng", _number(-MAX_LNG, MAX_LNG), required=True),
            OpenApiParameter(
                "radius_km",
                _number(NEARBY_SMALLEST_RADIUS_KM, NEARBY_MAX_RADIUS_KM),
                description=(
                    f"default {NEARBY_DEFAULT_RADIUS_KM}, at most {NEARBY_MAX_RADIUS_KM}; "
                    "smaller than NEARBY_MIN_RADIUS_KM reads as that"
                ),
            ),
        ],
        responses={
            200: NearbySerializer,
            429: OpenApiResponse(ErrorSerializer, description="`rate_limited`."),
            503: UNAVAILABLE,
        },
    )
    def get(self, request: Request) -> Response:
        query = NearbyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        positions = presence.nearby(
            lat=query.validated_data["lat"],
            lng=query.validated_data["lng"],
            radius_km=query.validated_data["radius_km"],
            limit=NEARBY_MAX_DRIVERS,
        )
        drivers = [{"lat": lat, "lng": lng} for lat, lng in positions]
        return Response({"count": len(drivers), "drivers": drivers})
