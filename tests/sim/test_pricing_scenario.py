"""The scenario's cars, products and price reactions: seeded, and separate
from every earlier draw."""

from dataclasses import replace

import pytest

from sim.scenario import STANDARD, XL, SimConfig, build_scenario

CONFIG = SimConfig(drivers=200, riders=8, rate=10.0, duration_s=60.0, seed=7)


def test_shares_of_xl_cars_xl_requests_and_surge_declines_follow_the_configuration():
    config = replace(CONFIG, xl_driver_share=0.3, xl_request_share=0.2, surge_decline_share=0.6)
    scenario = build_scenario(config)
    requests = scenario.requests

    xl_cars = sum(XL in d.products for d in scenario.drivers) / len(scenario.drivers)
    assert abs(xl_cars - 0.3) < 0.1
    assert abs(sum(r.product == XL for r in requests) / len(requests) - 0.2) < 0.06
    assert abs(sum(r.declines_surge for r in requests) / len(requests) - 0.6) < 0.06
    assert all(STANDARD in d.products for d in scenario.drivers)


def test_a_car_is_big_enough_for_its_products():
    scenario = build_scenario(replace(CONFIG, xl_driver_share=0.5))

    for driver in scenario.drivers:
        car = driver.vehicle()
        assert car["products"] == list(driver.products)
        assert car["capacity"] == (6 if XL in driver.products else 4)
        assert car["plate"] and car["make"] and car["model"] and car["color"]
    assert len({d.vehicle()["plate"] for d in scenario.drivers}) == len(scenario.drivers)


def test_products_and_price_reactions_reshuffle_nothing_else():
    # Each has its own named generator: the same city with or without them.
    plain = replace(CONFIG, xl_driver_share=0.0, xl_request_share=0.0, surge_decline_share=0.0)
    priced = replace(CONFIG, xl_driver_share=0.5, xl_request_share=0.5, surge_decline_share=0.5)
    a, b = build_scenario(plain), build_scenario(priced)

    assert [d.start for d in a.drivers] == [d.start for d in b.drivers]
    strip = {"product": STANDARD, "declines_surge": False}
    assert a.requests == [replace(r, **strip) for r in b.requests]
    assert {r.product for r in a.requests} == {STANDARD}
    assert not any(r.declines_surge for r in a.requests)


def test_the_quote_and_the_create_body_name_the_same_places_and_product():
    request = build_scenario(replace(CONFIG, xl_request_share=1.0)).requests[0]

    quote = request.quote_body()
    created = request.priced_body("q-1")
    assert quote["product"] == created["product"] == XL
    for key in ("pick_up_lat", "pick_up_lng", "drop_off_lat", "drop_off_lng"):
        assert quote[key] == created[key] == request.body()[key]
    assert created["quote_id"] == "q-1"
    assert "quote_id" not in request.priced_body(None)


@pytest.mark.parametrize(
    "changes", [{"xl_driver_share": 1.5}, {"xl_request_share": -0.1}, {"surge_decline_share": 2}]
)
def test_shares_outside_zero_to_one_are_refused(changes):
    with pytest.raises(ValueError):
        replace(CONFIG, **changes)
