"""Quotes and trip prices (PROTOCOL.md Part 2, "Products, vehicles and prices").

A quote prices one product for one route: the route is estimated once (the
ETA estimator: a routing engine or the straight line), the pick-up's cell
gives the surge multiplier, the product's current rate card gives the
rates, and the nearest driver eligible for the product gives the pick-up
ETA. A trip is priced the same way at its request (an estimate, or the
quote it names, kept as quoted) and once more when it completes (final).

Every price is computed by `pricing.fares.price`, so quotes, estimates and
final fares follow the same rules and the same rounding.
"""

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import presence
from pricing import catalogue, eta, fares, surge
from pricing.models import Quote, RateCard
from trips.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    QuoteExpired,
    QuoteMismatch,
)
from trips.models import Trip, User

logger = logging.getLogger(__name__)

# A quote's pick-up and drop-off may lie this far from a trip's and still be its price.
QUOTE_MATCH_M = 100.0
# Pick-up and drop-off closer than this are one place: no ride to price.
SAME_PLACE_M = 10.0

Point = tuple[float, float]


def rates_of(card: RateCard) -> fares.Rates:
    return fares.Rates(**card.rate_values())


def _metres(a: Point, b: Point) -> float:
    return eta.great_circle_km(a, b) * 1000


def _check_route(pick_up: Point, drop_off: Point | None) -> None:
    if drop_off is not None and _metres(pick_up, drop_off) < SAME_PLACE_M:
        raise InvalidInput("Pick-up and drop-off are the same place.")


def _products(code: str | None) -> list[catalogue.Priced]:
    """The active products to price (or the one asked for), each with its
    current rate card. An unknown or inactive code is a 400."""
    priced = catalogue.priced(code)
    if code is not None and not priced:
        raise InvalidInput(f"Unknown product {code!r}.")
    return priced


def _pickup_eta_s(pick_up: Point, product: str, estimator: eta.Estimator) -> int | None:
    """The drive to the pick-up from the nearest available driver eligible for
    `product`; None when nobody is within the search rings (or presence is
    away: a quote is still worth giving)."""
    try:
        nearest = next(
            iter(presence.nearest_available(lat=pick_up[0], lng=pick_up[1], product=product)),
            None,
        )
        if nearest is None:
            return None
        if isinstance(estimator, eta.StraightLine):
            return round(estimator.seconds(nearest.distance_km))
        here = presence.position(nearest.driver_id)
    except RedisError:
        logger.warning("pricing.pickup_eta_unavailable", extra={"product": product})
        return None
    if here is None:
        return round(eta.straight_line().seconds(nearest.distance_km))
    return round(estimator.route(here, pick_up).duration_s)


def quotes_create(
    *, rider: User, pick_up: Point, drop_off: Point, product: str | None = None
) -> list[Quote]:
    """One quote per active product (or for the one asked), each kept
    QUOTE_TTL_S for this rider."""
    if not rider.is_rider:
        raise Forbidden("Only riders can ask for quotes.")
    _check_route(pick_up, drop_off)
    priced = _products(product)
    estimator = eta.current()
    route = estimator.route(pick_up, drop_off)
    multiplier = fares.surge_multiplier(surge.multiplier_at(*pick_up))
    expires_at = timezone.now() + timedelta(seconds=settings.QUOTE_TTL_S)
    quotes = []
    for item, card in priced:
        fare = fares.price(
            rates_of(card),
            distance_m=route.distance_m,
            duration_s=route.duration_s,
            surge=multiplier,
        )
        quotes.append(
            Quote(
                rider=rider,
                product=item,
                rate_card=card,
                pick_up_lat=pick_up[0],
                pick_up_lng=pick_up[1],
                drop_off_lat=drop_off[0],
                drop_off_lng=drop_off[1],
                fare=fare.as_json("quote"),
                distance_m=round(route.distance_m),
                duration_s=round(route.duration_s),
                pickup_eta_s=_pickup_eta_s(pick_up, item.code, estimator),
                expires_at=expires_at,
            )
        )
    Quote.objects.bulk_create(quotes)
    logger.info(
        "pricing.quoted",
        extra={
            "rider_id": rider.pk,
            "products": [q.product_id for q in quotes],
            "surge": str(multiplier),
            "route_source": route.source,
        },
    )
    return quotes


