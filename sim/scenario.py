"""The seeded scenario: who drives where, who asks for which trip when, and
what each driver answers to each offer; who books ahead, who does not come
out to the car, which drivers give up the trips they accept, and what each
side rates the other.

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
from datetime import datetime

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
# A rider who comes out to the car reaches it this long after it arrived (s),
# and always well within the driver's no-show wait.
WALK_S = (0.2, 1.5)
WALK_BEFORE_NO_SHOW = 0.5
# A driver who gives up a trip does so this long after accepting it (s),
# before the pick-up, with one of these reasons (PROTOCOL.md Part 2).
GIVE_UP_AFTER_S = (0.5, 2.5)
GIVE_UP_CODES = ("vehicle_issue", "other")
# Stars given after a ride, most of them good, and a few tags to go with them.
STARS_WEIGHTS = {5: 0.6, 4: 0.25, 3: 0.08, 2: 0.04, 1: 0.03}
TAGS_FOR_DRIVER = {
    "good": ("clean car", "smooth ride", "friendly", "knows the city"),
    "poor": ("late", "rough driving", "wrong route"),
}
TAGS_FOR_RIDER = {
    "good": ("polite", "ready on time", "friendly"),
    "poor": ("kept me waiting", "rude", "messy"),
}
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
    # The whole ride (PROTOCOL.md Part 2). Times are the wall's, as the
    # server's settings are: NO_SHOW_WAIT_S must not be longer than
    # no_show_wait_s, nor SCHEDULE_MIN_AHEAD_S than schedule_ahead_s.
    no_show_share: float = 0.1  # riders who never come out to the car
    no_show_wait_s: float = 5.0  # how long a driver waits at the pick-up for them
    driver_cancel_share: float = 0.1  # drivers who give up the trips they accept
    rating_share: float = 0.8  # completed trips each side rates
    scheduled_share: float = 0.2  # requests booked ahead (those due within the run)
    schedule_ahead_s: float = 25.0  # how far ahead they are booked
    on_time_tolerance_s: float = 5.0  # a driver at the pick-up this late is on time

    def __post_init__(self) -> None:
        problems = []
        if self.drivers < 0 or self.riders < 1:
            problems.append("need drivers >= 0 and riders >= 1")
        if self.rate <= 0 or self.duration_s <= 0:
            problems.append("rate and duration must be positive")
        shares = ("xl_driver_share", "xl_request_share", "surge_decline_share")
        shares += ("no_show_share", "driver_cancel_share", "rating_share", "scheduled_share")
        for name in ("accept_prob", "silent_prob", "cancel_prob", "rest_share", *shares):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be within [0, 1]")
        if self.accept_prob + self.silent_prob > 1:
            problems.append("accept_prob + silent_prob must not exceed 1")
        if self.speed_kmh <= 0 or self.time_scale <= 0 or self.ping_every_s <= 0:
            problems.append("speed, time scale and ping interval must be positive")
        if self.no_show_wait_s <= 0 or self.schedule_ahead_s <= 0:
            problems.append("the no-show wait and the schedule's lead must be positive")
        if self.on_time_tolerance_s < 0:
            problems.append("the on-time tolerance must not be negative")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def wall_speed_km_s(self) -> float:
        return self.speed_kmh * self.time_scale / 3600.0


@dataclass(frozen=True)
class GiveUp:
    """A driver giving up a trip it accepted: when, and the reason it gives."""

    after_s: float
    reason_code: str


@dataclass(frozen=True)
class RatingPlan:
    stars: int
    tags: tuple[str, ...] = ()

    def body(self) -> dict:
        """POST /api/trip/<id>/rating/."""
        return {"stars": self.stars, "tags": list(self.tags)}


@dataclass(frozen=True)
class DriverPlan:
    index: int
    username: str
    start: Point
    products: tuple[str, ...] = (STANDARD,)
    gives_up: bool = False  # gives up every trip it accepts, before the pick-up

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
    no_show: bool = False  # never comes out to the car
    walk_s: float = 0.5  # reaches the car this long after it arrived
    scheduled_ahead_s: float | None = None  # booked this far ahead; None: now
    rating: RatingPlan | None = None  # the rider's rating of the driver, if any

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

    def scheduled_body(self, body: dict, scheduled_for: datetime) -> dict:
        """A create body booked for `scheduled_for` (timezone-aware)."""
        return {**body, "scheduled_for": scheduled_for.isoformat()}

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

    def give_up(self, driver_index: int, nth_accept: int) -> GiveUp | None:
        """When and why driver `driver_index` gives up its `nth_accept`-th
        accepted trip (0-based); None for a driver who never does."""
        if not self.drivers[driver_index].gives_up:
            return None
        rng = seeded_rng(self.config.seed, "driver", driver_index, "give_up", nth_accept)
        return GiveUp(round(rng.uniform(*GIVE_UP_AFTER_S), 3), rng.choice(GIVE_UP_CODES))

    def driver_rating(self, driver_index: int, nth_ride: int) -> RatingPlan | None:
        """Driver `driver_index`'s rating of the rider of its `nth_ride`-th
        completed ride (0-based); None when it does not rate."""
        rng = seeded_rng(self.config.seed, "driver", driver_index, "rates", nth_ride)
        return _rating(rng, self.config.rating_share, TAGS_FOR_RIDER)

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
        gives_up = seeded_rng(config.seed, "driver", index, "gives_up").random()
        drivers.append(
            DriverPlan(
                index,
                driver_username(index),
                start,
                _products(config, index),
                gives_up=gives_up < config.driver_cancel_share,
            )
        )
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
    # Their own generators: the product, the price reaction and the rest of
    # the ride reshuffle nothing above.
    wants = seeded_rng(config.seed, "request", number, "product")
    surge = seeded_rng(config.seed, "request", number, "surge")
    ahead = _scheduled_ahead_s(config, number, at_s)
    walk_high = max(WALK_S[0], min(WALK_S[1], config.no_show_wait_s * WALK_BEFORE_NO_SHOW))
    walk = seeded_rng(config.seed, "request", number, "walk").uniform(WALK_S[0], walk_high)
    rates = seeded_rng(config.seed, "request", number, "rates")
    return RequestPlan(
        number=number,
        at_s=at_s,
        pick_up=pick_up,
        drop_off=drop_off,
        pick_up_address=f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
        drop_off_address=f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
        via="rest" if rng.random() < config.rest_share else "ws",
        # A booked ride's rider waits for its time, not for a driver.
        patience_s=round(patience, 3) if patience is not None and ahead is None else None,
        product=XL if wants.random() < config.xl_request_share else STANDARD,
        declines_surge=surge.random() < config.surge_decline_share,
        no_show=seeded_rng(config.seed, "request", number, "no_show").random()
        < config.no_show_share,
        walk_s=round(walk, 3),
        scheduled_ahead_s=ahead,
        rating=_rating(rates, config.rating_share, TAGS_FOR_DRIVER),
    )


def _scheduled_ahead_s(config: SimConfig, number: int, at_s: float) -> float | None:
    """A share of the requests that would come due within the run are booked
    ahead instead: the run then sees them dispatched and served."""
    if at_s + config.schedule_ahead_s > config.duration_s:
        return None
    if seeded_rng(config.seed, "request", number, "scheduled").random() >= config.scheduled_share:
        return None
    return config.schedule_ahead_s


def _rating(
    rng: random.Random, share: float, tags: dict[str, tuple[str, ...]]
) -> RatingPlan | None:
    """Stars (mostly good) and up to two tags that agree with them; None for
    a ride left unrated."""
    if rng.random() >= share:
        return None
    stars = rng.choices(list(STARS_WEIGHTS), weights=list(STARS_WEIGHTS.values()))[0]
    pool = tags["good"] if stars >= 4 else tags["poor"]
    return RatingPlan(stars, tuple(rng.sample(pool, rng.randint(0, 2))))
