"""Times of arrival: how far and how long a drive from one point to another is.

Quotes price a trip's distance and duration, offers show a driver's pick-up
time, and `driver.location` carries the rider's ETA (PROTOCOL.md, "Times of
arrival"). The default estimator needs nothing outside the process: the
great-circle distance times a detour factor, over an average speed. A
routing engine (OSRM's HTTP API) may replace it, but the engine sits on the
request path of quotes and offers, so it gets a hard time budget
(ETA_TIMEOUT_MS), any failure falls back to the straight line, and after a
failure the engine is left alone for a cool-off, so a dead engine does not
cost every request its full timeout.

Estimators are synchronous (they may block up to the budget); async code
calls them through `sync_to_async`.
"""

import atexit
import functools
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6372.7976  # the radius Redis' GEO commands use, so distances agree with GEOSEARCH
ETA_ENGINE_COOLOFF_S = 10.0
# Requests to the engine run on a few shared threads, so the caller can stop
# waiting at its budget even when the engine drips its answer byte by byte.
ENGINE_THREADS = 8
# OSRM's answer without geometry or steps is a few hundred bytes.
MAX_ANSWER_BYTES = 64 * 1024

Point = tuple[float, float]  # (lat, lng)
_PROFILE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Route:
    """A drive's length in metres and duration in seconds (floats; callers round)."""

    distance_m: float
    duration_s: float
    source: str  # "straight_line" or "osrm"


class Estimator(Protocol):
    def route(self, origin: Point, destination: Point) -> Route:
        """The drive from `origin` to `destination`, both (lat, lng)."""
        ...


def great_circle_km(origin: Point, destination: Point) -> float:
    """Haversine distance, as Redis computes it for GEODIST and GEOSEARCH."""
    (lat1, lng1), (lat2, lng2) = _checked(origin), _checked(destination)
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lng2 - lng1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class StraightLine:
    """The default: the great circle stretched by a detour factor, at an average speed."""

    source = "straight_line"

    def __init__(self, detour_factor: float, speed_kmh: float) -> None:
        if not (math.isfinite(detour_factor) and detour_factor >= 1):
            raise ValueError(f"detour factor must be at least 1, got {detour_factor!r}")
        if not (math.isfinite(speed_kmh) and speed_kmh > 0):
            raise ValueError(f"speed must be a positive number of km/h, got {speed_kmh!r}")
        self.detour_factor = float(detour_factor)
        self.speed_kmh = float(speed_kmh)

    def route(self, origin: Point, destination: Point) -> Route:
        road_km = great_circle_km(origin, destination) * self.detour_factor
        return Route(
            distance_m=road_km * 1000, duration_s=self._drive_s(road_km), source=self.source
        )

    def seconds(self, distance_km_straight: float) -> int:
        """Whole seconds to drive a straight-line distance (for hot paths that
        already hold one, such as a geo index's answer)."""
        if not (math.isfinite(distance_km_straight) and distance_km_straight >= 0):
            raise ValueError(f"distance must be a finite number of km, got {distance_km_straight}")
        return round(self._drive_s(distance_km_straight * self.detour_factor))

    def _drive_s(self, road_km: float) -> float:
        return road_km / self.speed_kmh * 3600


