"""KPI math on a synthetic event log."""

from collections import Counter

import pytest

from sim import kpi
from sim.kpi import Event, compute_kpis, percentile


def test_percentiles_interpolate_between_ranks():
    values = [10.0, 20.0, 30.0, 40.0, 50.0]

    assert percentile(values, 50) == 30.0
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 50.0
    assert percentile(values, 95) == pytest.approx(48.0)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def _log() -> list[Event]:
    """Four requests: A matched after 1 s (one offer), B matched after 3 s
    (declined once, then accepted), C expired (a silent driver timed out,
    then a decline), D canceled by its rider, E refused by the server."""
    e = Event
    return [
        e(0.0, kpi.REQUESTED, request=0),
        e(0.1, kpi.CREATED, request=0, trip_id="A"),
        e(0.2, kpi.OFFER, trip_id="A", driver=1, value=0.8),
        e(0.2, kpi.DECIDED, trip_id="A", driver=1, detail="accept"),
        e(0.9, kpi.ACCEPTED, trip_id="A", driver=1, value=1.0),
        e(1.0, kpi.MATCHED, request=0, trip_id="A"),
        e(1.0, kpi.MATCHED, request=0, trip_id="A"),  # a duplicate push: counted once
        e(2.0, kpi.REQUESTED, request=1),
        e(2.1, kpi.CREATED, request=1, trip_id="B"),
        e(2.2, kpi.OFFER, trip_id="B", driver=2, value=1.5),
        e(2.2, kpi.DECIDED, trip_id="B", driver=2, detail="decline"),
        e(3.0, kpi.OFFER, trip_id="B", driver=3, value=2.5),
        e(3.0, kpi.DECIDED, trip_id="B", driver=3, detail="accept"),
        e(4.5, kpi.ACCEPTED, trip_id="B", driver=3, value=3.0),
        e(5.0, kpi.MATCHED, request=1, trip_id="B"),
        e(5.0, kpi.REQUESTED, request=2),
        e(5.1, kpi.CREATED, request=2, trip_id="C"),
        e(5.2, kpi.OFFER, trip_id="C", driver=4),
        e(5.2, kpi.DECIDED, trip_id="C", driver=4, detail="silent"),
        e(11.2, kpi.REVOKED, trip_id="C", driver=4, detail="expired"),
        e(11.3, kpi.OFFER, trip_id="C", driver=5),
        e(11.3, kpi.DECIDED, trip_id="C", driver=5, detail="decline"),
        e(12.0, kpi.EXPIRED, trip_id="C", detail="no_drivers"),
        e(6.0, kpi.REQUESTED, request=3),
        e(6.1, kpi.CREATED, request=3, trip_id="D"),
        e(9.0, kpi.CANCELED, trip_id="D", detail="waited too long"),
        e(7.0, kpi.REQUESTED, request=4),
        e(7.1, kpi.REQUEST_FAILED, request=4, detail="active_trip_exists"),
        e(8.0, kpi.SKIPPED, request=5),
        e(20.0, kpi.PICKED_UP, trip_id="A"),
        e(30.0, kpi.COMPLETED, trip_id="A"),
        e(40.0, kpi.OPEN_AT_END, trip_id="B", detail="STARTED"),
    ]


def test_kpis_of_a_known_log():
    report = compute_kpis(_log(), Counter({"locations_sent": 12}))

    assert report["requests"] == {
        "sent": 5,
        "created": 4,
        "refused": 1,
        "refused_by_code": {"active_trip_exists": 1},
        "skipped_no_free_rider": 1,
    }
    assert report["trips"] == {
        "requested": 4,
        "matched": 2,
        "expired": 1,
        "canceled": 1,
        "completed": 1,
        "open_at_end": 1,
    }
    wait = report["time_to_match_ms"]
    assert wait["count"] == 2
    assert wait["p50"] == 2000.0  # between 1 s and 3 s
    assert wait["p99"] == pytest.approx(2980.0)
    assert wait["mean"] == 2000.0
    offers = report["offers"]
    assert offers["received"] == 5
    assert offers["per_trip_mean"] == pytest.approx(5 / 4)  # D got none
    assert offers["per_trip_max"] == 2
    assert offers["accepted"] == 2
    assert offers["decided"] == {"accept": 2, "decline": 2, "silent": 1}
    assert offers["revoked"] == {"expired": 1}
    assert report["acceptance_rate"] == pytest.approx(2 / 5)
    assert report["mean_pickup_km"] == pytest.approx(2.0)  # the drivers' own positions
    assert report["errors"] == 0
    assert report["counters"] == {"locations_sent": 12}


def test_an_empty_run_reports_nothing_rather_than_failing():
    report = compute_kpis([])

    assert report["trips"]["requested"] == 0
    assert report["time_to_match_ms"]["p50"] is None
    assert report["acceptance_rate"] is None and report["mean_pickup_km"] is None
    assert report["offers"]["per_trip_mean"] is None


