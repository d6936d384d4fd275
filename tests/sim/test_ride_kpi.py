"""The whole ride's KPIs (`sim.ride_kpi`) on a synthetic event log, and what
the rest of the report makes of the same events."""

import pytest

from sim import kpi
from sim.kpi import Event, compute_kpis, compute_pricing_kpis
from sim.report import format_ride, ride_hints
from sim.ride_kpi import compute_ride_kpis
from sim.scenario import SimConfig


def _log() -> list[Event]:
    """Six trips. A: picked up and completed, rated 5 by its rider and 4 by
    its driver. B: its rider never came (a no-show; the server said too early
    once). C: driver 1 gave it up, driver 2 took it, completed. D: given up
    twice, then expired. E: booked for t=30, its driver there at 28 (on
    time), completed. F: booked for t=40, driver there at 49 (late). G:
    booked for t=50, expired. H: booked, refused by the server."""
    e = Event
    return [
        e(0.0, kpi.REQUESTED, request=0),
        e(0.1, kpi.CREATED, request=0, trip_id="A"),
        e(1.0, kpi.MATCHED, request=0, trip_id="A"),
        e(3.0, kpi.ARRIVED, trip_id="A"),
        e(4.0, kpi.PICKED_UP, trip_id="A"),
        e(9.0, kpi.COMPLETED, trip_id="A"),
        e(9.2, kpi.RATED, trip_id="A", value=5.0, detail="rider"),
        e(9.3, kpi.RATED, trip_id="A", driver=1, value=4.0, detail="driver"),
        e(1.0, kpi.REQUESTED, request=1),
        e(1.1, kpi.CREATED, request=1, trip_id="B"),
        e(2.0, kpi.MATCHED, request=1, trip_id="B"),
        e(4.0, kpi.ARRIVED, trip_id="B"),
        e(9.0, kpi.NO_SHOW_TOO_EARLY, trip_id="B", driver=3),
        e(10.0, kpi.NO_SHOW, trip_id="B", driver=3),
        e(10.0, kpi.CANCELED, trip_id="B", detail="canceled_by_driver"),
        e(2.0, kpi.REQUESTED, request=2),
        e(2.1, kpi.CREATED, request=2, trip_id="C"),
        e(3.0, kpi.MATCHED, request=2, trip_id="C"),
        e(4.0, kpi.GAVE_UP, trip_id="C", driver=1, detail="vehicle_issue"),
        e(4.0, kpi.REDISPATCHED, request=2, trip_id="C", detail="driver_canceled"),
        e(5.0, kpi.MATCHED, request=2, trip_id="C"),
        e(7.0, kpi.ARRIVED, trip_id="C"),
        e(8.0, kpi.PICKED_UP, trip_id="C"),
        e(12.0, kpi.COMPLETED, trip_id="C"),
        e(12.1, kpi.RATING_FAILED, trip_id="C", detail="rider:already_rated"),
        e(3.0, kpi.REQUESTED, request=3),
        e(3.1, kpi.CREATED, request=3, trip_id="D"),
        e(4.0, kpi.MATCHED, request=3, trip_id="D"),
        e(5.0, kpi.GAVE_UP, trip_id="D", driver=4, detail="other"),
        e(5.0, kpi.REDISPATCHED, request=3, trip_id="D", detail="driver_canceled"),
        e(6.0, kpi.MATCHED, request=3, trip_id="D"),
        e(7.0, kpi.GAVE_UP, trip_id="D", driver=5, detail="vehicle_issue"),
        e(7.0, kpi.REDISPATCHED, request=3, trip_id="D", detail="driver_canceled"),
        e(20.0, kpi.EXPIRED, trip_id="D", detail="no_drivers"),
        e(5.0, kpi.REQUESTED, request=4),
        e(5.0, kpi.SCHEDULED, request=4, value=30.0),
        e(5.1, kpi.CREATED, request=4, trip_id="E"),
        e(22.0, kpi.MATCHED, request=4, trip_id="E"),
        e(28.0, kpi.ARRIVED, trip_id="E"),
        e(29.0, kpi.PICKED_UP, trip_id="E"),
        e(35.0, kpi.COMPLETED, trip_id="E"),
        e(6.0, kpi.REQUESTED, request=5),
        e(6.0, kpi.SCHEDULED, request=5, value=40.0),
        e(6.1, kpi.CREATED, request=5, trip_id="F"),
        e(38.0, kpi.MATCHED, request=5, trip_id="F"),
        e(49.0, kpi.ARRIVED, trip_id="F"),
        e(7.0, kpi.REQUESTED, request=6),
        e(7.0, kpi.SCHEDULED, request=6, value=50.0),
        e(7.1, kpi.CREATED, request=6, trip_id="G"),
        e(52.0, kpi.EXPIRED, trip_id="G", detail="no_drivers"),
        e(8.0, kpi.REQUESTED, request=7),
        e(8.0, kpi.SCHEDULED, request=7, value=60.0),
        e(8.1, kpi.REQUEST_FAILED, request=7, detail="invalid"),
    ]


