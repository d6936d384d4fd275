"""A trip's price (PROTOCOL.md Part 2, "Products, vehicles and prices"):
created from a quote (REST and the socket's `create.trip`) it keeps the
quote's amount, with every way a quote can be refused writing no trip;
without one it carries an estimate (or no fare without a drop-off); on
COMPLETED the fare is final, priced with the rate card the trip was priced
with whatever the catalogue says by then."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from dispatch.loop import trip_offer_next
from pricing import fares
from pricing.models import Product, Quote, RateCard
from pricing.quotes import quotes_create
from tests.dispatch.support import PICK_UP
from tests.pricing.support import (
    CATALOGUE,
    DROP_OFF,
    give_vehicle,
    go_online,
    metres_north,
    money_sum,
    quote_body,
    rows,
    trip_body,
)
from tests.trips.test_consumer import assert_error, open_socket, request
from trips.models import Trip
from trips.services import trip_accept, trip_create, trip_move

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("catalogue", "high_rates"),
]

TRIPS = "/api/trip/"


def quote_for(rider, product: str = "standard") -> dict:
    """A quote as the rider got it over REST-equivalent service call, by product."""
    (quote,) = quotes_create(rider=rider, pick_up=PICK_UP, drop_off=DROP_OFF, product=product)
    return quote


def quoted_fare(quote: Quote) -> dict:
    return {**quote.fare, "kind": "quote"}


# --- REST: with a quote ---------------------------------------------------------------


def test_a_trip_created_with_a_quote_keeps_the_quote_s_price(rider, client_for):
    client = client_for(rider)
    (quote,) = client.post("/api/quotes/", quote_body("xl"), format="json").json()["quotes"]

    response = client.post(TRIPS, {**trip_body(), "quote_id": quote["quote_id"]}, format="json")

    assert response.status_code == 201, response.content
    trip = response.json()
    assert trip["product"] == "xl", "the product comes from the quote"
    assert trip["fare"]["kind"] == "quote"
    assert trip["fare"]["amount"] == quote["amount"]
    assert trip["fare"]["currency"] == quote["currency"]
    assert trip["fare"]["surge_multiplier"] == quote["surge_multiplier"]
    assert trip["fare"]["breakdown"] == quote["breakdown"]
    assert (trip["distance_m"], trip["duration_s"]) == (quote["distance_m"], quote["duration_s"])
    row = Trip.objects.get(pk=trip["id"])
    assert str(row.quote_id) == quote["quote_id"]
    assert row.rate_card == Quote.objects.get(pk=quote["quote_id"]).rate_card


def test_naming_the_quote_s_own_product_is_fine(rider, client_for):
    quote = quote_for(rider, "xl")

    response = client_for(rider).post(
        TRIPS, trip_body(quote_id=str(quote.pk), product="xl"), format="json"
    )

    assert response.status_code == 201
    assert response.json()["fare"]["amount"] == quote.fare["amount"]


def test_places_within_100_m_of_the_quote_s_still_match(rider, client_for):
    quote = quote_for(rider)
    pick_up, drop_off = metres_north(50, PICK_UP), metres_north(-50, DROP_OFF)
    body = trip_body(
        quote_id=str(quote.pk),
        pick_up_lat=pick_up[0],
        pick_up_lng=pick_up[1],
        drop_off_lat=drop_off[0],
        drop_off_lng=drop_off[1],
    )

    response = client_for(rider).post(TRIPS, body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["fare"] == quoted_fare(quote)


def test_an_expired_quote_is_a_409_and_writes_no_trip(rider, client_for):
    quote = quote_for(rider)
    Quote.objects.filter(pk=quote.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = rows()

    response = client_for(rider).post(TRIPS, trip_body(quote_id=str(quote.pk)), format="json")

    assert (response.status_code, response.json()["code"]) == (409, "quote_expired")
    assert rows() == before


def test_a_quote_still_alive_is_taken(rider, client_for):
    quote = quote_for(rider)
    Quote.objects.filter(pk=quote.pk).update(expires_at=timezone.now() + timedelta(seconds=5))

    response = client_for(rider).post(TRIPS, trip_body(quote_id=str(quote.pk)), format="json")

    assert response.status_code == 201


def _moved(which: str, metres: float) -> dict:
    place = PICK_UP if which == "pick_up" else DROP_OFF
    lat, lng = metres_north(metres, place)
    return {f"{which}_lat": lat, f"{which}_lng": lng}


MISMATCHES = {
    "another product": {"product": "xl"},
    "pick-up 150 m away": _moved("pick_up", 150),
    "drop-off 150 m away": _moved("drop_off", -150),
    "drop-off 2 km away": _moved("drop_off", 2000),
    "no drop-off": {"drop_off_lat": None, "drop_off_lng": None},
}


@pytest.mark.parametrize("change", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_a_quote_for_another_product_or_places_is_a_400_mismatch(rider, client_for, change):
    quote = quote_for(rider, "standard")
    before = rows()

    response = client_for(rider).post(
        TRIPS, trip_body(quote_id=str(quote.pk), **change), format="json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "quote_mismatch")
    assert rows() == before


def test_another_rider_s_quote_is_a_404(rider, make_user, client_for):
    other = make_user("rider")
    quote = quote_for(other)
    before = rows()

    response = client_for(rider).post(TRIPS, trip_body(quote_id=str(quote.pk)), format="json")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert rows() == before


def test_another_rider_s_expired_quote_is_a_404_too(rider, make_user, client_for):
    quote = quote_for(make_user("rider"))
    Quote.objects.filter(pk=quote.pk).update(expires_at=timezone.now() - timedelta(hours=1))

    response = client_for(rider).post(TRIPS, trip_body(quote_id=str(quote.pk)), format="json")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert not Trip.objects.exists()


def test_an_unknown_quote_is_a_404(rider, client_for):
    response = client_for(rider).post(TRIPS, trip_body(quote_id=str(uuid.uuid4())), format="json")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert not Trip.objects.exists()


@pytest.mark.parametrize("quote_id", ["not-a-uuid", 42, ["x"], {"id": 1}, True, ""])
def test_a_malformed_quote_id_is_a_400(rider, client_for, quote_id):
    response = client_for(rider).post(TRIPS, trip_body(quote_id=quote_id), format="json")

    assert response.status_code == 400
    assert "quote_id" in response.json()
    assert not Trip.objects.exists()


# --- REST: without a quote --------------------------------------------------------------


def test_without_a_quote_a_trip_with_a_drop_off_carries_an_estimate(rider, client_for):
    response = client_for(rider).post(TRIPS, trip_body(), format="json")

    assert response.status_code == 201
    trip = response.json()
    assert trip["product"] == "standard"
    fare = trip["fare"]
    assert fare["kind"] == "estimate"
    assert fare["currency"] == "USD"
    assert Decimal(fare["amount"]) >= Decimal(CATALOGUE["standard"]["rate"]["minimum"])
    assert money_sum(fare["breakdown"]) == Decimal(fare["amount"])
    assert trip["pickup_eta_s"] is None
    (quote,) = (
        client_for(rider)
        .post("/api/quotes/", quote_body("standard"), format="json")
        .json()["quotes"]
    )
    assert quote["amount"] == fare["amount"], "an estimate is priced as a quote would be"
    assert not Trip.objects.get(pk=trip["id"]).quote_id


def test_the_product_asked_for_is_priced(rider, client_for):
    response = client_for(rider).post(TRIPS, trip_body(product="xl"), format="json")

    trip = response.json()
    assert (trip["product"], trip["fare"]["kind"]) == ("xl", "estimate")
    standard = quote_for(rider, "standard").fare["amount"]
    assert Decimal(trip["fare"]["amount"]) > Decimal(standard)


def test_without_a_drop_off_the_fare_is_null(rider, client_for):
    body = trip_body(drop_off_lat=None, drop_off_lng=None)

    trip = client_for(rider).post(TRIPS, body, format="json").json()

    assert (trip["product"], trip["fare"], trip["distance_m"], trip["duration_s"]) == (
        "standard",
        None,
        None,
        None,
    )
    assert (
        Trip.objects.get(pk=trip["id"]).rate_card
        == Product.objects.get(code="standard").current_rate_card()
    )


@pytest.mark.parametrize("product", ["limousine", "xl-inactive", "X L", 7])
def test_an_unknown_or_inactive_product_is_a_400_and_writes_no_trip(rider, client_for, product):
    Product.objects.filter(code="xl").update(active=False)
    if product == "xl-inactive":
        product = "xl"

    response = client_for(rider).post(TRIPS, trip_body(product=product), format="json")

    assert response.status_code == 400, response.content
    assert rows() == (0, 0)


def test_a_trip_to_where_it_starts_is_a_400(rider, client_for):
    body = trip_body(drop_off_lat=PICK_UP[0], drop_off_lng=PICK_UP[1])

    response = client_for(rider).post(TRIPS, body, format="json")

    assert response.status_code == 400
    assert not Trip.objects.exists()


# --- the socket's create.trip ---------------------------------------------------------------


async def test_create_trip_over_the_socket_keeps_the_quote_s_price(rider, ws_connect):
    quote = await database_sync_to_async(quote_for)(rider, "xl")
    ws = await open_socket(ws_connect, rider)

    reply = await request(ws, "create.trip", trip_body(quote_id=str(quote.pk)))

    assert reply["type"] == "trip.created", reply
    trip = reply["data"]
    assert trip["product"] == "xl"
    assert trip["fare"] == quoted_fare(quote)


async def test_create_trip_over_the_socket_estimates_without_a_quote(rider, ws_connect):
    ws = await open_socket(ws_connect, rider)

    reply = await request(ws, "create.trip", trip_body(product="xl"))

    assert reply["type"] == "trip.created", reply
    assert (reply["data"]["product"], reply["data"]["fare"]["kind"]) == ("xl", "estimate")


def _expired_quote(rider) -> Quote:
    quote = quote_for(rider)
    Quote.objects.filter(pk=quote.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return quote


def _others_quote(rider, make_user) -> Quote:
    return quote_for(make_user("rider"))


@pytest.mark.parametrize(
    ("setup", "change", "code"),
    [
        ("expired", {}, "quote_expired"),
        ("own", {"product": "xl"}, "quote_mismatch"),
        ("own", _moved("pick_up", 150), "quote_mismatch"),
        ("others", {}, "not_found"),
        ("unknown", {}, "not_found"),
        ("malformed", {}, "invalid"),
        ("own-unknown-product", {"product": "limousine"}, "quote_mismatch"),
    ],
    ids=["expired", "product", "pick-up", "others", "unknown", "malformed", "unknown-product"],
)
async def test_create_trip_over_the_socket_refuses_a_bad_quote_and_writes_nothing(
    rider, make_user, ws_connect, setup, change, code
):
    def make_quote_id() -> str:
        if setup == "expired":
            return str(_expired_quote(rider).pk)
        if setup == "others":
            return str(_others_quote(rider, make_user).pk)
        if setup == "unknown":
            return str(uuid.uuid4())
        if setup == "malformed":
            return "not-a-uuid"
        return str(quote_for(rider).pk)

    quote_id = await database_sync_to_async(make_quote_id)()
    before = await database_sync_to_async(rows)()
    ws = await open_socket(ws_connect, rider)

    reply = await request(ws, "create.trip", trip_body(quote_id=quote_id, **change))

    assert_error(reply, code)
    assert await database_sync_to_async(rows)() == before


async def test_create_trip_over_the_socket_refuses_an_unknown_product(rider, ws_connect):
    ws = await open_socket(ws_connect, rider)

    reply = await request(ws, "create.trip", trip_body(product="limousine"))

    assert_error(reply, "invalid")
    assert await database_sync_to_async(rows)() == (0, 0)


# --- completed: the final fare --------------------------------------------------------------


def ride(rider, driver, **create) -> Trip:
    """The trip from request to IN_PROGRESS through the real services."""
    go_online(driver, 0.5)
    trip = trip_create(
        rider=rider,
        pick_up_address="1600 Pennsylvania Avenue",
        pick_up_lat=PICK_UP[0],
        pick_up_lng=PICK_UP[1],
        drop_off_address="Adams Morgan",
        **{"drop_off_lat": DROP_OFF[0], "drop_off_lng": DROP_OFF[1], **create},
    )
    assert trip_offer_next(trip_id=trip.pk).driver_id == driver.pk
    trip_accept(trip_id=trip.pk, driver=driver)
    return trip_move(trip_id=trip.pk, user=driver, status=Trip.Status.IN_PROGRESS)


def complete(trip: Trip, driver) -> dict:
    trip_move(trip_id=trip.pk, user=driver, status=Trip.Status.COMPLETED)
    return Trip.objects.get(pk=trip.pk).fare


def test_a_quoted_trip_completes_at_its_quoted_amount(rider, driver):
    quote = quote_for(rider)
    trip = ride(rider, driver, quote_id=quote.pk)
    Trip.objects.filter(pk=trip.pk).update(picked_up_at=timezone.now() - timedelta(hours=2))

    fare = complete(trip, driver)

    assert fare == {**quote.fare, "kind": "final"}


def test_an_estimated_trip_completed_at_once_costs_its_estimate(rider, driver):
    trip = ride(rider, driver)
    estimate = trip.fare

    fare = complete(trip, driver)

    assert fare["kind"] == "final"
    assert fare["amount"] == estimate["amount"]
    assert money_sum(fare["breakdown"]) == Decimal(fare["amount"])


def test_an_estimated_trip_that_took_longer_costs_more_never_less(rider, driver):
    trip = ride(rider, driver)
    estimate = trip.fare
    Trip.objects.filter(pk=trip.pk).update(picked_up_at=timezone.now() - timedelta(minutes=60))

    fare = complete(trip, driver)

    assert fare["kind"] == "final"
    assert Decimal(fare["amount"]) > Decimal(estimate["amount"])
    assert Decimal(fare["breakdown"]["time"]) == pytest.approx(
        Decimal("0.30") * 60, abs=Decimal("0.02")
    )
    assert fare["breakdown"]["distance"] == estimate["breakdown"]["distance"]
    assert money_sum(fare["breakdown"]) == Decimal(fare["amount"])


def test_the_final_fare_is_shown_to_the_rider(rider, driver, client_for):
    trip = ride(rider, driver)
    complete(trip, driver)

    body = client_for(rider).get(f"{TRIPS}{trip.pk}/").json()

    assert body["status"] == "COMPLETED"
    assert body["fare"]["kind"] == "final"


def test_a_trip_without_a_drop_off_is_priced_to_where_the_driver_ended(rider, driver):
    trip = ride(rider, driver, drop_off_lat=None, drop_off_lng=None)
    assert trip.fare is None

    fare = complete(trip, driver)

    # The driver ended where they were online (0.5 km north): a short ride.
    assert fare["kind"] == "final"
    assert fare["amount"] == CATALOGUE["standard"]["rate"]["minimum"]


# --- rate card versions and trips ---------------------------------------------------------


def edit_rates(code: str, **rates: str) -> RateCard:
    product = Product.objects.get(code=code)
    for name, value in rates.items():
        setattr(product, name, Decimal(value))
    product.save()
    return product.current_rate_card()


def test_a_trip_priced_before_an_edit_completes_with_its_own_rate_card(rider, driver):
    trip = ride(rider, driver)
    priced_with = Trip.objects.get(pk=trip.pk).rate_card
    Trip.objects.filter(pk=trip.pk).update(picked_up_at=timezone.now() - timedelta(minutes=30))
    edited = edit_rates("standard", per_km="12.00", per_min="5.00", base="20.00")
    assert edited.pk != priced_with.pk

    fare = complete(trip, driver)

    old = fares.Rates(**priced_with.rate_values())
    expected = fares.price(
        old, distance_m=trip.distance_m, duration_s=30 * 60, surge=Decimal("1.0")
    )
    assert Decimal(fare["amount"]) == pytest.approx(expected.amount, abs=Decimal("0.05"))
    assert Decimal(fare["breakdown"]["base"]) == Decimal("2.50")
    assert Trip.objects.get(pk=trip.pk).rate_card == priced_with


def test_a_quote_given_before_an_edit_still_prices_the_trip_after_it(rider, client_for):
    quote = quote_for(rider)
    edit_rates("standard", per_km="12.00")

    response = client_for(rider).post(TRIPS, trip_body(quote_id=str(quote.pk)), format="json")

    assert response.json()["fare"]["amount"] == quote.fare["amount"]
    assert Trip.objects.get(pk=response.json()["id"]).rate_card == quote.rate_card
    assert quote.rate_card.version == 1


def test_a_trip_requested_after_an_edit_is_priced_with_the_new_rates(rider, client_for):
    before = quote_for(rider).fare["amount"]
    edited = edit_rates("standard", per_km="12.00")

    response = client_for(rider).post(TRIPS, trip_body(), format="json")

    assert Decimal(response.json()["fare"]["amount"]) > Decimal(before)
    assert Trip.objects.get(pk=response.json()["id"]).rate_card == edited


def test_an_xl_ride_needs_an_xl_vehicle_and_completes_at_xl_rates(rider, driver):
    give_vehicle(driver, ["xl"])
    trip = ride(rider, driver, product="xl")

    fare = complete(trip, driver)

    assert fare["breakdown"]["base"] == CATALOGUE["xl"]["rate"]["base"]
