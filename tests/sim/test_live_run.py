"""One short simulated city against a real stack (web, worker, beat)."""

import json

import pytest

from sim.run import run
from sim.scenario import SimConfig
from tests.sim.live import SMALL_TOWN, sim_stack, trips_left_open

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def live_stack(transactional_db, catalogue, tmp_path):
    with sim_stack(tmp_path) as stack:
        yield stack


async def test_a_short_city_matches_every_trip_and_leaves_nothing_open(live_stack, tmp_path):
    # Given a stack and a town where every driver accepts every offer
    config = SimConfig(
        drivers=6,
        riders=4,
        rate=1.0,
        duration_s=10.0,
        accept_prob=1.0,
        silent_prob=0.0,
        cancel_prob=0.0,
        bbox=SMALL_TOWN,
        seed=3,
        time_scale=100.0,
        ping_every_s=0.5,
        drain_s=10.0,
        base_url=live_stack.web_urls[0],
        xl_driver_share=0.5,
        xl_request_share=0.0,  # every car serves standard: each request finds a driver
        surge_decline_share=0.0,
        # Every rider comes out to the car, no driver gives a trip up, nobody
        # books ahead (the whole ride has tests of its own: test_live_ride.py)
        no_show_share=0.0,
        driver_cancel_share=0.0,
        scheduled_share=0.0,
    )
    out = tmp_path / "kpis.json"

    # When the simulator runs it over the public API
    report = await run(config, json_path=out)

    # Then every trip requested was matched, by its first offer
    kpis = report["kpis"]
    trips = kpis["trips"]
    assert trips["requested"] >= 3
    assert trips["matched"] == trips["requested"]
    assert trips["expired"] == 0 and trips["canceled"] == 0
    assert trips["completed"] >= 1
    assert kpis["requests"]["refused"] == 0
    assert kpis["offers"]["per_trip_mean"] == 1.0
    assert kpis["acceptance_rate"] == 1.0
    assert kpis["time_to_match_ms"]["count"] == trips["matched"]
    assert kpis["errors"] == 0
    assert kpis["counters"]["locations_sent"] > 0
    # and every request was quoted first, and kept its quote's price
    quotes = kpis["quotes"]
    assert quotes["made"] == quotes["asked"] == kpis["requests"]["sent"]
    assert quotes["failed"] == 0 and quotes["latency_ms"]["count"] == quotes["made"]
    assert 1.0 <= kpis["surge"]["mean"] <= kpis["surge"]["max"] <= 3.0
    assert kpis["surge"]["declined_for_surge"] == 0
    assert kpis["fare"]["completed_with_fare"] == trips["completed"]
    assert set(kpis["fare"]["mean_by_currency"]) == {"USD"}
    # and the pick-up ETA of every trip whose driver got there was measured
    assert kpis["pickup_eta_error_s"]["count"] >= 1
    assert kpis["pickup_eta_error_s"]["no_eta"] == 0
    # and the report on disk is the same one
    assert json.loads(out.read_text())["kpis"] == json.loads(json.dumps(kpis))
    # and no trip was left active on the server
    assert await trips_left_open() == 0
