"""Prices and arrival times (`kpi.compute_pricing_kpis`) on a synthetic event log."""

import pytest

from sim import kpi
from sim.kpi import Event, compute_kpis, compute_pricing_kpis


def _log() -> list[Event]:
    """Five requests. 0: quoted at 1.0x, trip A completed (12.40 USD); its
    driver came 40 s before the ETA. 1: quoted xl at 1.5x, trip B completed
    (30.00 USD); the driver came 20 s after the ETA. 2: quoted at 1.5x, the
    rider walked away. 3: no quote (throttled), asked unquoted, trip C
    canceled before pick-up. 4: quoted at 2.0x, trip D reached its pick-up
    but the trip carried no ETA."""
    e = Event
    return [
        e(0.0, kpi.QUOTE_SENT, request=0),
        e(0.02, kpi.QUOTED, request=0, value=1.0, detail="standard"),
        e(0.03, kpi.REQUESTED, request=0),
        e(0.1, kpi.CREATED, request=0, trip_id="A"),
        e(1.0, kpi.MATCHED, request=0, trip_id="A"),
        e(1.0, kpi.PICKUP_ETA, trip_id="A", value=200.0),
        e(1.0, kpi.PICKUP_ETA, trip_id="A", value=999.0),  # a repeated push: the first counts
        e(9.0, kpi.AT_PICK_UP, trip_id="A", driver=1, value=160.0),
        e(20.0, kpi.COMPLETED, trip_id="A"),
        e(20.0, kpi.FARE, trip_id="A", value=12.4, detail="USD"),
        e(2.0, kpi.QUOTE_SENT, request=1),
        e(2.06, kpi.QUOTED, request=1, value=1.5, detail="xl"),
        e(2.1, kpi.REQUESTED, request=1),
        e(2.2, kpi.CREATED, request=1, trip_id="B"),
        e(3.0, kpi.MATCHED, request=1, trip_id="B"),
        e(3.0, kpi.PICKUP_ETA, trip_id="B", value=100.0),
        e(9.0, kpi.AT_PICK_UP, trip_id="B", driver=2, value=120.0),
        e(25.0, kpi.COMPLETED, trip_id="B"),
        e(25.0, kpi.FARE, trip_id="B", value=30.0, detail="USD"),
        e(25.0, kpi.FARE, trip_id="B", value=31.0, detail="USD"),  # counted once
        e(4.0, kpi.QUOTE_SENT, request=2),
        e(4.04, kpi.QUOTED, request=2, value=1.5, detail="standard"),
        e(4.04, kpi.DECLINED_SURGE, request=2, value=1.5),
        e(5.0, kpi.QUOTE_SENT, request=3),
        e(5.01, kpi.QUOTE_FAILED, request=3, detail="rate_limited"),
        e(5.02, kpi.REQUESTED, request=3),
        e(5.1, kpi.CREATED, request=3, trip_id="C"),
        e(6.0, kpi.MATCHED, request=3, trip_id="C"),
        e(6.0, kpi.PICKUP_ETA, trip_id="C", value=300.0),
        e(7.0, kpi.CANCELED, trip_id="C", detail="rider"),
        e(8.0, kpi.QUOTE_SENT, request=4),
        e(8.08, kpi.QUOTED, request=4, value=2.0, detail="standard"),
        e(8.1, kpi.REQUESTED, request=4),
        e(8.2, kpi.CREATED, request=4, trip_id="D"),
        e(8.5, kpi.MATCHED, request=4, trip_id="D"),
        e(12.0, kpi.AT_PICK_UP, trip_id="D", driver=3, value=90.0),
    ]


def test_quotes_are_counted_and_timed():
    quotes = compute_pricing_kpis(_log())["quotes"]

    assert quotes["asked"] == 5
    assert quotes["made"] == 4
    assert quotes["failed"] == 1
    assert quotes["failed_by_code"] == {"rate_limited": 1}
    assert quotes["by_product"] == {"standard": 3, "xl": 1}
    latency = quotes["latency_ms"]
    assert latency["count"] == 4  # the refused one is not timed
    assert latency["p50"] == pytest.approx(50.0)  # between 40 and 60 ms
    assert latency["p95"] == pytest.approx(77.0)


def test_the_surge_seen_is_the_quotes_and_walking_away_is_counted():
    surge = compute_pricing_kpis(_log())["surge"]

    assert surge["mean"] == pytest.approx(1.5)  # (1.0 + 1.5 + 1.5 + 2.0) / 4
    assert surge["max"] == 2.0
    assert surge["share_above_1"] == pytest.approx(0.75)
    assert surge["declined_for_surge"] == 1


def test_the_mean_fare_is_of_completed_trips_per_currency():
    fare = compute_pricing_kpis(_log())["fare"]

    assert fare["completed_with_fare"] == 2
    assert fare["mean_by_currency"] == {"USD": "21.20"}  # (12.40 + 30.00) / 2


def test_fares_in_two_currencies_are_not_averaged_together():
    log = [
        Event(1.0, kpi.FARE, trip_id="A", value=10.0, detail="USD"),
        Event(2.0, kpi.FARE, trip_id="B", value=9.0, detail="EUR"),
        Event(3.0, kpi.FARE, trip_id="C", value=14.0, detail="USD"),
    ]

    assert compute_pricing_kpis(log)["fare"]["mean_by_currency"] == {
        "EUR": "9.00",
        "USD": "12.00",
    }


def test_the_eta_error_pairs_each_trips_eta_with_its_drive():
    error = compute_pricing_kpis(_log())["pickup_eta_error_s"]

    # A: 200 promised, 160 driven (+40); B: 100 promised, 120 driven (-20).
    # C never reached its pick-up; D reached it without an ETA.
    assert error["count"] == 2
    assert error["mean_abs"] == pytest.approx(30.0)
    assert error["mean_signed"] == pytest.approx(10.0)
    assert error["mean_eta"] == pytest.approx(150.0)
    assert error["mean_drive"] == pytest.approx(140.0)
    assert error["no_eta"] == 1


def test_an_empty_run_reports_no_prices_rather_than_failing():
    report = compute_pricing_kpis([])

    assert report["quotes"]["made"] == 0 and report["quotes"]["latency_ms"]["p50"] is None
    assert report["surge"] == {
        "mean": None,
        "max": None,
        "share_above_1": None,
        "declined_for_surge": 0,
    }
    assert report["fare"] == {"completed_with_fare": 0, "mean_by_currency": {}}
    assert report["pickup_eta_error_s"]["count"] == 0
    assert report["pickup_eta_error_s"]["mean_abs"] is None


def test_the_pricing_events_leave_the_matching_kpis_alone():
    # Declined requests were never sent; quotes are not requests.
    matching = compute_kpis(_log())

    assert matching["requests"]["sent"] == 4
    assert matching["trips"]["requested"] == 4
    assert matching["trips"]["completed"] == 2
    assert not set(matching) & set(compute_pricing_kpis(_log()))
