"""`GET /api/products/` and the catalogue's rate card versions (PROTOCOL.md
Part 2, "Products, vehicles and prices"): the shape, money as decimal
strings, what is hidden, and that an edit of a product's rates is a new
version that leaves what was priced before alone."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from pricing.models import RATE_FIELDS, Product, RateCard
from tests.pricing.support import CATALOGUE

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalogue")]

URL = "/api/products/"
RATE_KEYS = {"base", "per_km", "per_min", "minimum", "booking_fee", "cancellation_fee"}


def expected(code: str) -> dict:
    spec = CATALOGUE[code]
    return {
        "code": code,
        "name": spec["name"],
        "capacity": spec["capacity"],
        "currency": "USD",
        "rate": spec["rate"],
    }


@pytest.mark.parametrize("group", ["rider", "driver"])
def test_any_logged_in_user_reads_the_catalogue_exactly_as_the_protocol_shows_it(
    make_user, client_for, group
):
    response = client_for(make_user(group)).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body == [expected("standard"), expected("xl")]
    for product in body:
        assert set(product) == {"code", "name", "capacity", "currency", "rate"}
        assert set(product["rate"]) == RATE_KEYS
        # Money is a decimal string, never a JSON number.
        assert all(isinstance(value, str) for value in product["rate"].values())


def test_a_rate_with_a_fraction_of_a_cent_shows_as_stored(rider, client_for):
    Product.objects.filter(code="standard").update(per_km=Decimal("1.2345"), base=Decimal("3"))

    body = client_for(rider).get(URL).json()

    rate = next(p for p in body if p["code"] == "standard")["rate"]
    assert (rate["per_km"], rate["base"]) == ("1.2345", "3.00")


def test_inactive_products_are_hidden(rider, client_for):
    xl = Product.objects.get(code="xl")
    xl.active = False
    xl.save()

    body = client_for(rider).get(URL).json()

    assert [p["code"] for p in body] == ["standard"]


def test_the_catalogue_follows_position_then_code(rider, client_for):
    Product.objects.filter(code="xl").update(position=0)
    Product.objects.filter(code="standard").update(position=5)

    assert [p["code"] for p in client_for(rider).get(URL).json()] == ["xl", "standard"]


def test_anonymous_callers_get_401_and_nothing_else(api: APIClient):
    response = api.get(URL)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# --- rate card versions ----------------------------------------------------------


def versions(code: str) -> list[int]:
    return list(
        RateCard.objects.filter(product__code=code)
        .order_by("version")
        .values_list("version", flat=True)
    )


def test_editing_a_product_s_rates_makes_a_new_version_and_keeps_the_old_one():
    product = Product.objects.get(code="standard")
    first = product.current_rate_card()

    product.per_km = Decimal("2.10")
    product.save()

    assert versions("standard") == [first.version, first.version + 1]
    latest = product.current_rate_card()
    assert latest.per_km == Decimal("2.10")
    first.refresh_from_db()
    assert first.per_km == Decimal("1.20"), "a version is never edited"


def test_saving_with_unchanged_rates_makes_no_new_version():
    product = Product.objects.get(code="standard")
    before = versions("standard")

    product.name = "Standard (renamed)"
    product.save()
    Product.objects.get(code="standard").save()  # as read back: 4 places
    product.base = Decimal("2.5")  # the same amount, written differently
    product.save()

    assert versions("standard") == before


def test_every_product_in_the_catalogue_has_a_rate_card_matching_its_rates():
    for product in Product.objects.all():
        card = product.current_rate_card()
        assert card is not None
        assert card.rate_values() == {
            name: value if name == "currency" else value.quantize(Decimal("0.0001"))
            for name, value in product.rate_values().items()
        }


def test_staff_editing_rates_in_the_admin_makes_a_new_version(client, make_user):
    staff = make_user("rider", is_staff=True, is_superuser=True)
    client.force_login(staff)
    product = Product.objects.get(code="xl")
    before = versions("xl")
    form = {
        "name": product.name,
        "capacity": product.capacity,
        "active": "on",
        "position": product.position,
        "currency": "USD",
        **{name: str(getattr(product, name)) for name in RATE_FIELDS},
        "rate_cards-TOTAL_FORMS": "0",
        "rate_cards-INITIAL_FORMS": "0",
    }
    form["per_min"] = "0.99"

    response = client.post(f"/admin/pricing/product/{product.pk}/change/", form)

    assert response.status_code == 302, response.content[:2000]
    assert versions("xl") == [*before, before[-1] + 1]
    assert Product.objects.get(code="xl").current_rate_card().per_min == Decimal("0.99")
