"""What the simulator prints: a live progress line and the final KPI report."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import TextIO

from sim import kpi
from sim.scenario import SimConfig

TTY_EVERY_S = 1.0
LOG_EVERY_S = 5.0


def progress_line(recorder: kpi.Recorder, *, duration_s: float, online: int, waiting: int) -> str:
    kinds: dict[str, int] = {}
    for event in recorder.events:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    return (
        f"[{recorder.now():5.0f}s/{duration_s:.0f}s] drivers online {online} | "
        f"requests {kinds.get(kpi.REQUESTED, 0)} ({waiting} waiting) | "
        f"matched {kinds.get(kpi.MATCHED, 0)} expired {kinds.get(kpi.EXPIRED, 0)} "
        f"canceled {kinds.get(kpi.CANCELED, 0)} completed {kinds.get(kpi.COMPLETED, 0)} | "
        f"no-shows {kinds.get(kpi.NO_SHOW, 0)} re-dispatched {kinds.get(kpi.REDISPATCHED, 0)} | "
        f"offers {kinds.get(kpi.OFFER, 0)} | errors {kinds.get(kpi.ERROR, 0)}"
    )


async def show_progress(
    render: Callable[[], str], stop: asyncio.Event, out: TextIO = sys.stderr
) -> None:
    """One line rewritten in place on a terminal; a line every few seconds otherwise."""
    tty = out.isatty()
    every = TTY_EVERY_S if tty else LOG_EVERY_S
    width = 0
    while not stop.is_set():
        line = render()
        if tty:
            out.write("\r" + line.ljust(width))
            width = len(line)
        else:
            out.write(line + "\n")
        out.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    if tty:
        out.write("\r" + render().ljust(width) + "\n")
        out.flush()


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}{unit}" if abs(value) < 1 else f"{value:,.1f}{unit}"
    return f"{value}{unit}"


STATES = ("idle", "en_route", "occupied")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _little(law: dict) -> str:
    if law["error"] is None:
        return "-"
    verdict = "holds" if law["holds"] else "off"
    return (
        f"{law['drivers']:.2f} drivers vs rate x mean {law['rate_x_mean']:.2f} "
        f"({law['error'] * 100:.1f} %, {verdict})"
    )


def format_report(kpis: dict) -> str:
    trips, wait, offers = kpis["trips"], kpis["time_to_match_ms"], kpis["offers"]
    requests = kpis["requests"]
    rate = kpis["acceptance_rate"]
    rows = [
        ("requests sent", requests["sent"]),
        ("  refused by the server", requests["refused"]),
        ("  skipped (every rider busy)", requests["skipped_no_free_rider"]),
        ("trips requested (created)", trips["requested"]),
        ("  matched", trips["matched"]),
        ("  expired", trips["expired"]),
        ("  canceled", trips["canceled"]),
        ("  completed", trips["completed"]),
        ("  still open at the end", trips["open_at_end"]),
        ("time to match p50", _fmt(wait["p50"], " ms")),
        ("time to match p95", _fmt(wait["p95"], " ms")),
        ("time to match p99", _fmt(wait["p99"], " ms")),
        ("offers received", offers["received"]),
        (
            "offers per trip (mean / max)",
            f"{_fmt(offers['per_trip_mean'])} / {_fmt(offers['per_trip_max'])}",
        ),
        ("time to offer p50", _fmt(kpis["time_to_offer_ms"]["p50"], " ms")),
        ("acceptance rate", "-" if rate is None else f"{rate * 100:.1f} %"),
        ("match rate", _percent(kpis["match_rate"])),
        ("mean pickup distance", _fmt(kpis["mean_pickup_km"], " km")),
        ("p95 pickup distance", _fmt(kpis["p95_pickup_km"], " km")),
        (
            "drivers' time idle / en route / occupied",
            " / ".join(_percent(kpis["driver_time_share"][k]) for k in STATES),
        ),
        *(
            (f"Little's law, {state.replace('_', ' ')}", _little(kpis["littles_law"][state]))
            for state in ("en_route", "occupied")
        ),
        ("drivers' answers", ", ".join(f"{k} {v}" for k, v in offers["decided"].items()) or "-"),
        ("offers revoked", ", ".join(f"{k} {v}" for k, v in offers["revoked"].items()) or "-"),
        ("errors", kpis["errors"]),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["", "KPI report", "=" * (width + 16)]
    lines += [f"{label.ljust(width)}  {value}" for label, value in rows]
    if kpis["requests"]["refused_by_code"]:
        lines.append(f"refusals by code: {kpis['requests']['refused_by_code']}")
    return "\n".join(lines)


def format_pricing(kpis: dict) -> str:
    """Quotes, surge, fares and the pick-up ETA's error (`kpi.compute_pricing_kpis`)."""
    quotes, surge = kpis["quotes"], kpis["surge"]
    fare, eta = kpis["fare"], kpis["pickup_eta_error_s"]
    share = surge["share_above_1"]
    fares = ", ".join(
        f"{amount} {currency}" for currency, amount in fare["mean_by_currency"].items()
    )
    rows = [
        ("quotes made", f"{quotes['made']} of {quotes['asked']} asked"),
        ("quote latency p50 / p95", f"{_fmt(quotes['latency_ms']['p50'])} / "
         f"{_fmt(quotes['latency_ms']['p95'], ' ms')}"),
        ("surge mean / max", f"{_fmt(surge['mean'])} / {_fmt(surge['max'])}"),
        ("quotes above 1.0x", "-" if share is None else f"{share * 100:.1f} %"),
        ("declined for surge", surge["declined_for_surge"]),
        ("mean fare (completed)", f"{fares or '-'} over {fare['completed_with_fare']} trips"),
        ("pick-up ETA error, mean |e|", _fmt(eta["mean_abs"], " s")),
        ("pick-up ETA error, mean (ETA - drive)", _fmt(eta["mean_signed"], " s")),
        ("pick-up ETA / drive, mean", f"{_fmt(eta['mean_eta'])} / {_fmt(eta['mean_drive'], ' s')}"
         f" over {eta['count']} trips"),
    ]  # fmt: skip
    return _section("Prices and arrival times", rows, "quotes", quotes["failed_by_code"])


