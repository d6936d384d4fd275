"""The benchmark's tables, as printed."""

from __future__ import annotations


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, rule, *body])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


DISPATCH_HEADERS = ["drivers", "via", "trips", "p50", "p95", "p99", "max", "nearest", "no offer"]
INGEST_HEADERS = [
    "drivers",
    "target/s",
    "sent/s",
    "delivered",
    "p50",
    "p95",
    "p99",
    "max",
    "web CPU",
]
STREAM_HEADERS = ["drivers", "snapshot bytes", "frames/s", "bytes/s", "largest frame"]
CONNECTION_HEADERS = ["sockets", "RSS MiB", "KiB/socket", "handshakes/s"]
ECHO_HEADERS = ["server", "sockets", "window", "replies/s", "server CPU", "client CPU"]
QUOTE_HEADERS = ["drivers", "pass", "in flight", "requests", "failed", "p50", "p95", "p99",
                 "max", "requests/s"]  # fmt: skip
PATHS = (("all", "latency_ms"), ("ws", "latency_ms_ws"), ("rest", "latency_ms_rest"))


def _dispatch(results: list[dict]) -> list[str]:
    rows = []
    for r in results:
        for path, key in PATHS:
            lat = r[key]
            nearest = f"{r['nearest_driver_offered']}/{r['trips']}"
            no_offer = r["no_offer_within_s"]["count"]
            rows.append([r["drivers_online"], path, lat["count"], lat["p50"], lat["p95"],
                         lat["p99"], lat["max"], nearest, no_offer])  # fmt: skip
    title = "Dispatch latency: request -> trip.offer on the driver's socket (ms)"
    stage_rows = [
        [r["drivers_online"], stage, lat["p50"], lat["p95"], lat["p99"], lat["max"]]
        for r in results
        for stage, lat in r.get("stages_ms", {}).items()
    ]
    stages = ["", "where the time went (server timestamps, ms)"]
    stages.append(table(["drivers", "stage", "p50", "p95", "p99", "max"], stage_rows))
    stream_rows = [
        [r["drivers_online"], s["snapshot_bytes"], s["frames_per_s"], s["bytes_per_s"],
         s["largest_frame_bytes"]]
        for r in results
        if (s := r.get("staff_stream"))
    ]  # fmt: skip
    if stream_rows:
        stages += ["", "the staff console's stream (/ops/stream/) meanwhile, to one browser"]
        stages.append(table(STREAM_HEADERS, stream_rows))
    return [title, table(DISPATCH_HEADERS, rows), *stages]


def _quotes(q: dict) -> list[str]:
    rows = []
    for p in q["passes"]:
        lat = p["latency_ms"]
        what = "GET /api/products/" if p["kind"] == "products" else p["kind"]
        rows.append([q["drivers_online"], what, p["concurrency"], p["requests"],
                     sum(p["failed"].values()), lat["p50"], lat["p95"], lat["p99"], lat["max"],
                     p["requests_per_s"]])  # fmt: skip
    title = (
        f"Quotes: POST /api/quotes/ (every product) with {q['drivers_online']:,} drivers online, "
        f"{q['xl_capable_drivers']:,} xl-capable (ms; serial p50 / products p50 = "
        f"{_cell(q['serial_p50_over_products_p50'])})"
    )
    return [title, table(QUOTE_HEADERS, rows)]


def _ingest(results: list[dict]) -> list[str]:
    rows = []
    for r in results:
        lat = r["latency_ms"]
        delivered = f"{100 * (r['delivered_ratio'] or 0):.1f} %"
        rows.append([r["drivers_on_trips"], r["target_frames_per_s"], r["frames_per_s"],
                     delivered, lat["p50"], lat["p95"], lat["p99"], lat["max"],
                     f"{r['web_cpu_percent']} %"])  # fmt: skip
    title = "Location ingest: update.location -> the rider's driver.location (ms)"
    return [title, table(INGEST_HEADERS, rows)]


def _connections(c: dict) -> list[str]:
    rows = [
        [s["sockets"], s["rss_mib"], s["kib_per_socket"], s["handshakes_per_s"]] for s in c["steps"]
    ]
    title = (
        f"WebSockets held by one web process (baseline RSS {c['baseline_rss_mib']} MiB; "
        f"{c['answered_echo']} answered an echo at the end)"
    )
    return [title, table(CONNECTION_HEADERS, rows)]


def _echo(e: dict) -> list[str]:
    rows = []
    for name in ("bare", "taxi"):
        r = e[name]
        rows.append([name, r["sockets"], r["window"], r["replies_per_s"],
                     f"{r['server_cpu_percent']} %", f"{r['client_cpu_percent']} %"])  # fmt: skip
    title = f"WebSocket echo throughput (taxi / bare = {e['ratio'] * 100:.1f} %)"
    return [title, table(ECHO_HEADERS, rows)]


def _ops(o: dict) -> list[str]:
    rows = [[o["drivers_moving"], o["snapshot_bytes"], o["frames_per_s"], o["bytes_per_s"],
             o["largest_frame_bytes"], f"{o['web_cpu_percent']} %"]]  # fmt: skip
    title = "The staff stream (/ops/stream/) to one browser, every driver moving every second"
    return [title, table([*STREAM_HEADERS, "web CPU"], rows)]


