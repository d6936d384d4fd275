"""Products, vehicles, fares and quotes on the wire (PROTOCOL.md Part 2,
"Products, vehicles and prices"). Money is a decimal string with its currency."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pricing import money
from pricing.models import RATE_FIELDS, Product, Quote, Vehicle
from trips.fields import FlatListField, TextField


class RateSerializer(serializers.Serializer):
    """A product's rates, decimal strings in its currency (a per-km or
    per-minute rate may carry a fraction of a cent)."""

    base = serializers.CharField(help_text="Charged on every ride.")
    per_km = serializers.CharField(help_text="Per kilometre of the route.")
    per_min = serializers.CharField(help_text="Per minute of the ride.")
    minimum = serializers.CharField(help_text="No ride costs less (booking fee included).")
    booking_fee = serializers.CharField(help_text="Added to every ride, never surged.")
    cancellation_fee = serializers.CharField(help_text="Charged for a late or no-show cancel.")


class ProductSerializer(serializers.ModelSerializer):
    rate = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ("code", "name", "capacity", "currency", "rate")
        read_only_fields = fields

    @extend_schema_field(RateSerializer)
    def get_rate(self, product: Product) -> dict:
        # Rates show as precise as stored (a per-km rate may hold a fraction
        # of a cent), but never with fewer places than the currency has.
        places = money.minor_units(product.currency)
        return {name: _rate_string(getattr(product, name), places) for name in RATE_FIELDS}


def _rate_string(value, places: int) -> str:
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.ljust(places, "0")
    return f"{whole}.{fraction}" if fraction else whole


class BreakdownSerializer(serializers.Serializer):
    base = serializers.CharField()
    distance = serializers.CharField()
    time = serializers.CharField()
    booking_fee = serializers.CharField(help_text="Never surged.")
    surge = serializers.CharField(help_text="What the surge multiplier adds.")
    minimum_top_up = serializers.CharField(
        help_text="What lifts the price to the product's minimum (else 0): the parts add up."
    )


class FareSerializer(serializers.Serializer):
    """A trip's `fare`: as quoted, estimated at the request, or final."""

    currency = serializers.CharField(help_text="ISO 4217.")
    amount = serializers.CharField(help_text='A decimal string, e.g. "12.40".')
    breakdown = BreakdownSerializer()
    surge_multiplier = serializers.CharField(help_text='Within [1, SURGE_MAX], e.g. "1.5".')
    kind = serializers.ChoiceField(choices=["quote", "estimate", "final"])


class VehiclePublicSerializer(serializers.ModelSerializer):
    """The driver's car as their rider sees it."""

    class Meta:
        model = Vehicle
        fields = ("make", "model", "color", "plate", "capacity")
        read_only_fields = fields


class VehicleSerializer(serializers.ModelSerializer):
    """`/api/driver/vehicle/`: the car and the products it may serve."""

    make = TextField(max_length=64)
    model = TextField(max_length=64)
    color = TextField(max_length=32)
    plate = TextField(max_length=16)
    capacity = serializers.IntegerField(min_value=1, max_value=99)
    products = FlatListField(
        child=serializers.SlugField(max_length=32),
        min_length=1,
        max_length=20,
        help_text="Product codes this car may serve; its capacity must fit each.",
    )

    class Meta:
        model = Vehicle
        fields = ("make", "model", "color", "plate", "capacity", "products")

    def to_representation(self, vehicle: Vehicle) -> dict:
        data = VehiclePublicSerializer(vehicle).data
        data["products"] = sorted(p.code for p in vehicle.products.all())
        return data


class QuoteSerializer(serializers.ModelSerializer):
    quote_id = serializers.UUIDField(source="id", read_only=True)
    product = serializers.CharField(source="product_id", read_only=True)
    currency = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField()
    breakdown = serializers.SerializerMethodField()
    surge_multiplier = serializers.SerializerMethodField()

    class Meta:
        model = Quote
        fields = (
            "quote_id",
            "product",
            "currency",
            "amount",
            "breakdown",
            "surge_multiplier",
            "distance_m",
            "duration_s",
            "pickup_eta_s",
            "expires_at",
        )
        read_only_fields = fields

    def get_currency(self, quote: Quote) -> str:
        return quote.fare["currency"]

    def get_amount(self, quote: Quote) -> str:
        return quote.fare["amount"]

    @extend_schema_field(BreakdownSerializer)
    def get_breakdown(self, quote: Quote) -> dict:
        return quote.fare["breakdown"]

    @extend_schema_field(OpenApiTypes.STR)
    def get_surge_multiplier(self, quote: Quote) -> str:
        return quote.fare["surge_multiplier"]
