"""Dispatch offers a trip only to drivers eligible for its product (PROTOCOL.md
Part 2): the search in Redis filters by the products in each driver's
presence hash, and the check under the row locks refuses a driver whose
Redis copy is behind their vehicle. The loop is called directly (no worker)."""

import pytest

from dispatch import keys, presence
from dispatch.loop import trip_offer_next
from dispatch.models import Offer
from taxi.infra.redis import get_redis
from tests.dispatch.support import PICK_UP, available, request_trip
from tests.pricing.support import give_vehicle, go_online, quote_body, trip_body
from trips.models import Trip
from trips.services import trip_create

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("catalogue", "high_rates"),
]

VEHICLE = "/api/driver/vehicle/"
SEDAN = {"make": "Honda", "model": "Civic", "color": "Blue", "plate": "AB-1", "capacity": 4}
VAN = {"make": "Toyota", "model": "Sienna", "color": "Grey", "plate": "XL-1", "capacity": 7}


def request(rider, product: str | None) -> Trip:
    return trip_create(
        rider=rider,
        pick_up_address="1 Elm Street",
        pick_up_lat=PICK_UP[0],
        pick_up_lng=PICK_UP[1],
        drop_off_address="2 Oak Street",
        drop_off_lat=PICK_UP[0] + 0.02,
        drop_off_lng=PICK_UP[1] - 0.01,
        product=product,
    )


def offered_to(trip: Trip) -> list[int]:
    return list(Offer.objects.filter(trip=trip).values_list("driver_id", flat=True))


def test_an_xl_trip_skips_nearer_standard_only_drivers(rider, make_user):
    without_vehicle, sedan, van = make_user("driver"), make_user("driver"), make_user("driver")
    give_vehicle(sedan, ["standard"])
    give_vehicle(van, ["standard", "xl"])
    go_online(without_vehicle, 0.2)
    go_online(sedan, 0.4)
    go_online(van, 1.5)
    trip = request(rider, "xl")

    offer = trip_offer_next(trip_id=trip.pk)

    assert offer is not None and offer.driver_id == van.pk
    assert offered_to(trip) == [van.pk]
    assert available() == {without_vehicle.pk, sedan.pk}, "the others stay free"


def test_a_standard_trip_goes_to_the_nearest_driver_with_or_without_a_vehicle(rider, make_user):
    van, without_vehicle = make_user("driver"), make_user("driver")
    give_vehicle(van, ["standard", "xl"])
    go_online(van, 0.3)
    go_online(without_vehicle, 0.6)

    trip = request(rider, "standard")

    assert trip_offer_next(trip_id=trip.pk).driver_id == van.pk


def test_an_xl_only_car_is_not_offered_standard_trips(rider, make_user):
    xl_only, without_vehicle = make_user("driver"), make_user("driver")
    give_vehicle(xl_only, ["xl"])
    go_online(xl_only, 0.3)
    go_online(without_vehicle, 0.9)

    trip = request(rider, "standard")

    assert trip_offer_next(trip_id=trip.pk).driver_id == without_vehicle.pk


def test_a_driver_without_a_vehicle_serves_standard_only(rider, make_user, driver):
    go_online(driver, 0.3)
    xl_trip = request(rider, "xl")

    assert trip_offer_next(trip_id=xl_trip.pk) is None

    assert offered_to(xl_trip) == []
    # Nobody eligible in range: it waits for supply (PROTOCOL.md Part 2).
    assert Trip.objects.get(pk=xl_trip.pk).status == Trip.Status.REQUESTED
    assert presence.waiting([xl_trip.pk]) == {str(xl_trip.pk)}
    assert available() == {driver.pk}
    standard_trip = request(make_user("rider"), "standard")
    assert trip_offer_next(trip_id=standard_trip.pk).driver_id == driver.pk


def test_part_1_trips_naming_no_product_go_to_drivers_without_vehicles(rider, driver):
    go_online(driver, 0.5)
    trip = request_trip(rider)  # Part 1's body: no product, no quote

    offer = trip_offer_next(trip_id=trip.pk)

    assert offer.driver_id == driver.pk
    assert Trip.objects.get(pk=trip.pk).product == "standard"


def test_part_1_trips_are_dispatched_even_without_a_catalogue(rider, driver):
    from pricing.models import Product, RateCard

    RateCard.objects.all().delete()
    Product.objects.all().delete()
    go_online(driver, 0.5)
    trip = request_trip(rider)

    assert trip.fare is None
    assert trip_offer_next(trip_id=trip.pk).driver_id == driver.pk


def test_a_driver_who_adds_xl_while_online_is_offered_xl_at_once(
    rider, driver, make_user, client_for
):
    go_online(driver, 0.4)
    response = client_for(driver).put(VEHICLE, {**VAN, "products": ["xl"]}, format="json")
    assert response.status_code == 200

    trip = request(rider, "xl")

    assert trip_offer_next(trip_id=trip.pk).driver_id == driver.pk


def test_a_driver_who_drops_xl_while_online_is_not_offered_xl_any_more(rider, driver, client_for):
    give_vehicle(driver, ["standard", "xl"])
    go_online(driver, 0.4)
    client_for(driver).put(VEHICLE, {**SEDAN, "products": ["standard"]}, format="json")

    trip = request(rider, "xl")

    assert trip_offer_next(trip_id=trip.pk) is None
    assert offered_to(trip) == []


def test_the_check_under_the_locks_refuses_a_driver_whose_redis_copy_is_stale(rider, make_user):
    # Given a standard-only driver nearest, whose presence (stale) says xl,
    # and a real xl driver further off.
    stale, van = make_user("driver"), make_user("driver")
    give_vehicle(stale, ["standard"])
    give_vehicle(van, ["xl"])
    go_online(stale, 0.2)
    go_online(van, 1.0)
    get_redis().hset(keys.driver(stale.pk), "products", ",standard,xl,")
    trip = request(rider, "xl")

    offer = trip_offer_next(trip_id=trip.pk)

    # Then no offer row for the stale driver: the trip went to the van.
    assert offer is not None and offer.driver_id == van.pk
    assert offered_to(trip) == [van.pk]
    assert get_redis().hget(keys.driver(stale.pk), "state") == keys.STATE_FREE
    assert stale.pk in available()
    # And their presence is corrected, so the search stops proposing them.
    assert get_redis().hget(keys.driver(stale.pk), "products") == ",standard,"


def test_a_stale_copy_for_a_driver_without_a_vehicle_is_refused_too(rider, driver):
    go_online(driver, 0.2)
    get_redis().hset(keys.driver(driver.pk), "products", ",xl,")
    trip = request(rider, "xl")

    assert trip_offer_next(trip_id=trip.pk) is None

    assert offered_to(trip) == []
    assert "products" not in get_redis().hgetall(keys.driver(driver.pk))


def test_an_xl_trip_created_over_rest_from_a_quote_goes_to_an_xl_driver(
    rider, make_user, client_for
):
    sedan, van = make_user("driver"), make_user("driver")
    give_vehicle(sedan, ["standard"])
    give_vehicle(van, ["xl"])
    go_online(sedan, 0.2)
    go_online(van, 0.9)
    client = client_for(rider)
    (quote,) = client.post("/api/quotes/", quote_body("xl"), format="json").json()["quotes"]
    assert quote["pickup_eta_s"] is not None
    trip = client.post("/api/trip/", trip_body(quote_id=quote["quote_id"]), format="json").json()

    offer = trip_offer_next(trip_id=trip["id"])

    assert offer.driver_id == van.pk
