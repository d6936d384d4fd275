"""The seeded scenario: who drives where, who asks for which trip when, and
what each driver answers to each offer.

Everything here is a pure function of the configuration and the seed, so the
same seed replays the same city: same agents, positions, request schedule and
decisions. Only network timing differs between runs. Each draw gets its own
generator named by what it is for (`seed/driver/3/offer/2`), so adding a
driver or a request does not reshuffle everybody else's decisions.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from sim.geo import DEFAULT_BBOX, BBox, Point, distance_km, offset

USERNAME_DOMAIN = "sim.local"
STREETS = ("Main St", "Oak Ave", "Pine Rd", "Elm St", "Maple Ave", "Cedar Ln", "Lake Dr")
# A trip's drop-off lies this far from its pick-up (km), inside the box.
TRIP_KM = (1.0, 4.0)
# A driver's answer comes after a delay in this range (s), and always well
# before the offer's own timeout.
ANSWER_DELAY_S = (0.3, 3.0)
ANSWER_BEFORE_TIMEOUT = 0.6
# Riders who give up do so after waiting this long for a driver (s).
PATIENCE_S = (4.0, 20.0)
# The catalogue's products (PROTOCOL.md Part 2): every car serves the
# standard one; a large car (capacity >= 6) also serves xl.
STANDARD, XL = "standard", "xl"
CAR_CAPACITY = {STANDARD: 4, XL: 6}


def seeded_rng(*parts: object) -> random.Random:
    """A generator for one named draw. Simulation randomness, not security."""
    return random.Random("/".join(str(part) for part in parts))  # noqa: S311


class Action(enum.StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    SILENT = "silent"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay_s: float


@dataclass(frozen=True)
class SimConfig:
    drivers: int = 20
    riders: int = 30
    rate: float = 0.3  # trip requests per second
    duration_s: float = 60.0
    accept_prob: float = 0.7
    silent_prob: float = 0.1
    cancel_prob: float = 0.05
    rest_share: float = 0.25  # share of requests sent as POST /api/trip/
    bbox: BBox = DEFAULT_BBOX
    seed: int = 1
    speed_kmh: float = 36.0
    time_scale: float = 20.0  # the city's clock runs this much faster than the wall's
    ping_every_s: float = 3.0
    drain_s: float = 20.0
    base_url: str = "http://localhost:8000"
    xl_driver_share: float = 0.3  # drivers whose car also serves xl
    xl_request_share: float = 0.15  # requests that ask for xl
    surge_decline_share: float = 0.5  # riders who walk away from a quote above 1.0x

    def __post_init__(self) -> None:
        problems = []
        if self.drivers < 0 or self.riders < 1:
            problems.append("need drivers >= 0 and riders >= 1")
        if self.rate <= 0 or self.duration_s <= 0:
            problems.append("rate and duration must be positive")
        shares = ("xl_driver_share", "xl_request_share", "surge_decline_share")
        for name in ("accept_prob", "silent_prob", "cancel_prob", "rest_share", *shares):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be within [0, 1]")
        if self.accept_prob + self.silent_prob > 1:
            problems.append("accept_prob + silent_prob must not exceed 1")
        if self.speed_kmh <= 0 or self.time_scale <= 0 or self.ping_every_s <= 0:
            problems.append("speed, time scale and ping interval must be positive")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def wall_speed_km_s(self) -> float:
        return self.speed_kmh * self.time_scale / 3600.0


@dataclass(frozen=True)
class DriverPlan:
    index: int
    username: str
    start: Point
    products: tuple[str, ...] = (STANDARD,)

    def vehicle(self) -> dict:
        """The body of PUT /api/driver/vehicle/: a car big enough for its products."""
        large = XL in self.products
        return {
            "make": "Sim",
            "model": "Van" if large else "Sedan",
            "color": "white",
            "plate": f"SIM-{self.index}",
            "capacity": max(CAR_CAPACITY[product] for product in self.products),
            "products": list(self.products),
        }


@dataclass(frozen=True)
class RequestPlan:
    number: int
    at_s: float  # seconds after the start of the run
    pick_up: Point
    drop_off: Point
    pick_up_address: str
    drop_off_address: str
    via: str  # "ws" or "rest"
    patience_s: float | None  # cancel if still unmatched after this long
    product: str = STANDARD
    declines_surge: bool = False  # walks away when the quote's surge is above 1.0

    def quote_body(self) -> dict:
        """POST /api/quotes/ for this request's product."""
        return {
            "pick_up_lat": self.pick_up.lat,
            "pick_up_lng": self.pick_up.lng,
            "drop_off_lat": self.drop_off.lat,
            "drop_off_lng": self.drop_off.lng,
            "product": self.product,
        }

    def priced_body(self, quote_id: str | None) -> dict:
        """The create body naming the product, and the quote when there is one."""
        body = {**self.body(), "product": self.product}
        if quote_id is not None:
            body["quote_id"] = quote_id
        return body

    def body(self) -> dict:
        return {
            "pick_up_address": self.pick_up_address,
            "pick_up_lat": self.pick_up.lat,
            "pick_up_lng": self.pick_up.lng,
            "drop_off_address": self.drop_off_address,
            "drop_off_lat": self.drop_off.lat,
            "drop_off_lng": self.drop_off.lng,
        }