def test_no_shows_are_a_share_of_the_pick_ups_that_resolved():
    report = compute_ride_kpis(_log())

    # A, C and E got in; B never came; F's driver is still waiting (unresolved)
    assert report["no_shows"] == {"count": 1, "pick_ups_resolved": 4, "too_early": 1}
    assert report["no_show_rate"] == pytest.approx(1 / 4)


def test_drivers_giving_up_and_the_trips_back_in_dispatch_are_counted():
    report = compute_ride_kpis(_log())

    assert report["driver_cancels"] == {
        "count": 3,
        "by_reason": {"other": 1, "vehicle_issue": 2},
    }
    back = report["redispatches"]
    assert back["count"] == 3 and back["trips"] == 2
    assert back["share"] == round(2 / 6, 4)  # of the six trips ever matched
    # C was matched again and completed; D's last return found nobody
    assert back["rematched"] == 1 and back["completed"] == 1
    assert back["expired"] == 1 and back["canceled"] == 0 and back["open_at_end"] == 0


def test_ratings_are_counted_each_way():
    ratings = compute_ride_kpis(_log())["ratings"]

    assert ratings["submitted"] == 2
    assert ratings["rider_to_driver"] == {"count": 1, "mean_stars": 5.0}
    assert ratings["driver_to_rider"] == {"count": 1, "mean_stars": 4.0}
    assert ratings["failed"] == 1 and ratings["failed_by_code"] == {"rider:already_rated": 1}


def test_rides_booked_ahead_are_on_time_late_expired_or_refused():
    scheduled = compute_ride_kpis(_log(), on_time_tolerance_s=5.0)["scheduled"]

    assert scheduled["asked"] == 4 and scheduled["count"] == 3 and scheduled["refused"] == 1
    assert scheduled["on_time"] == 1  # E: 2 s early
    assert scheduled["late"] == 1  # F: 9 s late, beyond 5 s
    assert scheduled["late_not_reached"] == 0
    assert scheduled["expired"] == 1 and scheduled["unserved"] == 0
    assert scheduled["arrival_vs_time_s"] == {"mean": 3.5, "max": 9.0}
    # with a wider tolerance F is on time too
    assert compute_ride_kpis(_log(), on_time_tolerance_s=10.0)["scheduled"]["on_time"] == 2


def test_a_booked_ride_nobody_reached_in_time_is_late_and_one_that_ended_earlier_unserved():
    # A: booked for 20, nobody came, still waiting at 40, when the run ended.
    # B: booked for 30, canceled by its rider at 25. C: booked for 38, open at 40.
    e = Event
    log = [
        e(0.0, kpi.SCHEDULED, request=0, value=20.0),
        e(0.1, kpi.CREATED, request=0, trip_id="A"),
        e(1.0, kpi.SCHEDULED, request=1, value=30.0),
        e(1.1, kpi.CREATED, request=1, trip_id="B"),
        e(25.0, kpi.CANCELED, trip_id="B", detail="canceled_by_rider"),
        e(2.0, kpi.SCHEDULED, request=2, value=38.0),
        e(2.1, kpi.CREATED, request=2, trip_id="C"),
        e(40.0, kpi.OPEN_AT_END, trip_id="A", detail="STARTED"),
        e(40.0, kpi.OPEN_AT_END, trip_id="C", detail="REQUESTED"),
    ]

    scheduled = compute_ride_kpis(log, on_time_tolerance_s=5.0)["scheduled"]

    assert scheduled["late"] == scheduled["late_not_reached"] == 1
    assert scheduled["unserved"] == 2 and scheduled["on_time"] == 0
    assert scheduled["arrival_vs_time_s"] == {"mean": None, "max": None}


def test_the_driver_who_served_a_booked_ride_is_the_one_who_counts():
    # The first driver got there early and gave it up; the second came late.
    e = Event
    log = [
        e(0.0, kpi.SCHEDULED, request=0, value=20.0),
        e(0.1, kpi.CREATED, request=0, trip_id="A"),
        e(15.0, kpi.ARRIVED, trip_id="A"),
        e(16.0, kpi.REDISPATCHED, request=0, trip_id="A"),
        e(30.0, kpi.ARRIVED, trip_id="A"),
    ]

    scheduled = compute_ride_kpis(log, on_time_tolerance_s=5.0)["scheduled"]

    assert scheduled["on_time"] == 0 and scheduled["late"] == 1
    assert scheduled["arrival_vs_time_s"]["max"] == 10.0