def format_results(results: dict) -> str:
    sections = [
        ("dispatch", _dispatch),
        ("quotes", _quotes),
        ("ingest", _ingest),
        ("ops", _ops),
        ("connections", _connections),
        ("echo", _echo),
        ("matching", _matching),
    ]
    out: list[str] = []
    for name, render in sections:
        if name in results:
            out += ([""] if out else []) + render(results[name])
    return "\n".join(out)


def _matching(result: dict) -> list[str]:
    """One table: the city under each policy, then the batch solver per window size."""
    city, cities = result["city"], result["policies"]
    names = list(cities)

    def row(label: str, pick) -> list[object]:
        values = []
        for name in names:
            try:
                values.append(pick(cities[name]))
            except (KeyError, TypeError):
                values.append(None)
        return [label, *values]

    def pct(value: float | None) -> str | None:
        return None if value is None else f"{value * 100:.1f} %"

    rows = [
        row("trips requested", lambda k: k["trips"]["requested"]),
        row("mean pickup km", lambda k: k["mean_pickup_km"]),
        row("p95 pickup km", lambda k: k["p95_pickup_km"]),
        row("match rate", lambda k: pct(k["match_rate"])),
        row("time to match p50 ms", lambda k: k["time_to_match_ms"]["p50"]),
        row("time to match p95 ms", lambda k: k["time_to_match_ms"]["p95"]),
        row("request -> trip.offer p50 ms", lambda k: k["time_to_offer_ms"]["p50"]),
        row("drivers idle", lambda k: pct(k["driver_time_share"]["idle"])),
        row("drivers en route", lambda k: pct(k["driver_time_share"]["en_route"])),
        row("drivers occupied", lambda k: pct(k["driver_time_share"]["occupied"])),
        row("Little en route (error)", lambda k: pct(k["littles_law"]["en_route"]["error"])),
        row("Little occupied (error)", lambda k: pct(k["littles_law"]["occupied"]["error"])),
    ]
    for solved in result["solver"]:
        label = f"solver {solved['requests']:,} req x {solved['drivers']:,} drv p50 / p99 ms"
        timing = f"{solved['p50_ms']:.2f} / {solved['p99_ms']:.2f}"
        rows.append([label, *(timing if name == "batch" else "" for name in names)])
    for frozen in result.get("static_windows", []):
        label = f"frozen window, {frozen['drivers_per_request']:g} free drivers/request, mean km"
        values = {
            "nearest": f"{frozen['nearest_mean_km']:.3f}",
            "batch": f"{frozen['batch_mean_km']:.3f}",
        }
        rows.append([label, *(values.get(name, "") for name in names)])
    title = (
        f"matching: {city['drivers']} drivers, {city['rate_per_s']} requests/s for "
        f"{city['duration_s']:.0f} s, seed {city['seed']}, window {city['window_ms']} ms"
    )
    return [title, table(["", *names], rows), *_offer_latency(result.get("offer_latency", []))]


OFFER_HEADERS = ["window", "drivers", "trips", "p50", "p95", "p99", "max", "p50 <= window + 30",
                 "no offer"]  # fmt: skip
WINDOW_HEADERS = ["window", "windows", "trips/window", "window p50 / p95", "policy p50 / p95",
                  "window start -> offer reserved p50 / p95"]  # fmt: skip


def _offer_latency(results: list[dict]) -> list[str]:
    """request -> trip.offer under batch with free drivers, per window; what
    the matcher logged of its windows meanwhile; the server's stages."""
    if not results:
        return []

    def pair(values: dict) -> str:
        return f"{_cell(values['p50'])} / {_cell(values['p95'])}"

    rows, window_rows, stage_rows = [], [], []
    for r in results:
        lat, windows = r["latency_ms"], r["windows"]
        met = None if lat["p50"] is None else ("yes" if lat["p50"] <= r["window_ms"] + 30 else "no")
        rows.append([r["window_ms"], r["drivers_online"], lat["count"], lat["p50"], lat["p95"],
                     lat["p99"], lat["max"], met, r["no_offer_within_s"]["count"]])  # fmt: skip
        window_rows.append([r["window_ms"], windows["count"], windows["trips"]["p50"],
                            pair(windows["took_ms"]), pair(windows["policy_ms"]),
                            pair(windows["start_to_offer_ms"])])  # fmt: skip
        stage_rows += [
            [r["window_ms"], stage, s["p50"], s["p95"], s["p99"], s["max"]]
            for stage, s in r["stages_ms"].items()
        ]
    return [
        "",
        "batch: request -> trip.offer on the driver's socket, drivers free everywhere (ms)",
        table(OFFER_HEADERS, rows),
        "",
        "the matcher's windows meanwhile (its log, ms; the policy's part: candidates and solver)",
        table(WINDOW_HEADERS, window_rows),
        "",
        "where the time went (server timestamps, ms)",
        table(["window", "stage", "p50", "p95", "p99", "max"], stage_rows),
    ]