@dataclass(frozen=True)
class TripPrice:
    """What a new trip is priced at: its product, rate card, quote (if any),
    fare (null without a drop-off to price to), route and pick-up ETA."""

    product: str
    rate_card: RateCard | None = None
    quote: Quote | None = None
    fare: dict | None = None
    distance_m: int | None = None
    duration_s: int | None = None
    pickup_eta_s: int | None = None


def trip_price(
    *,
    rider: User,
    pick_up: Point,
    drop_off: Point | None,
    product: str | None = None,
    quote_id: UUID | str | None = None,
) -> TripPrice:
    """The price of the trip a rider asks for. With `quote_id`: the quote's,
    as quoted (404 another rider's or an unknown quote, 409 `quote_expired`,
    400 `quote_mismatch` when the product or a place differs). Without: an
    estimate for the product asked (DEFAULT_PRODUCT when none) when the trip
    has a drop-off."""
    _check_route(pick_up, drop_off)
    if quote_id is not None:
        return _quoted(
            rider=rider, quote_id=quote_id, pick_up=pick_up, drop_off=drop_off, product=product
        )
    code = product or settings.DEFAULT_PRODUCT
    try:
        ((item, card),) = _products(code)
    except InvalidInput:
        if product is not None:
            raise
        # A catalogue without the default product still takes Part 1's
        # requests (they name none); they go unpriced until it is back.
        logger.warning("pricing.default_product_missing", extra={"product": code})
        return TripPrice(product=code)
    if drop_off is None:
        return TripPrice(product=code, rate_card=card)
    route = eta.current().route(pick_up, drop_off)
    fare = fares.price(
        rates_of(card),
        distance_m=route.distance_m,
        duration_s=route.duration_s,
        surge=fares.surge_multiplier(surge.multiplier_at(*pick_up)),
    )
    return TripPrice(
        product=item.code,
        rate_card=card,
        fare=fare.as_json("estimate"),
        distance_m=round(route.distance_m),
        duration_s=round(route.duration_s),
    )


def _quoted(
    *,
    rider: User,
    quote_id: UUID | str,
    pick_up: Point,
    drop_off: Point | None,
    product: str | None,
) -> TripPrice:
    try:
        quote = Quote.objects.select_related("rate_card").get(pk=quote_id, rider=rider)
    except (Quote.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No such quote.") from None
    if quote.expires_at <= timezone.now():
        raise QuoteExpired()
    if product is not None and product != quote.product_id:
        raise QuoteMismatch("The quote is for another product.")
    quoted_drop_off = (quote.drop_off_lat, quote.drop_off_lng)
    if (
        drop_off is None
        or _metres(pick_up, (quote.pick_up_lat, quote.pick_up_lng)) > QUOTE_MATCH_M
        or _metres(drop_off, quoted_drop_off) > QUOTE_MATCH_M
    ):
        raise QuoteMismatch("The quote is for other places.")
    return TripPrice(
        product=quote.product_id,
        rate_card=quote.rate_card,
        quote=quote,
        fare=quote.fare,
        distance_m=quote.distance_m,
        duration_s=quote.duration_s,
        pickup_eta_s=quote.pickup_eta_s,
    )


def final_fare(trip: Trip, *, completed_at: datetime, end: Point | None) -> dict | None:
    """The fare of a completed trip: a quoted trip keeps its amount; an
    estimated one is priced again with the ride time it took (never less
    than estimated) over the estimated route, or, with no drop-off given,
    the straight line to where the driver ended (`end`)."""
    if trip.fare is not None and trip.fare.get("kind") == "quote":
        return fares.Fare.from_json(trip.fare).as_json("final")
    if trip.rate_card_id is None:
        return trip.fare
    ridden_s = 0.0
    if trip.picked_up_at is not None:
        ridden_s = max(0.0, (completed_at - trip.picked_up_at).total_seconds())
    if trip.distance_m is not None:
        distance_m, duration_s = float(trip.distance_m), max(float(trip.duration_s or 0), ridden_s)
    elif end is not None:
        route = eta.straight_line().route((trip.pick_up_lat, trip.pick_up_lng), end)
        distance_m, duration_s = route.distance_m, ridden_s
    else:
        return trip.fare
    if not (math.isfinite(distance_m) and math.isfinite(duration_s)):
        return trip.fare
    multiplier = fares.Fare.from_json(trip.fare).surge_multiplier if trip.fare else fares.NO_SURGE
    fare = fares.price(
        rates_of(trip.rate_card), distance_m=distance_m, duration_s=duration_s, surge=multiplier
    )
    return fare.as_json("final")