class EngineFailed(Exception):
    """Why one call to the routing engine did not give a usable route."""

    def __init__(self, reason: str, **detail: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class Osrm:
    """Routes from an OSRM server's `/route/v1`, falling back to `fallback`.

    The engine is used again after a failure once `cooloff_s` has passed;
    while the first call after the cool-off is out, other calls keep using
    the fallback, so a still-dead engine costs one caller, not all of them.
    """

    source = "osrm"

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        fallback: StraightLine,
        profile: str = "driving",
        client: httpx.Client | None = None,
        *,
        cooloff_s: float = ETA_ENGINE_COOLOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout_s!r}")
        if not _PROFILE.fullmatch(profile):
            raise ValueError(f"not an OSRM profile name: {profile!r}")
        url, self.auth = _split_credentials(base_url)
        # For logs: where the engine is, without credentials, path or query.
        self.engine = f"{url.scheme}://{url.netloc.decode('ascii')}"
        self._routes_url = f"{str(url).rstrip('/')}/route/v1/{profile}/"
        self.timeout_s = float(timeout_s)
        self.fallback = fallback
        self.profile = profile
        self.cooloff_s = cooloff_s
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self._probing = False

    def route(self, origin: Point, destination: Point) -> Route:
        origin, destination = _checked(origin), _checked(destination)
        if not self._claim():
            return self.fallback.route(origin, destination)
        started = self._clock()
        try:
            route = self._ask_within_budget(origin, destination)
        except EngineFailed as failure:
            self._settle(ok=False)
            logger.warning(
                "eta.engine_failed",
                extra={
                    "reason": failure.reason,
                    "engine": self.engine,
                    "elapsed_ms": round((self._clock() - started) * 1000),
                    "cooloff_s": self.cooloff_s,
                    **failure.detail,
                },
            )
            return self.fallback.route(origin, destination)
        except BaseException:
            self._settle(ok=False)  # never leave a retry claimed by a call that died
            raise
        self._settle(ok=True)
        return route

    def _claim(self) -> bool:
        """Whether this call may use the engine (no failure, or the cool-off is over
        and nobody else is already trying it again)."""
        with self._lock:
            if self._failed_at is None:
                return True
            if self._probing or self._clock() - self._failed_at < self.cooloff_s:
                return False
            self._probing = True
            return True

    def _settle(self, *, ok: bool) -> None:
        with self._lock:
            recovered = ok and self._failed_at is not None
            self._failed_at = None if ok else self._clock()
            self._probing = False
        if recovered:
            logger.info("eta.engine_resumed", extra={"engine": self.engine})

    def _ask_within_budget(self, origin: Point, destination: Point) -> Route:
        # httpx bounds each phase (connect, write, each read) by the budget, not
        # their sum; waiting on a future bounds the whole call. A request left
        # behind ends by itself within httpx's own timeouts.
        future: Future[Route] = _engine_threads().submit(self._ask, origin, destination)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            future.cancel()
            raise EngineFailed("timeout") from None
        except EngineFailed:
            raise
        except Exception as error:  # any surprise in the engine's path still falls back
            raise EngineFailed("error", error=type(error).__name__) from error

    def _ask(self, origin: Point, destination: Point) -> Route:
        (from_lat, from_lng), (to_lat, to_lng) = origin, destination
        # OSRM takes lng,lat; fixed places (0.1 m) keep an exponent out of the path.
        coordinates = f"{from_lng:.6f},{from_lat:.6f};{to_lng:.6f},{to_lat:.6f}"
        url = self._routes_url + coordinates
        params = {"overview": "false", "alternatives": "false", "steps": "false"}
        client = self._client or _shared_client()
        try:
            with client.stream(
                "GET", url, params=params, auth=self.auth, timeout=httpx.Timeout(self.timeout_s)
            ) as response:
                if response.status_code != httpx.codes.OK:
                    raise EngineFailed("http_status", status=response.status_code)
                body = _read_capped(response)
        except httpx.TimeoutException:
            raise EngineFailed("timeout") from None
        except httpx.TransportError as error:
            raise EngineFailed("unreachable", error=type(error).__name__) from None
        return _parse_route(body)


def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise EngineFailed("malformed", error="answer too large")
    return bytes(body)


