"""ETA estimators: the straight line's numbers, and the OSRM client against a
real HTTP server on 127.0.0.1 that answers (or fails) like OSRM's /route/v1."""

import base64
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import override_settings

from pricing import eta
from pricing.eta import Osrm, Route, StraightLine

PICK_UP = (38.8977, -77.0365)
DROP_OFF = (38.8893, -77.0502)
ONE_KM_NORTH = (PICK_UP[0] + math.degrees(1 / eta.EARTH_RADIUS_KM), PICK_UP[1])
ENGINE_ROUTE = {"distance": 2417.3, "duration": 311.8}
SANITY_BOUND_S = 2.0  # far above any budget used here; a hang would blow through it


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    client_address: tuple[str, int]


@dataclass
class Engine:
    """What the stand-in engine answers (`mode`) and what it was asked."""

    url: str = ""
    mode: str = "ok"
    requests: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


ANSWERS = {
    "ok": (200, json.dumps({"code": "Ok", "routes": [ENGINE_ROUTE], "waypoints": []})),
    "status_500": (500, json.dumps({"code": "InternalError"})),
    "no_route": (200, json.dumps({"code": "NoRoute", "message": "Impossible route"})),
    "no_route_400": (400, json.dumps({"code": "NoRoute", "message": "Impossible route"})),
    "empty_routes": (200, json.dumps({"code": "Ok", "routes": []})),
    "garbage": (200, "{this is not json"),
    "not_an_object": (200, "[1, 2, 3]"),
    "negative": (200, json.dumps({"code": "Ok", "routes": [{"distance": -5, "duration": 60}]})),
    "infinite": (200, '{"code": "Ok", "routes": [{"distance": 1e999, "duration": 60}]}'),
    "text_numbers": (200, json.dumps({"code": "Ok", "routes": [{"distance": "9", "duration": 9}]})),
}


def make_handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as OSRM's server offers

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            engine.requests.append(
                Seen(
                    path=parts.path,
                    query=parse_qs(parts.query),
                    authorization=self.headers.get("Authorization"),
                    client_address=self.client_address,
                )
            )
            if engine.mode == "slow":
                engine.release.wait(5)  # an engine that hangs until the test is over
            if engine.mode == "drip":
                self.drip()
                return
            status, body = ANSWERS["ok" if engine.mode == "slow" else engine.mode]
            self.answer(status, body.encode())

        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def drip(self) -> None:
            """Headers at once, then the body a byte at a time: every read is quick,
            the whole answer is not."""
            body = ANSWERS["ok"][1].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                if engine.release.wait(0.1):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def engine() -> Iterator[Engine]:
    state = Engine()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def fallback() -> StraightLine:
    return StraightLine(detour_factor=1.3, speed_kmh=25)


