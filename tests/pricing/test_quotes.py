"""`POST /api/quotes/` (PROTOCOL.md Part 2, "Products, vehicles and prices"),
with real Redis (presence, surge) and the real database: who may ask, what
is priced, what is refused with nothing written, the promises about the
amount, the pick-up ETA, the expiry, and a routing engine (a real HTTP
server on 127.0.0.1 answering like OSRM) used when configured and
survived when down."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from dispatch import keys as dispatch_keys
from pricing import keys, surge
from pricing.models import Product, Quote, RateCard
from taxi.infra.redis import get_redis
from tests.dispatch.support import PICK_UP, km_north
from tests.pricing.support import (
    CATALOGUE,
    DROP_OFF,
    close_to,
    closed_port,
    give_vehicle,
    go_online,
    is_money,
    money_sum,
    quote_body,
    straight_line_m,
    straight_line_s,
)
from tests.pricing.test_eta import ENGINE_ROUTE, Engine

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("catalogue", "high_rates"),
]

URL = "/api/quotes/"
QUOTE_KEYS = {
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
}
BREAKDOWN_KEYS = {"base", "distance", "time", "booking_fee", "surge"}  # and ours: minimum_top_up


def ask(client: APIClient, body: dict):
    return client.post(URL, body, format="json")


def post_raw(client: APIClient, raw: str):
    return client.post(URL, raw, content_type="application/json")


# --- who may ask, and what comes back ---------------------------------------------


def test_a_rider_gets_one_quote_per_active_product(rider, client_for):
    before = timezone.now()

    response = ask(client_for(rider), quote_body())

    assert response.status_code == 201, response.content
    quotes = response.json()["quotes"]
    assert [q["product"] for q in quotes] == ["standard", "xl"]
    for quote in quotes:
        assert set(quote) == QUOTE_KEYS
        assert BREAKDOWN_KEYS <= set(quote["breakdown"])
        assert quote["currency"] == "USD"
        assert is_money(quote["amount"])
        assert all(is_money(part) for part in quote["breakdown"].values())
        assert isinstance(quote["surge_multiplier"], str)
    stored = Quote.objects.filter(rider=rider)
    assert {str(q.pk) for q in stored} == {q["quote_id"] for q in quotes}
    assert {q.rate_card_id for q in stored} == {
        Product.objects.get(code=code).current_rate_card().pk for code in ("standard", "xl")
    }
    assert all(q.created >= before for q in stored)


def test_a_rider_may_ask_for_one_product(rider, client_for):
    response = ask(client_for(rider), quote_body("xl"))

    assert response.status_code == 201
    assert [q["product"] for q in response.json()["quotes"]] == ["xl"]
    assert list(Quote.objects.values_list("product_id", flat=True)) == ["xl"]


def test_inactive_products_are_not_quoted(rider, client_for):
    Product.objects.filter(code="xl").update(active=False)

    response = ask(client_for(rider), quote_body())

    assert [q["product"] for q in response.json()["quotes"]] == ["standard"]


def test_a_driver_gets_403_and_no_quote(driver, client_for):
    response = ask(client_for(driver), quote_body())

    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert not Quote.objects.exists()


def test_an_anonymous_caller_gets_401_and_no_quote(api):
    response = ask(api, quote_body())

    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")
    assert not Quote.objects.exists()


# --- refusals: a 400 and nothing written ----------------------------------------------

BAD_BODIES = {
    "unknown product": quote_body("limousine"),
    "product not a slug": quote_body("x l"),
    "product a number": quote_body(5),
    "latitude out of range": quote_body(pick_up_lat=91),
    "longitude out of range": quote_body(drop_off_lng=-181),
    "huge integer": quote_body(pick_up_lat=10**400),
    "latitude a string": quote_body(pick_up_lat="38.8977"),
    "longitude a boolean": quote_body(drop_off_lng=True),
    "latitude null": quote_body(drop_off_lat=None),
    "missing pick-up": {k: v for k, v in quote_body().items() if k != "pick_up_lng"},
    "missing drop-off": {k: v for k, v in quote_body().items() if k != "drop_off_lat"},
    "same place": quote_body(drop_off_lat=PICK_UP[0], drop_off_lng=PICK_UP[1]),
    "a few metres apart": quote_body(drop_off_lat=PICK_UP[0] + 0.00002, drop_off_lng=PICK_UP[1]),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_bad_request_is_a_400_and_writes_no_quote(rider, client_for, body):
    response = ask(client_for(rider), body)

    assert response.status_code == 400, response.content
    assert not Quote.objects.exists()


def test_an_inactive_product_asked_for_is_a_400(rider, client_for):
    Product.objects.filter(code="xl").update(active=False)

    response = ask(client_for(rider), quote_body("xl"))

    assert response.status_code == 400
    assert not Quote.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        '{"pick_up_lat": NaN, "pick_up_lng": -77.03, "drop_off_lat": 38.9, "drop_off_lng": -77}',
        '{"pick_up_lat": 38.9, "pick_up_lng": Infinity, "drop_off_lat": 38.9, "drop_off_lng": -77}',
        '{"pick_up_lat": 38.9, "pick_up_lng": -77.03, "drop_off_lat": -Infinity, '
        '"drop_off_lng": 1}',
        "[1, 2, 3]",
        "not json",
    ],
    ids=["nan", "infinity", "minus-infinity", "a list", "not json"],
)
def test_non_numbers_in_the_body_are_a_400(rider, client_for, raw):
    response = post_raw(client_for(rider), raw)

    assert response.status_code == 400
    assert not Quote.objects.exists()


# --- the amount -----------------------------------------------------------------------


def test_the_breakdown_adds_up_to_the_amount_and_the_amount_is_not_below_the_minimum(
    rider, client_for
):
    long_ride = quote_body()
    short_ride = quote_body(drop_off_lat=PICK_UP[0] + 0.0005, drop_off_lng=PICK_UP[1])

    for body in (long_ride, short_ride):
        for quote in ask(client_for(rider), body).json()["quotes"]:
            minimum = Decimal(CATALOGUE[quote["product"]]["rate"]["minimum"])
            assert Decimal(quote["amount"]) >= minimum
            assert money_sum(quote["breakdown"]) == Decimal(quote["amount"])
            assert quote["surge_multiplier"] == "1.0"
            assert Decimal(quote["breakdown"]["surge"]) == 0


def test_a_short_ride_costs_the_minimum(rider, client_for):
    body = quote_body("standard", drop_off_lat=PICK_UP[0] + 0.0005, drop_off_lng=PICK_UP[1])

    (quote,) = ask(client_for(rider), body).json()["quotes"]

    assert quote["amount"] == "7.00"


def test_the_route_is_the_straight_line_stretched_at_the_average_speed(rider, client_for):
    (quote,) = ask(client_for(rider), quote_body("standard")).json()["quotes"]

    assert quote["distance_m"] == pytest.approx(straight_line_m(PICK_UP, DROP_OFF), abs=1)
    assert quote["duration_s"] == pytest.approx(straight_line_s(PICK_UP, DROP_OFF), abs=1)
    km, minutes = Decimal(quote["distance_m"]) / 1000, Decimal(quote["duration_s"]) / 60
    rates = CATALOGUE["standard"]["rate"]
    assert Decimal(quote["breakdown"]["distance"]) == pytest.approx(
        Decimal(rates["per_km"]) * km, abs=Decimal("0.01")
    )
    assert Decimal(quote["breakdown"]["time"]) == pytest.approx(
        Decimal(rates["per_min"]) * minutes, abs=Decimal("0.01")
    )


def test_a_longer_ride_never_costs_less(rider, client_for):
    amounts = []
    for km in (0.5, 1, 2, 5, 10, 40):
        drop_off = km_north(km)
        body = quote_body("xl", drop_off_lat=drop_off[0], drop_off_lng=drop_off[1])
        amounts.append(Decimal(ask(client_for(rider), body).json()["quotes"][0]["amount"]))

    assert amounts == sorted(amounts)
    assert amounts[-1] > amounts[0]


def _surge_at_pick_up(value: str) -> None:
    get_redis().hset(keys.MULTIPLIERS, surge.cell_of(*PICK_UP), value)


def test_the_pick_up_cell_s_surge_lifts_all_but_the_booking_fee(rider, client_for):
    (calm,) = ask(client_for(rider), quote_body("standard")).json()["quotes"]
    _surge_at_pick_up("2.0")

    (surged,) = ask(client_for(rider), quote_body("standard")).json()["quotes"]

    assert surged["surge_multiplier"] == "2.0"
    lifted = sum(Decimal(calm["breakdown"][k]) for k in ("base", "distance", "time"))
    assert Decimal(surged["breakdown"]["surge"]) == lifted
    assert surged["breakdown"]["booking_fee"] == calm["breakdown"]["booking_fee"]
    assert money_sum(surged["breakdown"]) == Decimal(surged["amount"])


@pytest.mark.parametrize(("stored", "shown"), [("9.9", "3.0"), ("0.2", "1.0"), ("junk", "1.0")])
def test_the_multiplier_stays_within_one_and_surge_max(rider, client_for, settings, stored, shown):
    _surge_at_pick_up(stored)

    quotes = ask(client_for(rider), quote_body()).json()["quotes"]

    assert {q["surge_multiplier"] for q in quotes} == {shown}
    assert Decimal(shown) <= Decimal(str(settings.SURGE_MAX))


def test_surge_elsewhere_does_not_apply(rider, client_for):
    get_redis().hset(keys.MULTIPLIERS, surge.cell_of(*DROP_OFF), "2.5")

    quotes = ask(client_for(rider), quote_body()).json()["quotes"]

    assert {q["surge_multiplier"] for q in quotes} == {"1.0"}


# --- pick-up ETA -----------------------------------------------------------------------


def test_no_driver_around_means_no_pick_up_eta(rider, client_for):
    quotes = ask(client_for(rider), quote_body()).json()["quotes"]

    assert [q["pickup_eta_s"] for q in quotes] == [None, None]


def test_an_eligible_driver_nearby_gives_the_pick_up_eta(rider, driver, client_for):
    give_vehicle(driver, ["standard", "xl"])
    go_online(driver, 1.0)

    quotes = ask(client_for(rider), quote_body()).json()["quotes"]

    expected = straight_line_s(PICK_UP, km_north(1.0))
    for quote in quotes:
        assert isinstance(quote["pickup_eta_s"], int)
        assert close_to(quote["pickup_eta_s"], expected), (quote["pickup_eta_s"], expected)


def test_only_standard_drivers_around_give_no_xl_eta(rider, make_user, client_for):
    without_vehicle, sedan = make_user("driver"), make_user("driver")
    give_vehicle(sedan, ["standard"])
    go_online(without_vehicle, 0.4)
    go_online(sedan, 0.8)

    quotes = {q["product"]: q for q in ask(client_for(rider), quote_body()).json()["quotes"]}

    assert close_to(quotes["standard"]["pickup_eta_s"], straight_line_s(PICK_UP, km_north(0.4)))
    assert quotes["xl"]["pickup_eta_s"] is None


def test_the_xl_eta_is_the_nearest_xl_driver_s(rider, make_user, client_for):
    sedan, van = make_user("driver"), make_user("driver")
    give_vehicle(sedan, ["standard"])
    give_vehicle(van, ["xl"])
    go_online(sedan, 0.3)
    go_online(van, 2.0)

    quotes = {q["product"]: q for q in ask(client_for(rider), quote_body()).json()["quotes"]}

    assert close_to(quotes["standard"]["pickup_eta_s"], straight_line_s(PICK_UP, km_north(0.3)))
    assert close_to(quotes["xl"]["pickup_eta_s"], straight_line_s(PICK_UP, km_north(2.0)))


def test_a_driver_not_available_gives_no_eta(rider, driver, client_for):
    go_online(driver, 0.5)
    get_redis().zrem(dispatch_keys.AVAILABLE, driver.pk)  # busy: out of the available set

    quotes = ask(client_for(rider), quote_body("standard")).json()["quotes"]

    assert quotes[0]["pickup_eta_s"] is None


# --- expiry and ownership ----------------------------------------------------------------


def test_a_quote_expires_quote_ttl_s_after_it_was_given(rider, client_for, settings):
    settings.QUOTE_TTL_S = 300
    before = timezone.now()

    quotes = ask(client_for(rider), quote_body()).json()["quotes"]

    after = timezone.now()
    ttl = timedelta(seconds=300)
    for quote in quotes:
        expires_at = Quote.objects.get(pk=quote["quote_id"]).expires_at
        assert before + ttl <= expires_at <= after + ttl
        assert quote["expires_at"].startswith(expires_at.isoformat()[:19])


def test_quotes_keep_the_rate_card_they_were_priced_with(rider, client_for):
    (quote,) = ask(client_for(rider), quote_body("standard")).json()["quotes"]
    product = Product.objects.get(code="standard")
    product.per_km = Decimal("9.00")
    product.save()

    row = Quote.objects.get(pk=quote["quote_id"])

    assert row.rate_card.per_km == Decimal("1.20")
    assert row.fare["amount"] == quote["amount"]
    assert RateCard.objects.filter(product=product).count() == 2
    (requoted,) = ask(client_for(rider), quote_body("standard")).json()["quotes"]
    assert Decimal(requoted["amount"]) > Decimal(quote["amount"])


# --- a routing engine --------------------------------------------------------------------


def test_quotes_use_the_routing_engine_s_route(rider, driver, client_for, settings, engine):
    settings.ETA_PROVIDER, settings.OSRM_URL = "osrm", engine.url
    go_online(driver, 1.0)

    (quote,) = ask(client_for(rider), quote_body("standard")).json()["quotes"]

    assert quote["distance_m"] == round(ENGINE_ROUTE["distance"])
    assert quote["duration_s"] == round(ENGINE_ROUTE["duration"])
    # The pick-up ETA too: the engine's drive from the driver.
    assert quote["pickup_eta_s"] == round(ENGINE_ROUTE["duration"])
    routes = [seen.path for seen in engine.requests]
    pick_up, drop_off = f"{PICK_UP[1]:.6f},{PICK_UP[0]:.6f}", f"{DROP_OFF[1]:.6f},{DROP_OFF[0]:.6f}"
    assert f"/route/v1/driving/{pick_up};{drop_off}" in routes


def test_with_the_engine_down_quotes_still_answer_with_the_straight_line(
    rider, client_for, settings
):
    settings.ETA_PROVIDER = "osrm"
    settings.OSRM_URL = f"http://127.0.0.1:{closed_port()}"

    response = ask(client_for(rider), quote_body("standard"))

    assert response.status_code == 201
    (quote,) = response.json()["quotes"]
    assert quote["distance_m"] == pytest.approx(straight_line_m(PICK_UP, DROP_OFF), abs=1)
    assert quote["duration_s"] == pytest.approx(straight_line_s(PICK_UP, DROP_OFF), abs=1)


def test_with_the_engine_failing_quotes_still_answer(rider, client_for, settings, engine: Engine):
    settings.ETA_PROVIDER, settings.OSRM_URL = "osrm", engine.url
    engine.mode = "status_500"

    response = ask(client_for(rider), quote_body("standard"))

    assert response.status_code == 201
    assert response.json()["quotes"][0]["distance_m"] == pytest.approx(
        straight_line_m(PICK_UP, DROP_OFF), abs=1
    )
    assert engine.requests, "the engine was asked first"


def test_quotes_are_throttled_per_rider_and_a_throttled_ask_writes_nothing(
    rider, make_user, client_for, settings
):
    rest = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **rest,
        "DEFAULT_THROTTLE_RATES": {**rest["DEFAULT_THROTTLE_RATES"], "quotes": "2/min"},
    }
    client = client_for(rider)
    assert [ask(client, quote_body("xl")).status_code for _ in range(2)] == [201, 201]

    response = ask(client, quote_body("xl"))

    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")
    assert Quote.objects.count() == 2
    assert ask(client_for(make_user("rider")), quote_body("xl")).status_code == 201
