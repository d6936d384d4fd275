"""The benchmark's matching step, without a stack: the solver timing and the
frozen windows are valid assignments, the table prints both policies, and the
offer latency under batch is printed beside its window with what the
matcher's log said."""

import json

from bench import matching
from bench.dispatch_latency import TripOutcome, summarise
from bench.matching import matcher_windows, solver_times, static_windows
from bench.report import format_results
from sim import kpi
from sim.kpi import Event, compute_kpis


def test_the_solver_timing_and_the_frozen_windows_run_small():
    timed = solver_times((20,), windows=2)
    frozen = static_windows((1.0, 10.0), requests=20, windows=1)

    assert [row["requests"] for row in timed] == [20]
    assert 0 < timed[0]["p50_ms"] <= timed[0]["p99_ms"]
    dense = frozen[-1]
    # With plenty of drivers everyone is matched, and batch's optimum is never
    # worse than nearest-first over the same candidates
    assert dense["batch_matched"] == dense["nearest_matched"] == 20
    assert dense["batch_mean_km"] <= dense["nearest_mean_km"] + 1e-3
    assert all(row["batch_matched"] <= 20 for row in frozen)


def test_the_solver_is_timed_at_the_settings_defaults(settings):
    # The benchmark's process has no Django settings: it names the defaults
    assert matching.BATCH.k == settings.DISPATCH_BATCH_CANDIDATES == 8
    assert matching.BATCH.ceiling_km == settings.DISPATCH_BATCH_MAX_PICKUP_KM == 5.0
    assert matching.BATCH.fair_windows == settings.DISPATCH_BATCH_FAIR_WINDOWS == 2
    assert matching.BATCH.first_ring_km == settings.DISPATCH_RADII_KM[0] == 2.0


def test_the_table_shows_each_policy_side_by_side():
    log = [
        Event(0.0, kpi.REQUESTED, request=0),
        Event(0.1, kpi.CREATED, request=0, trip_id="A"),
        Event(0.5, kpi.OFFER, trip_id="A", driver=1, value=0.7),
        Event(1.0, kpi.ACCEPTED, trip_id="A", driver=1, value=0.7),
        Event(1.1, kpi.MATCHED, request=0, trip_id="A"),
    ]
    kpis = compute_kpis(log, drivers=2)
    result = {
        "city": {"drivers": 2, "rate_per_s": 1.0, "duration_s": 2.0, "seed": 1, "window_ms": 2000},
        "policies": {"nearest": kpis, "batch": kpis},
        "solver": solver_times((20,), windows=1),
        "static_windows": static_windows((3.0,), requests=10, windows=1),
    }

    printed = format_results({"matching": result})

    assert "nearest" in printed and "batch" in printed
    assert "mean pickup km" in printed and "p95 pickup km" in printed
    assert "solver 20 req x 40 drv" in printed
    assert "frozen window, 3 free drivers/request" in printed


def write_matcher_log(path):
    def line(event: str, **fields) -> str:
        return json.dumps({"level": "info", "logger": "dispatch.loop", "event": event, **fields})

    lines = [
        line("matcher.started", area="all"),
        line("dispatch.window", waiting=0, offered=0, policy_ms=0.0, took_ms=0.5),
        line("dispatch.window", waiting=2, offered=2, policy_ms=3.0, took_ms=40.0),
        line("dispatch.offered", dispatch_ms=12.0),
        line("dispatch.offered", dispatch_ms=30.0),
        "not a structured line",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_matchers_log_gives_its_windows_and_each_offers_time_from_its_window(tmp_path):
    read = matcher_windows(write_matcher_log(tmp_path / "matcher1.log"))

    # The window with no trips is left out; each offer counts once
    assert read["count"] == 1
    assert read["trips"] == {"p50": 2.0, "p95": 2.0}
    assert read["took_ms"] == {"p50": 40.0, "p95": 40.0}
    assert read["policy_ms"]["p50"] == 3.0
    assert read["start_to_offer_ms"] == {"p50": 21.0, "p95": 29.1}


def test_the_offer_latency_under_batch_is_printed_beside_its_window(tmp_path):
    outcomes = [
        TripOutcome(via="ws", latency_s=0.9, nearest=True, stages_s=(0.01, 0.88, 0.01)),
        TripOutcome(via="rest", latency_s=1.3, nearest=True, stages_s=(0.01, 1.28, 0.01)),
        TripOutcome(via="ws", latency_s=None, nearest=False),
    ]
    offer = {
        "window_ms": 2000,
        **summarise(200, outcomes, 0),
        "windows": matcher_windows(write_matcher_log(tmp_path / "matcher1.log")),
    }
    result = {
        "city": {"drivers": 2, "rate_per_s": 1.0, "duration_s": 2.0, "seed": 1, "window_ms": 2000},
        "policies": {},
        "solver": [],
        "offer_latency": [offer],
    }

    printed = format_results({"matching": result})

    assert "request -> trip.offer on the driver's socket, drivers free everywhere" in printed
    row = next(line for line in printed.splitlines() if line.strip().startswith("2,000      200"))
    # p50 1,100 ms against the target 2,030 ms; one trip had no offer
    assert row.split()[3:] == ["1,100.0", "1,280.0", "1,296.0", "1,300.0", "yes", "1"]
    assert "window start -> offer reserved" in printed
    assert "21.0 / 29.1" in printed