class Clock:
    """A monotonic clock the test moves by hand, so a cool-off passes without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# The straight line.


@override_settings(ETA_PROVIDER="straight_line", ETA_DETOUR_FACTOR=1.3, ETA_SPEED_KMH=25)
def test_the_default_estimator_stretches_a_kilometre_to_1300_m_and_187_s():
    route = eta.current().route(PICK_UP, ONE_KM_NORTH)

    assert route.source == "straight_line"
    assert route.distance_m == pytest.approx(1300)
    assert route.duration_s == pytest.approx(187.2)  # 1.3 km at 25 km/h
    assert eta.straight_line().seconds(1.0) == 187


def test_the_straight_line_is_symmetric_and_zero_on_the_spot(fallback):
    there, back = fallback.route(PICK_UP, DROP_OFF), fallback.route(DROP_OFF, PICK_UP)

    assert there.distance_m == pytest.approx(back.distance_m)
    assert fallback.route(PICK_UP, PICK_UP) == Route(0.0, 0.0, "straight_line")


@pytest.mark.parametrize("point", [(91.0, 0.0), (0.0, 181.0), (math.nan, 0.0), (0.0, math.inf)])
def test_a_position_off_the_globe_is_refused(fallback, point):
    with pytest.raises(ValueError):
        fallback.route(PICK_UP, point)


@pytest.mark.parametrize("distance_km", [-0.1, math.nan, math.inf])
def test_seconds_refuses_an_impossible_distance(fallback, distance_km):
    with pytest.raises(ValueError):
        fallback.seconds(distance_km)


# The OSRM client.


def test_osrm_answers_with_the_engines_numbers(engine, fallback):
    osrm = Osrm(engine.url, 1.0, fallback)

    route = osrm.route(PICK_UP, DROP_OFF)

    assert route == Route(ENGINE_ROUTE["distance"], ENGINE_ROUTE["duration"], "osrm")
    [seen] = engine.requests
    assert seen.path == "/route/v1/driving/-77.036500,38.897700;-77.050200,38.889300"
    assert seen.query == {"overview": ["false"], "alternatives": ["false"], "steps": ["false"]}


def test_osrm_keeps_its_connection_alive_between_calls(engine, fallback):
    osrm = Osrm(engine.url, 1.0, fallback)

    osrm.route(PICK_UP, DROP_OFF)
    osrm.route(DROP_OFF, PICK_UP)

    first, second = engine.requests
    assert first.client_address == second.client_address


def test_a_base_url_with_a_path_keeps_it(engine, fallback):
    osrm = Osrm(f"{engine.url}/osrm", 1.0, fallback, profile="bike")

    osrm.route(PICK_UP, DROP_OFF)

    assert engine.requests[0].path.startswith("/osrm/route/v1/bike/")


@pytest.mark.parametrize("mode", ["slow", "drip"])
def test_an_engine_slower_than_the_budget_gives_the_fallback(engine, fallback, mode, caplog):
    engine.mode = mode
    osrm = Osrm(engine.url, 0.2, fallback)

    started = time.monotonic()
    route = osrm.route(PICK_UP, DROP_OFF)
    elapsed = time.monotonic() - started

    assert route == fallback.route(PICK_UP, DROP_OFF)
    assert elapsed < SANITY_BOUND_S
    assert [r.reason for r in caplog.records if r.msg == "eta.engine_failed"] == ["timeout"]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("status_500", "http_status"),
        ("no_route", "engine_code"),
        ("no_route_400", "http_status"),
        ("empty_routes", "no_route"),
        ("garbage", "malformed"),
        ("not_an_object", "malformed"),
        ("negative", "malformed"),
        ("infinite", "malformed"),
        ("text_numbers", "malformed"),
    ],
)
def test_a_failing_engine_gives_the_fallback_and_says_why(engine, fallback, mode, reason, caplog):
    engine.mode = mode
    osrm = Osrm(engine.url, 1.0, fallback)

    route = osrm.route(PICK_UP, DROP_OFF)

    assert route == fallback.route(PICK_UP, DROP_OFF)
    assert len(engine.requests) == 1
    [record] = [r for r in caplog.records if r.msg == "eta.engine_failed"]
    assert record.levelno == logging.WARNING
    assert record.reason == reason


def test_an_unreachable_engine_gives_the_fallback(fallback, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    osrm = Osrm(f"http://127.0.0.1:{closed_port}", 1.0, fallback)

    started = time.monotonic()
    route = osrm.route(PICK_UP, DROP_OFF)

    assert route.source == "straight_line"
    assert time.monotonic() - started < SANITY_BOUND_S
    [record] = [r for r in caplog.records if r.msg == "eta.engine_failed"]
    assert record.reason == "unreachable"


def test_after_a_failure_the_engine_rests_for_the_cool_off(engine, fallback):
    clock = Clock()
    osrm = Osrm(engine.url, 1.0, fallback, cooloff_s=10, clock=clock)
    engine.mode = "status_500"
    assert osrm.route(PICK_UP, DROP_OFF).source == "straight_line"
    engine.mode = "ok"

    clock.now += 9.9
    during = osrm.route(PICK_UP, DROP_OFF)

    assert during.source == "straight_line"
    assert len(engine.requests) == 1  # the engine was not asked

    clock.now += 0.1
    after = [osrm.route(PICK_UP, DROP_OFF), osrm.route(PICK_UP, DROP_OFF)]

    assert [route.source for route in after] == ["osrm", "osrm"]
    assert len(engine.requests) == 3


def test_a_failed_retry_after_the_cool_off_starts_another(engine, fallback):
    clock = Clock()
    osrm = Osrm(engine.url, 1.0, fallback, cooloff_s=10, clock=clock)
    engine.mode = "status_500"
    osrm.route(PICK_UP, DROP_OFF)

    clock.now += 10
    osrm.route(PICK_UP, DROP_OFF)  # the retry, failing again
    clock.now += 5
    route = osrm.route(PICK_UP, DROP_OFF)

    assert route.source == "straight_line"
    assert len(engine.requests) == 2


def test_credentials_in_the_url_reach_the_engine_but_never_a_log(engine, fallback, caplog):
    caplog.set_level(logging.DEBUG)
    url = engine.url.replace("http://", "http://user:secret@")
    osrm = Osrm(url, 1.0, fallback, cooloff_s=0)

    osrm.route(PICK_UP, DROP_OFF)
    engine.mode = "status_500"
    osrm.route(PICK_UP, DROP_OFF)

    expected = "Basic " + base64.b64encode(b"user:secret").decode()
    assert [seen.authorization for seen in engine.requests] == [expected, expected]
    assert caplog.records, "the failure was logged"
    for record in caplog.records:
        assert "secret" not in record.getMessage()
        assert "secret" not in repr(record.__dict__)
        assert expected.split()[1] not in repr(record.__dict__)
    [failure] = [r for r in caplog.records if r.msg == "eta.engine_failed"]
    assert failure.engine == engine.url
    assert "overview" not in repr(failure.__dict__)  # nor the query, with its positions


def test_current_picks_osrm_when_configured(engine):
    with override_settings(ETA_PROVIDER="osrm", OSRM_URL=engine.url, ETA_TIMEOUT_MS=250):
        estimator = eta.current()
        route = estimator.route(PICK_UP, DROP_OFF)

    assert isinstance(estimator, Osrm)
    assert estimator.timeout_s == pytest.approx(0.25)
    assert route.source == "osrm"


@override_settings(ETA_PROVIDER="straight_line")
def test_current_is_built_once_per_configuration():
    first = eta.current()

    with override_settings(ETA_SPEED_KMH=50):
        faster = eta.current()

    assert isinstance(first, StraightLine)
    assert eta.current() is first
    assert faster is not first
    assert faster.speed_kmh == 50
    assert eta.straight_line() is eta.straight_line()
