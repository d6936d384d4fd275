"""Drivers' vehicles (PROTOCOL.md Part 2, "Products, vehicles and prices"):
which products a driver may be offered."""

import logging

from django.db import transaction
from redis.exceptions import RedisError

from dispatch import presence
from pricing.models import Product, Vehicle
from trips.errors import Forbidden, NotFound
from trips.models import User

logger = logging.getLogger(__name__)


class VehicleInvalid(Exception):
    """Field errors, as {field: [messages]}, for a 400 like any bad field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(errors)


def _require_driver(user: User) -> None:
    if not user.is_driver:
        raise Forbidden("Only drivers have vehicles.")


def vehicle_get(*, driver: User) -> Vehicle:
    _require_driver(driver)
    vehicle = Vehicle.objects.filter(driver=driver).prefetch_related("products").first()
    if vehicle is None:
        raise NotFound("No vehicle on record: you are offered the default product only.")
    return vehicle


def vehicle_put(
    *,
    driver: User,
    make: str,
    model: str,
    color: str,
    plate: str,
    capacity: int,
    products: list[str],
) -> Vehicle:
    """Record the driver's vehicle (replacing the one on record). Each
    product must be active and fit in the car. Dispatch follows at once: the
    driver is offered trips of these products, and no others, from now on."""
    _require_driver(driver)
    codes = sorted(set(products))
    known = {p.code: p for p in Product.objects.filter(code__in=codes, active=True)}
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise VehicleInvalid({"products": [f"Unknown product: {', '.join(unknown)}."]})
    too_small = [code for code in codes if known[code].capacity > capacity]
    if too_small:
        raise VehicleInvalid(
            {"products": [f"A car for {capacity} cannot serve: {', '.join(too_small)}."]}
        )
    with transaction.atomic():
        vehicle, _ = Vehicle.objects.update_or_create(
            driver=driver,
            defaults={
                "make": make,
                "model": model,
                "color": color,
                "plate": plate,
                "capacity": capacity,
            },
        )
        vehicle.products.set(known[code] for code in codes)
        transaction.on_commit(lambda: _follow_in_presence(driver.pk, codes), robust=True)
    logger.info("pricing.vehicle_recorded", extra={"driver_id": driver.pk, "products": codes})
    return vehicle


def _follow_in_presence(driver_id: int, codes: list[str]) -> None:
    # A Redis failure leaves the old list there until the driver next goes
    # online; meanwhile the check under row locks keeps offers right.
    try:
        presence.set_products(driver_id, codes)
    except RedisError:
        logger.exception("pricing.vehicle_presence_failed", extra={"driver_id": driver_id})
