"""`GET`/`PUT /api/driver/vehicle/` (PROTOCOL.md Part 2, "Products, vehicles
and prices"): who may call them, the shape, validation with nothing written
on a refusal, replacement, and presence following an edit at once."""

import pytest
from rest_framework.test import APIClient

from dispatch import keys
from pricing.models import Product, Vehicle
from taxi.infra.redis import get_redis
from tests.pricing.support import give_vehicle, go_online

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalogue")]

URL = "/api/driver/vehicle/"
VAN = {
    "make": "Toyota",
    "model": "Sienna",
    "color": "Grey",
    "plate": "XL-1234",
    "capacity": 7,
    "products": ["xl", "standard"],
}
SEDAN = {
    "make": "Honda",
    "model": "Civic",
    "color": "Blue",
    "plate": "AB-987",
    "capacity": 4,
    "products": ["standard"],
}


def vehicle_rows(driver) -> list[tuple]:
    """Everything recorded about the driver's vehicle, products included."""
    return [
        (v.make, v.model, v.color, v.plate, v.capacity, sorted(p.code for p in v.products.all()))
        for v in Vehicle.objects.filter(driver=driver)
    ]


def test_a_driver_without_a_vehicle_gets_404(driver, client_for):
    response = client_for(driver).get(URL)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_put_records_the_vehicle_and_get_shows_it(driver, client_for):
    client = client_for(driver)

    put = client.put(URL, VAN, format="json")
    got = client.get(URL)

    shown = {**VAN, "products": ["standard", "xl"]}
    assert put.status_code == 200, put.content
    assert put.json() == shown
    assert got.status_code == 200
    assert got.json() == shown
    assert vehicle_rows(driver) == [("Toyota", "Sienna", "Grey", "XL-1234", 7, ["standard", "xl"])]


def test_put_replaces_the_vehicle_on_record(driver, client_for):
    client = client_for(driver)
    client.put(URL, VAN, format="json")

    response = client.put(URL, SEDAN, format="json")

    assert response.status_code == 200
    assert client.get(URL).json() == SEDAN
    assert vehicle_rows(driver) == [("Honda", "Civic", "Blue", "AB-987", 4, ["standard"])]


def test_repeated_codes_are_one_product(driver, client_for):
    response = client_for(driver).put(
        URL, {**SEDAN, "products": ["standard", "standard"]}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["products"] == ["standard"]


def test_riders_get_403_and_anonymous_callers_401(rider, client_for, api: APIClient):
    rider_client = client_for(rider)
    for response in (rider_client.get(URL), rider_client.put(URL, VAN, format="json")):
        assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    for response in (api.get(URL), api.put(URL, VAN, format="json")):
        assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")
    assert not Vehicle.objects.exists()


def _inactive_xl() -> None:
    Product.objects.filter(code="xl").update(active=False)


@pytest.mark.parametrize(
    ("change", "field", "before"),
    [
        ({"products": ["limousine"]}, "products", None),
        ({"products": ["standard", "limousine"]}, "products", None),
        ({"products": ["xl"]}, "products", _inactive_xl),
        ({"capacity": 4, "products": ["xl"]}, "products", None),
        ({"capacity": 5, "products": ["standard", "xl"]}, "products", None),
        ({"products": []}, "products", None),
        ({"products": "xl"}, "products", None),
        ({"products": [6]}, "products", None),
        ({"products": None}, "products", None),
        ({"capacity": "seven"}, "capacity", None),
        ({"capacity": 6.5}, "capacity", None),
        ({"capacity": True}, "capacity", None),
        ({"capacity": 0}, "capacity", None),
        ({"capacity": None}, "capacity", None),
        ({"make": 5}, "make", None),
        ({"plate": ["AB"]}, "plate", None),
        ({"color": ""}, "color", None),
    ],
    ids=lambda value: repr(value)[:40] if not callable(value) else value.__name__,
)
def test_a_bad_vehicle_is_a_400_naming_the_field_and_changes_nothing(
    driver, client_for, change, field, before
):
    client = client_for(driver)
    client.put(URL, SEDAN, format="json")
    recorded = vehicle_rows(driver)
    if before is not None:
        before()

    response = client.put(URL, {**VAN, **change}, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert vehicle_rows(driver) == recorded


@pytest.mark.parametrize("missing", ["make", "model", "color", "plate", "capacity", "products"])
def test_every_field_is_required(driver, client_for, missing):
    body = {key: value for key, value in VAN.items() if key != missing}

    response = client_for(driver).put(URL, body, format="json")

    assert response.status_code == 400
    assert missing in response.json()
    assert not Vehicle.objects.exists()


def test_a_refused_first_vehicle_writes_no_row(driver, client_for):
    response = client_for(driver).put(URL, {**VAN, "capacity": 4}, format="json")

    assert response.status_code == 400
    assert not Vehicle.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_online_driver_s_presence_follows_the_edit_at_once(driver, client_for):
    go_online(driver, 0.5)
    assert "products" not in get_redis().hgetall(keys.driver(driver.pk))

    client_for(driver).put(URL, VAN, format="json")
    assert get_redis().hget(keys.driver(driver.pk), "products") == ",standard,xl,"

    client_for(driver).put(URL, SEDAN, format="json")
    assert get_redis().hget(keys.driver(driver.pk), "products") == ",standard,"


@pytest.mark.django_db(transaction=True)
def test_going_online_writes_the_vehicle_s_products(driver):
    give_vehicle(driver, ["xl"])

    go_online(driver, 0.5)

    assert get_redis().hget(keys.driver(driver.pk), "products") == ",xl,"


@pytest.mark.django_db(transaction=True)
def test_an_edit_while_offline_writes_nothing_to_presence(driver, client_for):
    client_for(driver).put(URL, VAN, format="json")

    assert get_redis().hgetall(keys.driver(driver.pk)) == {}
