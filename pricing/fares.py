"""Fare arithmetic: rates and a trip's measures in, a priced breakdown out.

Pure functions, no rows and no I/O, so the promises PROTOCOL.md makes about
a price ("never below the product's minimum, never decreases when the
distance or duration grows", a surge multiplier within [1, SURGE_MAX]) are
checked here by property tests, and a quote, an estimate and a final fare
are all computed the same way.

Each component is rounded once (`pricing.money.quantize`) and the amount is
their sum, so the breakdown a rider sees always adds up to what they pay;
`minimum_top_up` carries the difference when the minimum lifts the price.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings

from pricing import money

BREAKDOWN_KEYS = ("base", "distance", "time", "booking_fee", "surge", "minimum_top_up")
FARE_KINDS = frozenset({"quote", "estimate", "final"})
SURGE_STEP = Decimal("0.1")
NO_SURGE = Decimal("1.0")


@dataclass(frozen=True)
class Rates:
    """One product's price list, in one currency (a trip keeps the rates it was priced with)."""

    currency: str
    base: Decimal
    per_km: Decimal
    per_min: Decimal
    minimum: Decimal
    booking_fee: Decimal
    cancellation_fee: Decimal

    def __post_init__(self) -> None:
        money.minor_units(self.currency)  # raises on a malformed code
        for name in ("base", "per_km", "per_min", "minimum", "booking_fee", "cancellation_fee"):
            value = getattr(self, name)
            # A negative rate would let a longer trip cost less.
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"rate {name} must be a non-negative Decimal, got {value!r}")


@dataclass(frozen=True)
class Fare:
    """A priced trip: the amount, and the components it is the exact sum of."""

    currency: str
    amount: Decimal
    breakdown: dict[str, Decimal] = field(hash=False)
    surge_multiplier: Decimal

    def as_json(self, kind: str) -> dict:
        """The wire form (a trip's `fare`, a quote's figures): money as decimal strings."""
        if kind not in FARE_KINDS:
            raise ValueError(f"fare kind must be one of {sorted(FARE_KINDS)}, got {kind!r}")
        return {
            "currency": self.currency,
            "amount": money.as_string(self.amount, self.currency),
            "breakdown": {
                key: money.as_string(self.breakdown[key], self.currency) for key in BREAKDOWN_KEYS
            },
            "surge_multiplier": str(self.surge_multiplier),
            "kind": kind,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> "Fare":
        """Read back what `as_json` wrote (the trip stores it); `kind` is the caller's."""
        currency = data["currency"]
        if not money.is_currency(currency):
            raise ValueError(f"not an ISO 4217 currency code: {currency!r}")
        written = dict(data["breakdown"])
        unknown = set(written) - set(BREAKDOWN_KEYS)
        if unknown:
            raise ValueError(f"unknown fare breakdown keys: {sorted(unknown)}")
        # The protocol's quote breakdown has no top-up; a fare that never needed one is zero.
        written.setdefault("minimum_top_up", "0")
        missing = set(BREAKDOWN_KEYS) - set(written)
        if missing:
            raise ValueError(f"fare breakdown lacks {sorted(missing)}")
        return cls(
            currency=currency,
            amount=money.parse(data["amount"], currency),
            breakdown={key: money.parse(written[key], currency) for key in BREAKDOWN_KEYS},
            surge_multiplier=_read_multiplier(data["surge_multiplier"]),
        )


def surge_multiplier(value: Decimal | float | int | str) -> Decimal:
    """The multiplier a price uses: one decimal place (half up), within [1, SURGE_MAX].

    Floats are read through their shortest decimal form, so 1.15 is 1.15 (and
    becomes 1.2), not the binary 1.149999... just below it.
    """
    multiplier = _decimal(value, "surge").quantize(SURGE_STEP, rounding=ROUND_HALF_UP)
    return max(NO_SURGE, min(multiplier, surge_cap()))


def surge_cap() -> Decimal:
    """SURGE_MAX on the multiplier's one-place grid, rounded down so it is never exceeded."""
    cap = _decimal(settings.SURGE_MAX, "SURGE_MAX").quantize(SURGE_STEP, rounding=ROUND_DOWN)
    return max(NO_SURGE, cap)


def price(rates: Rates, *, distance_m: float, duration_s: float, surge: Decimal) -> Fare:
    """What a trip of this length and duration costs under these rates and this surge.

    The surge lifts base, distance and time, never the booking fee; the
    minimum applies to the total after surge.
    """
    km = _measure(distance_m, "distance_m") / 1000
    minutes = _measure(duration_s, "duration_s") / 60
    if not _decimal(surge, "surge") >= 1:
        raise ValueError(f"surge must be at least 1, got {surge!r}")
    multiplier = surge_multiplier(surge)

    def rounded(amount: Decimal) -> Decimal:
        return money.quantize(amount, rates.currency)

    breakdown = {
        "base": rounded(rates.base),
        "distance": rounded(rates.per_km * km),
        "time": rounded(rates.per_min * minutes),
        "booking_fee": rounded(rates.booking_fee),
    }
    surged = breakdown["base"] + breakdown["distance"] + breakdown["time"]
    breakdown["surge"] = rounded(surged * (multiplier - 1))
    subtotal = sum(breakdown.values(), Decimal(0))
    breakdown["minimum_top_up"] = rounded(max(Decimal(0), rounded(rates.minimum) - subtotal))
    return Fare(
        currency=rates.currency,
        amount=subtotal + breakdown["minimum_top_up"],
        breakdown={key: breakdown[key] for key in BREAKDOWN_KEYS},
        surge_multiplier=multiplier,
    )


def cancellation_fee(rates: Rates) -> Decimal:
    """The fee a late cancellation costs, on the currency's minor unit."""
    return money.quantize(rates.cancellation_fee, rates.currency)


def _measure(value: float, name: str) -> Decimal:
    """A distance or duration as an exact Decimal of its shortest decimal form."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number of at least 0, got {value!r}")
    return Decimal(repr(number))


def _decimal(value: Decimal | float | int | str, name: str) -> Decimal:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got a bool")
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _read_multiplier(text: str) -> Decimal:
    multiplier = _decimal(text, "surge_multiplier")
    if multiplier < 1 or multiplier != multiplier.quantize(SURGE_STEP):
        raise ValueError(f"not a surge multiplier: {text!r}")
    return multiplier.quantize(SURGE_STEP)
