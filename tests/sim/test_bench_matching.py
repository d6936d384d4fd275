"""The benchmark's matching step, without a stack: the solver timing and the
frozen windows are valid assignments, and the table prints both policies."""

from bench.matching import solver_times, static_windows
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