@dataclass(frozen=True)
class Scenario:
    config: SimConfig
    drivers: list[DriverPlan] = field(default_factory=list)
    rider_usernames: list[str] = field(default_factory=list)
    requests: list[RequestPlan] = field(default_factory=list)

    def decision(self, driver_index: int, nth_offer: int, timeout_s: float) -> Decision:
        """What driver `driver_index` does with its `nth_offer`-th offer (0-based)."""
        rng = seeded_rng(self.config.seed, "driver", driver_index, "offer", nth_offer)
        draw = rng.random()
        if draw < self.config.accept_prob:
            action = Action.ACCEPT
        elif draw < self.config.accept_prob + self.config.silent_prob:
            action = Action.SILENT
        else:
            action = Action.DECLINE
        low, high = ANSWER_DELAY_S
        high = max(low, min(high, timeout_s * ANSWER_BEFORE_TIMEOUT))
        return Decision(action, round(rng.uniform(low, high), 3))

    def wander_target(self, driver_index: int, nth: int) -> Point:
        """Where an idle driver cruises to next."""
        rng = seeded_rng(self.config.seed, "driver", driver_index, "wander", nth)
        return self.config.bbox.point_at(rng.random(), rng.random())


def driver_username(index: int) -> str:
    return f"simdriver{index}@{USERNAME_DOMAIN}"


def rider_username(index: int) -> str:
    return f"simrider{index}@{USERNAME_DOMAIN}"


def build_scenario(config: SimConfig) -> Scenario:
    bbox = config.bbox
    drivers = []
    for index in range(config.drivers):
        rng = seeded_rng(config.seed, "driver", index, "start")
        start = bbox.point_at(rng.random(), rng.random())
        drivers.append(DriverPlan(index, driver_username(index), start, _products(config, index)))
    riders = [rider_username(index) for index in range(config.riders)]
    return Scenario(config, drivers, riders, list(_request_schedule(config)))


def _products(config: SimConfig, driver_index: int) -> tuple[str, ...]:
    rng = seeded_rng(config.seed, "driver", driver_index, "vehicle")
    return (STANDARD, XL) if rng.random() < config.xl_driver_share else (STANDARD,)


def _request_schedule(config: SimConfig):
    """Poisson arrivals at `rate` per second over the run's duration."""
    arrivals = seeded_rng(config.seed, "arrivals")
    at, number = 0.0, 0
    while True:
        at += arrivals.expovariate(config.rate)
        if at >= config.duration_s:
            return
        yield _request(config, number, round(at, 3))
        number += 1


def _request(config: SimConfig, number: int, at_s: float) -> RequestPlan:
    rng = seeded_rng(config.seed, "request", number)
    bbox = config.bbox
    pick_up = bbox.point_at(rng.random(), rng.random())
    drop_off = pick_up
    for _ in range(8):  # a few tries for a drop-off that stays in the box
        km = rng.uniform(*TRIP_KM)
        bearing = rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)
        norm = max(1e-9, (bearing[0] ** 2 + bearing[1] ** 2) ** 0.5)
        candidate = offset(pick_up, km * bearing[0] / norm, km * bearing[1] / norm)
        if bbox.clamp(candidate) == candidate:
            drop_off = candidate
            break
    else:
        drop_off = bbox.clamp(candidate)
    if distance_km(pick_up, drop_off) < 0.1:
        drop_off = bbox.point_at(rng.random(), rng.random())
    patience = rng.uniform(*PATIENCE_S) if rng.random() < config.cancel_prob else None
    # Their own generators: the product and the price reaction reshuffle nothing above.
    wants = seeded_rng(config.seed, "request", number, "product")
    surge = seeded_rng(config.seed, "request", number, "surge")
    return RequestPlan(
        number=number,
        at_s=at_s,
        pick_up=pick_up,
        drop_off=drop_off,
        pick_up_address=f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
        drop_off_address=f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
        via="rest" if rng.random() < config.rest_share else "ws",
        patience_s=round(patience, 3) if patience is not None else None,
        product=XL if wants.random() < config.xl_request_share else STANDARD,
        declines_surge=surge.random() < config.surge_decline_share,
    )
