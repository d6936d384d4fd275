"""Concurrent writes to the catalogue and to a driver's vehicle, on real
threads against the real database (SQLite and PostgreSQL): the outcome is
one of the serial orders, and nothing is lost or doubled."""

from decimal import Decimal

import pytest

from pricing.models import Product, RateCard, Vehicle
from pricing.vehicles import vehicle_put
from tests.trips.test_races import losses, run_together

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalogue")]

THREADS = 6


def edit_per_km(value: str) -> None:
    product = Product.objects.get(code="standard")
    product.per_km = Decimal(value)
    product.save()


def test_concurrent_rate_edits_each_make_one_version_in_order():
    values = [f"{2 + n}.00" for n in range(THREADS)]

    outcomes = run_together([lambda v=v: edit_per_km(v) for v in values])

    assert losses(outcomes) == []
    cards = list(RateCard.objects.filter(product__code="standard").order_by("version"))
    assert [c.version for c in cards] == list(range(1, THREADS + 2))
    assert sorted(str(c.per_km.normalize()) for c in cards[1:]) == sorted(
        str(Decimal(v).normalize()) for v in values
    )
    # The product says what its latest version says.
    latest = Product.objects.get(code="standard")
    assert latest.per_km == cards[-1].per_km


def test_concurrent_vehicle_puts_leave_one_vehicle_of_one_of_them(driver):
    choices = [["standard"], ["xl"], ["standard", "xl"]] * 2

    def put(products: list[str]):
        return vehicle_put(
            driver=driver,
            make="Toyota",
            model="Sienna",
            color="Grey",
            plate="XL-1",
            capacity=6,
            products=products,
        )

    outcomes = run_together([lambda p=p: put(p) for p in choices])

    assert losses(outcomes) == []
    assert Vehicle.objects.filter(driver=driver).count() == 1
    assert Vehicle.products_of(driver.pk) in [sorted(c) for c in choices]