def test_a_ride_booked_ahead_waits_for_its_time_not_for_a_driver():
    report = compute_kpis(_log())

    # E and F matched 17 and 32 s after they were booked: not waits for a driver
    assert report["time_to_match_ms"]["count"] == 4  # A, B, C, D
    assert report["time_to_match_ms"]["p99"] < 1100
    assert report["time_to_offer_ms"]["count"] == 0  # no offers in this log


def test_the_eta_error_leaves_out_trips_whose_driver_gave_them_up():
    e = Event
    log = [
        e(1.0, kpi.PICKUP_ETA, trip_id="A", value=100.0),
        e(5.0, kpi.AT_PICK_UP, trip_id="A", driver=1, value=90.0),
        e(1.0, kpi.PICKUP_ETA, trip_id="C", value=100.0),  # driver 1's estimate
        e(4.0, kpi.REDISPATCHED, trip_id="C"),
        e(5.0, kpi.PICKUP_ETA, trip_id="C", value=300.0),
        e(9.0, kpi.AT_PICK_UP, trip_id="C", driver=2, value=290.0),
    ]

    eta = compute_pricing_kpis(log)["pickup_eta_error_s"]

    assert eta["count"] == 1 and eta["mean_signed"] == 10.0


def test_a_driver_giving_a_trip_up_ends_its_own_drive_only():
    # Driver 1 accepts A at 0 and gives it up at 2; driver 2 accepts it at 5,
    # picks the rider up at 8 and drops them off at 10.
    e = Event
    log = [
        e(0.0, kpi.ACCEPTED, trip_id="A", driver=1),
        e(2.0, kpi.GAVE_UP, trip_id="A", driver=1),
        e(5.0, kpi.ACCEPTED, trip_id="A", driver=2),
        e(8.0, kpi.PICKED_UP, trip_id="A"),
        e(10.0, kpi.COMPLETED, trip_id="A"),
    ]

    report = compute_kpis(log, drivers=2, duration_s=10.0)

    # en route 2 + 3 s, occupied 2 s, of 20 driver-seconds: nobody drove to
    # the pick-up between the give-up and the next accept
    assert report["driver_time_share"] == {"idle": 0.65, "en_route": 0.25, "occupied": 0.1}
    law = report["littles_law"]["en_route"]
    assert law["rate_per_s"] == pytest.approx(0.2) and law["mean_s"] == pytest.approx(2.5)
    assert law["holds"] is True


def test_a_drive_still_under_way_at_the_end_is_not_a_finished_one():
    e = Event
    log = [
        e(0.0, kpi.ACCEPTED, trip_id="A", driver=1),
        e(2.0, kpi.PICKED_UP, trip_id="A"),
        e(4.0, kpi.ACCEPTED, trip_id="B", driver=2),
    ]

    law = compute_kpis(log, drivers=2, duration_s=10.0)["littles_law"]["en_route"]

    # B's drive counts in the average number en route (6 s) but not in the mean drive
    assert law["drivers"] == pytest.approx(0.8) and law["mean_s"] == pytest.approx(2.0)
    assert law["holds"] is False


def test_an_empty_log_has_no_ride_kpis_rather_than_failing():
    report = compute_ride_kpis([])

    assert report["no_show_rate"] is None
    assert report["redispatches"]["share"] is None
    assert report["ratings"]["rider_to_driver"]["mean_stars"] is None
    assert report["scheduled"]["arrival_vs_time_s"] == {"mean": None, "max": None}


def test_the_report_shows_the_whole_ride_and_says_what_the_server_kept_from_working():
    kpis = compute_ride_kpis(_log(), on_time_tolerance_s=5.0)

    printed = format_ride(kpis)
    hints = ride_hints(kpis, SimConfig(no_show_wait_s=5.0, schedule_ahead_s=25.0))

    assert "1 of 4 pick-ups (25.0 %)" in printed
    assert "2 (33.3 % of matched), 3 returns" in printed
    assert "1, mean 5.00 stars" in printed
    assert "on time (<= 5 s late) / late / expired / unserved" in printed
    assert "1 / 1 / 1 / 0" in printed
    assert any("SCHEDULE_MIN_AHEAD_S" in hint for hint in hints)
    assert any("NO_SHOW_WAIT_S=5" in hint for hint in hints)
    assert ride_hints(compute_ride_kpis([]), SimConfig()) == []
