"""Products, vehicles and quotes over REST (PROTOCOL.md Part 2, "Products,
vehicles and prices"). Each view parses, calls one service, serialises."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pricing.models import Product
from pricing.quotes import quotes_create
from pricing.serializers import ProductSerializer, QuoteSerializer, VehicleSerializer
from pricing.vehicles import VehicleInvalid, vehicle_get, vehicle_put
from taxi.infra.parsers import JSONParser
from trips.auth import IsDriver
from trips.serializers import ErrorSerializer, latitude, longitude
from trips.throttles import ScopeThrottle


class ProductListView(APIView):
    @extend_schema(
        operation_id="product_list",
        summary="The products riders can ask for, with their rates",
        description="Money is a decimal string in the product's `currency`.",
        responses={200: ProductSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        products = Product.objects.filter(active=True).order_by("position", "code")
        return Response(ProductSerializer(products, many=True).data)


class VehicleView(APIView):
    permission_classes = (permissions.IsAuthenticated, IsDriver)
    parser_classes = (JSONParser,)

    @extend_schema(
        operation_id="driver_vehicle_retrieve",
        summary="The caller's vehicle (drivers)",
        responses={
            200: VehicleSerializer,
            404: OpenApiResponse(
                ErrorSerializer,
                description="`not_found`: no vehicle on record (the driver serves "
                "DEFAULT_PRODUCT only).",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(VehicleSerializer(vehicle_get(driver=request.user)).data)

    @extend_schema(
        operation_id="driver_vehicle_update",
        summary="Record the caller's vehicle and the products it serves (drivers)",
        description=(
            "Replaces the vehicle on record. Every product must be active and no "
            "larger than the car's capacity. From then on the driver is offered "
            "trips of these products only."
        ),
        request=VehicleSerializer,
        responses={200: VehicleSerializer},
    )
    def put(self, request: Request) -> Response:
        serializer = VehicleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            vehicle = vehicle_put(driver=request.user, **serializer.validated_data)
        except VehicleInvalid as exc:
            raise serializers.ValidationError(exc.errors) from None
        return Response(VehicleSerializer(vehicle).data)


class QuoteRequestSerializer(serializers.Serializer):
    pick_up_lat = latitude()
    pick_up_lng = longitude()
    drop_off_lat = latitude()
    drop_off_lng = longitude()
    product = serializers.SlugField(
        max_length=32,
        required=False,
        allow_null=True,
        default=None,
        help_text="Quote this product only; every active product when none.",
    )


QuotesSerializer = inline_serializer("Quotes", {"quotes": QuoteSerializer(many=True)})


class QuoteCreateView(APIView):
    """Throttled per rider (THROTTLE_QUOTES): each call prices every product
    and looks for the nearest driver of each."""

    parser_classes = (JSONParser,)
    throttle_classes = (ScopeThrottle,)
    throttle_scope = "quotes"

    @extend_schema(
        operation_id="quote_create",
        summary="Upfront prices for a ride, one per product (riders)",
        description=(
            "Each quote holds for QUOTE_TTL_S (300 s) and only for the caller: "
            "create the trip with its `quote_id` to keep its price. `amount` is never "
            "below the product's minimum; `breakdown` adds up to it. `pickup_eta_s` is "
            "null when no eligible driver is available nearby."
        ),
        request=QuoteRequestSerializer,
        responses={
            201: QuotesSerializer,
            403: OpenApiResponse(ErrorSerializer, description="`forbidden`: not a rider."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = QuoteRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        quotes = quotes_create(
            rider=request.user,
            pick_up=(data["pick_up_lat"], data["pick_up_lng"]),
            drop_off=(data["drop_off_lat"], data["drop_off_lng"]),
            product=data["product"],
        )
        body = {"quotes": QuoteSerializer(quotes, many=True).data}
        return Response(body, status=status.HTTP_201_CREATED)
