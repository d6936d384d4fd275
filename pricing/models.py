"""Products, their rate cards, drivers' vehicles and riders' quotes
(PROTOCOL.md Part 2, "Products, vehicles and prices").

A product's rates are edited on the product (the admin's form); every change
of them is kept as a new, immutable `RateCard` version, and quotes and trips
point at the version they were priced with, so an edit never changes the
price of a ride already quoted or under way.
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import Q

# The rate fields, the same on a product and on each of its rate cards.
RATE_FIELDS = ("base", "per_km", "per_min", "minimum", "booking_fee", "cancellation_fee")

# Rates are stored to four places (a fraction of a cent per km or minute).
RATE_PLACES = Decimal("0.0001")

currency_code = RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code: three capital letters.")


def _rate(help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=12, decimal_places=4, validators=[MinValueValidator(0)], help_text=help_text
    )


class Rates(models.Model):
    """A price list: what a ride of that product costs."""

    currency = models.CharField(max_length=3, default="USD", validators=[currency_code])
    base = _rate("Charged on every ride.")
    per_km = _rate("Per kilometre of the route.")
    per_min = _rate("Per minute of the ride.")
    minimum = _rate("No ride costs less (booking fee included).")
    booking_fee = _rate("Added to every ride, never surged.")
    cancellation_fee = _rate("Charged for a late or no-show cancel.")

    class Meta:
        abstract = True

    def rate_values(self) -> dict:
        return {name: getattr(self, name) for name in ("currency", *RATE_FIELDS)}


class Product(Rates):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    capacity = models.PositiveSmallIntegerField(default=4, validators=[MinValueValidator(1)])
    active = models.BooleanField(default=True, help_text="Inactive products are not offered.")
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in the catalogue.")

    class Meta:
        ordering = ["position", "code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(base__gte=0)
                & Q(per_km__gte=0)
                & Q(per_min__gte=0)
                & Q(minimum__gte=0)
                & Q(booking_fee__gte=0)
                & Q(cancellation_fee__gte=0),
                name="product_rates_not_negative",
            ),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="product_capacity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def save(self, *args, **kwargs) -> None:
        """Saves the product, and its rates as a new rate card version when
        they differ from the latest one (the first save makes version 1)."""
        with transaction.atomic():
            super().save(*args, **kwargs)
            self.rate_card_for_current_rates()

    def rate_card_for_current_rates(self) -> "RateCard":
        latest = self.rate_cards.select_for_update().order_by("-version").first()
        values = self.rate_values()
        if latest is not None and latest.rate_values() == values:
            return latest
        version = 1 if latest is None else latest.version + 1
        return RateCard.objects.create(product=self, version=version, **values)

    def current_rate_card(self) -> "RateCard | None":
        return self.rate_cards.order_by("-version").first()


class RateCard(Rates):
    """One version of a product's rates. Never edited: a change is a new row."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="rate_cards")
    version = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "version"], name="one_rate_card_per_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.code} rates v{self.version}"

    def rate_values(self) -> dict:
        # Compare as the database holds them (4 places), whatever was typed.
        return {
            name: value if name == "currency" else value.quantize(RATE_PLACES)
            for name, value in super().rate_values().items()
        }


class Vehicle(models.Model):
    """A driver's car, and the products it may serve. A driver without one
    serves DEFAULT_PRODUCT only."""

    driver = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vehicle"
    )
    make = models.CharField(max_length=64)
    model = models.CharField(max_length=64)
    color = models.CharField(max_length=32)
    plate = models.CharField(max_length=16)
    capacity = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    products = models.ManyToManyField(Product, related_name="vehicles")
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.make} {self.model} {self.plate}"

    @classmethod
    def products_of(cls, driver_id: int) -> list[str] | None:
        """The codes of the products the driver's vehicle serves, or None
        for a driver with no vehicle on record (DEFAULT_PRODUCT only)."""
        codes = list(
            cls.objects.filter(driver_id=driver_id).values_list("products__code", flat=True)
        )
        if not codes:
            return None
        return sorted(code for code in codes if code is not None)


class Quote(models.Model):
    """An upfront price for one product, kept QUOTE_TTL_S for the rider who asked."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    rider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quotes"
    )
    # By code, so a quote names its product the way the API does.
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, to_field="code", related_name="quotes"
    )
    rate_card = models.ForeignKey(RateCard, on_delete=models.PROTECT, related_name="quotes")
    pick_up_lat = models.FloatField()
    pick_up_lng = models.FloatField()
    drop_off_lat = models.FloatField()
    drop_off_lng = models.FloatField()
    # The fare as the trip will carry it (`pricing.fares.Fare.as_json`).
    fare = models.JSONField()
    distance_m = models.PositiveIntegerField()
    duration_s = models.PositiveIntegerField()
    pickup_eta_s = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["expires_at"], name="quote_expires")]

    def __str__(self) -> str:
        return f"Quote {self.id} ({self.product_id})"