def _section(title: str, rows: list, refused: str, refused_by_code: dict) -> str:
    """A titled block of label/value rows, then what the server refused, by code."""
    width = max(len(label) for label, _ in rows)
    lines = ["", title, "=" * (width + 16)]
    lines += [f"{label.ljust(width)}  {value}" for label, value in rows]
    if refused_by_code:
        lines.append(f"{refused} refused by code: {refused_by_code}")
    return "\n".join(lines)


def _stars(side: dict) -> str:
    mean = side["mean_stars"]
    return f"{side['count']}" + ("" if mean is None else f", mean {mean:.2f} stars")


def format_ride(kpis: dict) -> str:
    """No-shows, drivers' cancels and re-dispatches, ratings and rides booked
    ahead (`sim.ride_kpi.compute_ride_kpis`)."""
    no_shows, cancels = kpis["no_shows"], kpis["driver_cancels"]
    back, ratings, booked = kpis["redispatches"], kpis["ratings"], kpis["scheduled"]
    reasons = ", ".join(f"{code} {n}" for code, n in cancels["by_reason"].items())
    arrival = booked["arrival_vs_time_s"]
    rows = [
        ("no-shows", f"{no_shows['count']} of {no_shows['pick_ups_resolved']} pick-ups "
         f"({_percent(kpis['no_show_rate'])})"),
        ("drivers' cancels after accepting", f"{cancels['count']}"
         + (f" ({reasons})" if reasons else "")),
        ("trips back to dispatch", f"{back['trips']} ({_percent(back['share'])} of matched), "
         f"{back['count']} returns"),
        ("  then matched / completed / expired", f"{back['rematched']} / {back['completed']} / "
         f"{back['expired']}"),
        ("ratings, rider -> driver", _stars(ratings["rider_to_driver"])),
        ("ratings, driver -> rider", _stars(ratings["driver_to_rider"])),
        ("ratings refused", ratings["failed"]),
        ("rides booked ahead", f"{booked['count']} of {booked['asked']} asked "
         f"({booked['refused']} refused)"),
        (f"  on time (<= {booked['on_time_tolerance_s']:g} s late) / late / expired / unserved",
         f"{booked['on_time']} / {booked['late']} / {booked['expired']} / {booked['unserved']}"
         + (f" ({booked['late_not_reached']} late: nobody came in time)"
            if booked["late_not_reached"] else "")),
        ("  driver there vs booked time, mean / max",
         f"{_fmt(arrival['mean'])} / {_fmt(arrival['max'], ' s')}"),
    ]  # fmt: skip
    return _section("The whole ride", rows, "ratings", ratings["failed_by_code"])


def ride_hints(kpis: dict, config: SimConfig) -> list[str]:
    """What to change when the server's settings kept the ride's knobs from working."""
    hints = []
    booked = kpis["scheduled"]
    if booked["refused"]:
        hints.append(
            f"the server refused {booked['refused']} of {booked['asked']} rides booked "
            f"{config.schedule_ahead_s:g} s ahead: start it with SCHEDULE_MIN_AHEAD_S below "
            "that and a short SCHEDULE_DISPATCH_LEAD_S (`make demo` does), or run with "
            "--scheduled-share 0"
        )
    if kpis["no_shows"]["too_early"]:
        hints.append(
            f"the server's NO_SHOW_WAIT_S is longer than --no-show-wait "
            f"({config.no_show_wait_s:g} s): {kpis['no_shows']['too_early']} drivers waited "
            f"on for a no-show; start it with NO_SHOW_WAIT_S={config.no_show_wait_s:g} "
            "(`make demo` does)"
        )
    return hints