def _parse_route(body: bytes) -> Route:
    """The first route of an OSRM answer, or EngineFailed saying what was wrong."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise EngineFailed("malformed", error="not JSON") from None
    if not isinstance(answer, dict):
        raise EngineFailed("malformed", error="not an object")
    code = answer.get("code")
    if code != "Ok":
        # The engine's own code ("NoRoute", "InvalidQuery"): short, and not ours to trust.
        raise EngineFailed("engine_code", code=str(code)[:40])
    routes = answer.get("routes")
    if not isinstance(routes, list) or not routes or not isinstance(routes[0], dict):
        raise EngineFailed("no_route")
    distance, duration = routes[0].get("distance"), routes[0].get("duration")
    if not (_is_measure(distance) and _is_measure(duration)):
        raise EngineFailed("malformed", error="bad distance or duration")
    return Route(distance_m=float(distance), duration_s=float(duration), source=Osrm.source)


def _is_measure(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _checked(point: Point) -> Point:
    lat, lng = float(point[0]), float(point[1])
    if not (math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90 and -180 <= lng <= 180):
        raise ValueError(f"not a (lat, lng) position: {point!r}")
    return lat, lng


def _split_credentials(base_url: str) -> tuple[httpx.URL, httpx.BasicAuth | None]:
    """The engine's URL without user information, and that as Basic auth:
    httpx logs each request's URL, which must not carry a password."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("OSRM_URL must be an http(s) URL with a host")
    auth = None
    if url.userinfo:
        auth = httpx.BasicAuth(unquote(url.username), unquote(url.password))
    return url.copy_with(userinfo=b"", query=None, fragment=None), auth


class _ProcessLocal:
    """One pooled client and one thread pool per process: a forked worker must
    not share its parent's sockets, and threads do not survive a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._client: httpx.Client | None = None
        self._threads: ThreadPoolExecutor | None = None

    def get(self) -> tuple[httpx.Client, ThreadPoolExecutor]:
        with self._lock:
            if self._pid != os.getpid() or self._client is None or self._threads is None:
                self._pid = os.getpid()
                self._client = httpx.Client(
                    limits=httpx.Limits(
                        max_connections=ENGINE_THREADS,
                        max_keepalive_connections=ENGINE_THREADS,
                        keepalive_expiry=30,
                    ),
                    follow_redirects=False,
                )
                self._threads = ThreadPoolExecutor(ENGINE_THREADS, thread_name_prefix="eta-engine")
            return self._client, self._threads

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid() and self._client is not None:
                self._client.close()
            self._pid = self._client = self._threads = None


_process_local = _ProcessLocal()
atexit.register(_process_local.close)


def _shared_client() -> httpx.Client:
    return _process_local.get()[0]


def _engine_threads() -> ThreadPoolExecutor:
    return _process_local.get()[1]


def current() -> Estimator:
    """The estimator ETA_PROVIDER names (settings read at call time, so tests may switch it)."""
    return _estimator(
        settings.ETA_PROVIDER,
        settings.OSRM_URL,
        float(settings.ETA_TIMEOUT_MS) / 1000,
        float(settings.ETA_DETOUR_FACTOR),
        float(settings.ETA_SPEED_KMH),
    )


def straight_line() -> StraightLine:
    """The default estimator, as configured (for hot paths that only need `seconds`)."""
    return _straight_line(float(settings.ETA_DETOUR_FACTOR), float(settings.ETA_SPEED_KMH))


# Built once per configuration, so an engine's cool-off is shared by its callers.
@functools.lru_cache(maxsize=8)
def _estimator(
    provider: str, osrm_url: str, timeout_s: float, detour_factor: float, speed_kmh: float
) -> Estimator:
    fallback = _straight_line(detour_factor, speed_kmh)
    if provider == "straight_line":
        return fallback
    if provider == "osrm":
        return Osrm(osrm_url, timeout_s, fallback)
    raise ValueError(f"ETA_PROVIDER must be straight_line or osrm, got {provider!r}")


@functools.lru_cache(maxsize=8)
def _straight_line(detour_factor: float, speed_kmh: float) -> StraightLine:
    return StraightLine(detour_factor, speed_kmh)