def test_a_match_without_its_request_does_not_invent_a_wait():
    # A push for a trip whose request was not recorded (e.g. a leftover).
    report = compute_kpis([Event(1.0, kpi.MATCHED, trip_id="X")])

    assert report["trips"]["matched"] == 1
    assert report["time_to_match_ms"]["count"] == 0


def test_the_recorder_stamps_events_in_order():
    recorder = kpi.Recorder()
    first = recorder.emit(kpi.REQUESTED, request=0)
    second = recorder.emit(kpi.CREATED, request=0, trip_id="A")
    recorder.count("locations_sent", 3)

    assert 0 <= first.t <= second.t
    assert [e.kind for e in recorder.events] == [kpi.REQUESTED, kpi.CREATED]
    assert recorder.counters["locations_sent"] == 3


def test_the_new_kpis_of_the_known_log():
    report = compute_kpis(_log())

    assert report["match_rate"] == pytest.approx(2 / 4)
    assert report["p95_pickup_km"] == pytest.approx(2.9)  # 1.0 and 3.0, interpolated
    assert report["time_to_offer_ms"]["count"] == 3  # A, B, C; D never got one
    assert report["time_to_offer_ms"]["p50"] == 200.0  # 0.2 s each, after the 0.1 s create


def _rides() -> list[Event]:
    """Two drivers over 100 s. Driver 1: accept at 10, pick-up at 20, drop-off
    at 50. Driver 2: accept at 60, pick-up at 80, still on board at the end."""
    e = Event
    return [
        e(10.0, kpi.ACCEPTED, trip_id="A", driver=1, value=1.0),
        e(20.0, kpi.PICKED_UP, trip_id="A"),
        e(50.0, kpi.COMPLETED, trip_id="A"),
        e(60.0, kpi.ACCEPTED, trip_id="B", driver=2, value=2.0),
        e(80.0, kpi.PICKED_UP, trip_id="B"),
    ]


def test_driver_time_shares_add_up_and_clip_at_the_end_of_the_run():
    report = compute_kpis(_rides(), drivers=2, duration_s=100.0)

    shares = report["driver_time_share"]
    # en route 10 + 20 s, occupied 30 + 20 s (B clipped at 100), of 200 driver-seconds
    assert shares["en_route"] == pytest.approx(30 / 200)
    assert shares["occupied"] == pytest.approx(50 / 200)
    assert shares["idle"] == pytest.approx(120 / 200)


def test_a_cancel_ends_the_drive_to_the_pick_up():
    events = [
        Event(0.0, kpi.ACCEPTED, trip_id="A", driver=1),
        Event(4.0, kpi.CANCELED, trip_id="A", detail="rider"),
        Event(10.0, kpi.COMPLETED, trip_id="Z"),
    ]

    shares = compute_kpis(events, drivers=1, duration_s=10.0)["driver_time_share"]

    assert shares == {"idle": 0.6, "en_route": 0.4, "occupied": 0.0}


def test_littles_law_on_a_steady_log_holds():
    # Given a trip accepted every 10 s for 1,000 s, 3 s to the pick-up and a
    # 5 s ride each: 0.3 drivers en route, 0.5 occupied on average
    events = []
    for n in range(100):
        t, trip = n * 10.0, f"T{n}"
        events += [
            Event(t, kpi.ACCEPTED, trip_id=trip, driver=n % 7),
            Event(t + 3, kpi.PICKED_UP, trip_id=trip),
            Event(t + 8, kpi.COMPLETED, trip_id=trip),
        ]

    law = compute_kpis(events, drivers=7, duration_s=1000.0)["littles_law"]

    assert law["en_route"]["drivers"] == pytest.approx(0.3)
    assert law["en_route"]["rate_x_mean"] == pytest.approx(0.3)
    assert law["en_route"]["holds"] is True
    assert law["occupied"]["drivers"] == pytest.approx(0.5)
    assert law["occupied"]["holds"] is True


def test_littles_law_flags_a_log_that_lost_its_drop_offs():
    # Rides whose drop-off was never recorded run to the end of the run: the
    # time-averaged count no longer matches rate x mean ride time
    events = []
    for n in range(10):
        t, trip = n * 10.0, f"T{n}"
        events += [
            Event(t, kpi.ACCEPTED, trip_id=trip, driver=n),
            Event(t + 3, kpi.PICKED_UP, trip_id=trip),
        ]
        if n % 2 == 0:
            events.append(Event(t + 8, kpi.COMPLETED, trip_id=trip))

    law = compute_kpis(events, drivers=10, duration_s=100.0)["littles_law"]

    assert law["occupied"]["holds"] is False


def test_an_empty_log_has_no_shares_and_no_verdict():
    report = compute_kpis([])

    assert report["match_rate"] is None and report["p95_pickup_km"] is None
    assert report["driver_time_share"] == {"idle": None, "en_route": None, "occupied": None}
    assert report["littles_law"]["en_route"]["holds"] is None
