"""Helpers shared by the pricing contract tests: the catalogue as the
migration ships it, vehicles, drivers online through the real services,
and the straight-line arithmetic PROTOCOL.md states (written out here, not
read from `pricing.eta`, so a change to the estimator fails the tests)."""

import math
import socket
from decimal import Decimal

from dispatch.drivers import driver_go_online
from dispatch.matching import haversine_km
from pricing.models import RATE_FIELDS, Product, Quote
from pricing.vehicles import vehicle_put
from tests.dispatch.support import PICK_UP, km_north
from trips.models import Trip, User

# PROTOCOL.md's defaults.
DETOUR_FACTOR = 1.3
SPEED_KMH = 25
DROP_OFF = (38.9187, -77.0465)  # about 2.5 km from PICK_UP

# pricing/migrations/0002_default_products.py, as the API must show it.
CATALOGUE = {
    "standard": {
        "name": "Standard",
        "capacity": 4,
        "position": 0,
        "rate": {
            "base": "2.50",
            "per_km": "1.20",
            "per_min": "0.30",
            "minimum": "7.00",
            "booking_fee": "1.50",
            "cancellation_fee": "5.00",
        },
    },
    "xl": {
        "name": "XL",
        "capacity": 6,
        "position": 1,
        "rate": {
            "base": "4.00",
            "per_km": "1.90",
            "per_min": "0.45",
            "minimum": "10.00",
            "booking_fee": "1.50",
            "cancellation_fee": "7.50",
        },
    },
}


def ensure_catalogue() -> None:
    """The migration's products, as shipped (a transactional test's flush
    removes what the migration wrote)."""
    for code, spec in CATALOGUE.items():
        rates = {name: Decimal(spec["rate"][name]) for name in RATE_FIELDS}
        product = Product.objects.filter(code=code).first() or Product(code=code)
        product.name, product.capacity, product.position = (
            spec["name"],
            spec["capacity"],
            spec["position"],
        )
        product.currency, product.active = "USD", True
        for name, value in rates.items():
            setattr(product, name, value)
        product.save()


def straight_line_s(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The default estimator's drive time from a to b, in seconds."""
    return haversine_km(*a, *b) * DETOUR_FACTOR / SPEED_KMH * 3600


def straight_line_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_km(*a, *b) * DETOUR_FACTOR * 1000


def metres_north(m: float, of: tuple[float, float]) -> tuple[float, float]:
    return km_north(m / 1000, of)


def give_vehicle(driver: User, products: list[str], capacity: int | None = None) -> None:
    vehicle_put(
        driver=driver,
        make="Toyota",
        model="Sienna",
        color="Grey",
        plate=f"XL{driver.pk:05d}",
        capacity=capacity if capacity is not None else (6 if "xl" in products else 4),
        products=products,
    )


def go_online(driver: User, km: float) -> tuple[float, float]:
    """The driver goes online `km` north of the pick-up through the service
    (which writes their vehicle's products into presence)."""
    lat, lng = km_north(km)
    driver_go_online(driver=driver, lat=lat, lng=lng)
    return lat, lng


def quote_body(product: str | None = None, **overrides) -> dict:
    body = {
        "pick_up_lat": PICK_UP[0],
        "pick_up_lng": PICK_UP[1],
        "drop_off_lat": DROP_OFF[0],
        "drop_off_lng": DROP_OFF[1],
    }
    if product is not None:
        body["product"] = product
    return {**body, **overrides}


def trip_body(**overrides) -> dict:
    body = {
        "pick_up_address": "1600 Pennsylvania Avenue",
        "pick_up_lat": PICK_UP[0],
        "pick_up_lng": PICK_UP[1],
        "drop_off_address": "Adams Morgan",
        "drop_off_lat": DROP_OFF[0],
        "drop_off_lng": DROP_OFF[1],
    }
    return {**body, **overrides}


def money_sum(breakdown: dict[str, str]) -> Decimal:
    return sum((Decimal(v) for v in breakdown.values()), Decimal(0))


def is_money(text: object) -> bool:
    """A decimal string with exactly two places (USD), never a float."""
    if not isinstance(text, str):
        return False
    whole, dot, cents = text.partition(".")
    return dot == "." and whole.isdigit() and len(cents) == 2 and cents.isdigit()


def rows() -> tuple[int, int]:
    """(quotes, trips): what a refused call must not have written."""
    return Quote.objects.count(), Trip.objects.count()


def close_to(seconds: int | None, expected: float) -> bool:
    return seconds is not None and math.isclose(seconds, expected, abs_tol=1.01)


def closed_port() -> int:
    """A local port nobody listens on: a routing engine that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
