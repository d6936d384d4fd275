"""Fare arithmetic: hand-worked examples, and the promises PROTOCOL.md makes
about every price checked as properties over many trips."""

import math
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing import fares, money
from pricing.fares import Fare, Rates

STANDARD = Rates(
    currency="USD",
    base=Decimal("2.50"),
    per_km=Decimal("1.20"),
    per_min=Decimal("0.30"),
    minimum=Decimal("7.00"),
    booking_fee=Decimal("1.75"),
    cancellation_fee=Decimal("5.00"),
)
YEN = Rates(
    currency="JPY",
    base=Decimal("500"),
    per_km=Decimal("300"),
    per_min=Decimal("50"),
    minimum=Decimal("1000"),
    booking_fee=Decimal("100"),
    cancellation_fee=Decimal("499.5"),
)
DINAR = Rates(
    currency="KWD",
    base=Decimal("0.500"),
    per_km=Decimal("0.125"),
    per_min=Decimal("0.020"),
    minimum=Decimal("1.000"),
    booking_fee=Decimal("0.100"),
    cancellation_fee=Decimal("0.750"),
)


def breakdown(**amounts: str) -> dict[str, Decimal]:
    return {key: Decimal(amounts[key]) for key in fares.BREAKDOWN_KEYS}


# Examples worked by hand.


def test_a_trip_without_surge_is_base_distance_time_and_booking_fee():
    # 5 km x 1.20 = 6.00; 15 min x 0.30 = 4.50; 2.50 + 6.00 + 4.50 + 1.75 = 14.75
    fare = fares.price(STANDARD, distance_m=5000, duration_s=900, surge=Decimal(1))

    assert fare == Fare(
        currency="USD",
        amount=Decimal("14.75"),
        breakdown=breakdown(
            base="2.50",
            distance="6.00",
            time="4.50",
            booking_fee="1.75",
            surge="0.00",
            minimum_top_up="0.00",
        ),
        surge_multiplier=Decimal("1.0"),
    )


def test_surge_lifts_base_distance_and_time_but_not_the_booking_fee():
    # (2.50 + 6.00 + 4.50) x 0.5 = 6.50; 14.75 + 6.50 = 21.25
    fare = fares.price(STANDARD, distance_m=5000, duration_s=900, surge=Decimal("1.5"))

    assert fare.breakdown["surge"] == Decimal("6.50")
    assert fare.breakdown["booking_fee"] == Decimal("1.75")
    assert fare.amount == Decimal("21.25")
    assert fare.surge_multiplier == Decimal("1.5")


def test_the_minimum_lifts_a_short_trip_and_the_top_up_says_by_how_much():
    # 2.50 + 1.20 + 0.60 + 1.75 = 6.05, below the 7.00 minimum by 0.95
    fare = fares.price(STANDARD, distance_m=1000, duration_s=120, surge=Decimal(1))

    assert fare.breakdown["minimum_top_up"] == Decimal("0.95")
    assert fare.amount == Decimal("7.00")
    assert sum(fare.breakdown.values()) == fare.amount


def test_each_component_rounds_half_up():
    rates = Rates(**{**STANDARD.__dict__, "per_km": Decimal("1.25")})

    # 0.5 km x 1.25 = 0.625 -> 0.63 (half-even would say 0.62)
    fare = fares.price(rates, distance_m=500, duration_s=0, surge=Decimal(1))

    assert fare.breakdown["distance"] == Decimal("0.63")
    assert fare.breakdown["time"] == Decimal("0.00")


def test_a_zero_decimal_currency_prices_in_whole_units():
    # 2.5 km x 300 = 750; 3.5 min x 50 = 175; surge 1.25 -> 1.3,
    # (500 + 750 + 175) x 0.3 = 427.5 -> 428; 500 + 750 + 175 + 100 + 428 = 1953
    fare = fares.price(YEN, distance_m=2500, duration_s=210, surge=Decimal("1.25"))

    assert fare.surge_multiplier == Decimal("1.3")
    assert fare.breakdown == breakdown(
        base="500", distance="750", time="175", booking_fee="100", surge="428", minimum_top_up="0"
    )
    assert fare.amount == Decimal("1953")
    assert fare.as_json("quote")["amount"] == "1953"


def test_a_three_decimal_currency_prices_in_fils():
    # 2.345 km x 0.125 = 0.293125 -> 0.293; 5 min x 0.020 = 0.100;
    # 0.500 + 0.293 + 0.100 + 0.100 = 0.993, topped up by 0.007 to 1.000
    fare = fares.price(DINAR, distance_m=2345, duration_s=300, surge=Decimal(1))

    assert fare.breakdown["distance"] == Decimal("0.293")
    assert fare.breakdown["minimum_top_up"] == Decimal("0.007")
    assert fare.as_json("estimate")["amount"] == "1.000"


def test_as_json_is_the_wire_form_and_reads_back():
    fare = fares.price(STANDARD, distance_m=5000, duration_s=900, surge=Decimal(1))

    data = fare.as_json("quote")

    assert data == {
        "currency": "USD",
        "amount": "14.75",
        "breakdown": {
            "base": "2.50",
            "distance": "6.00",
            "time": "4.50",
            "booking_fee": "1.75",
            "surge": "0.00",
            "minimum_top_up": "0.00",
        },
        "surge_multiplier": "1.0",
        "kind": "quote",
    }
    assert Fare.from_json(data) == fare


def test_from_json_reads_a_breakdown_without_a_top_up_as_none_needed():
    data = fares.price(STANDARD, distance_m=5000, duration_s=900, surge=Decimal(1)).as_json("final")
    del data["breakdown"]["minimum_top_up"]

    assert Fare.from_json(data).breakdown["minimum_top_up"] == Decimal("0.00")


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("amount", "14.755"),
        ("amount", 14.75),
        ("currency", "usd"),
        ("surge_multiplier", "0.9"),
        ("surge_multiplier", "1.25"),
    ],
)
def test_from_json_refuses_a_fare_it_did_not_write(change, value):
    data = fares.price(STANDARD, distance_m=5000, duration_s=900, surge=Decimal(1)).as_json("final")
    data[change] = value

    with pytest.raises((ValueError, TypeError)):
        Fare.from_json(data)


def test_as_json_refuses_an_unknown_kind():
    fare = fares.price(STANDARD, distance_m=5000, duration_s=900, surge=Decimal(1))

    with pytest.raises(ValueError):
        fare.as_json("guess")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.04"), "1.0"),
        (Decimal("1.05"), "1.1"),  # half up
        (1.15, "1.2"),  # the float's decimal form, not the binary just below it
        (2, "2.0"),
        ("1.5", "1.5"),
        (Decimal("0.4"), "1.0"),  # never below 1
        (Decimal("7"), "3.0"),  # never above SURGE_MAX
    ],
)
def test_surge_multiplier_has_one_place_within_bounds(value, expected):
    assert str(fares.surge_multiplier(value)) == expected


def test_surge_multiplier_follows_surge_max():
    with override_settings(SURGE_MAX=2.0):
        fare = fares.price(STANDARD, distance_m=5000, duration_s=900, surge=Decimal("2.5"))

    assert fare.surge_multiplier == Decimal("2.0")
    assert fare.breakdown["surge"] == Decimal("13.00")


@pytest.mark.parametrize("value", [Decimal("NaN"), float("inf"), "many", None])
def test_surge_multiplier_refuses_what_is_not_a_number(value):
    with pytest.raises(ValueError):
        fares.surge_multiplier(value)


@pytest.mark.parametrize(
    ("distance_m", "duration_s", "surge"),
    [
        (-1, 60, Decimal(1)),
        (1000, -0.5, Decimal(1)),
        (math.inf, 60, Decimal(1)),
        (1000, math.nan, Decimal(1)),
        (1000, 60, Decimal("0.99")),
        (1000, 60, Decimal("NaN")),
    ],
)
def test_price_refuses_impossible_trips(distance_m, duration_s, surge):
    with pytest.raises(ValueError):
        fares.price(STANDARD, distance_m=distance_m, duration_s=duration_s, surge=surge)


@pytest.mark.parametrize(
    ("field", "value"),
    [("per_km", Decimal("-0.01")), ("base", 2.5), ("minimum", Decimal("Infinity"))],
)
def test_rates_refuse_negative_or_inexact_figures(field, value):
    with pytest.raises(ValueError):
        Rates(**{**STANDARD.__dict__, field: value})


def test_cancellation_fee_is_on_the_minor_unit():
    assert fares.cancellation_fee(STANDARD) == Decimal("5.00")
    assert fares.cancellation_fee(YEN) == Decimal("500")


# Properties: what must hold for every trip.

CURRENCIES = ("USD", "JPY", "KWD")


@st.composite
def rates(draw) -> Rates:
    currency = draw(st.sampled_from(CURRENCIES))
    places = money.minor_units(currency)
    scale = 100 if currency == "JPY" else 1

    def amount(most: int, extra_places: int = 0):
        return st.decimals(min_value=0, max_value=most * scale, places=places + extra_places)

    return Rates(
        currency=currency,
        base=draw(amount(20)),
        per_km=draw(amount(5, extra_places=2)),  # per-unit rates may be finer than a cent
        per_min=draw(amount(2, extra_places=2)),
        minimum=draw(amount(50)),
        booking_fee=draw(amount(5)),
        cancellation_fee=draw(amount(10)),
    )


distances = st.floats(min_value=0, max_value=500_000, allow_nan=False)
durations = st.floats(min_value=0, max_value=36_000, allow_nan=False)
surges = st.one_of(
    st.decimals(min_value=1, max_value=5, places=2),
    st.floats(min_value=1, max_value=5, allow_nan=False),
)
PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(rates=rates(), distance_m=distances, duration_s=durations, surge=surges)
def test_amount_is_never_below_the_minimum(rates, distance_m, duration_s, surge):
    fare = fares.price(rates, distance_m=distance_m, duration_s=duration_s, surge=surge)

    assert fare.amount >= money.quantize(rates.minimum, rates.currency)


@PROPERTY
@given(rates=rates(), distance_m=distances, duration_s=durations, surge=surges)
def test_breakdown_adds_up_exactly_to_the_amount(rates, distance_m, duration_s, surge):
    fare = fares.price(rates, distance_m=distance_m, duration_s=duration_s, surge=surge)

    assert set(fare.breakdown) == set(fares.BREAKDOWN_KEYS)
    assert sum(fare.breakdown.values()) == fare.amount
    assert all(part >= 0 for part in fare.breakdown.values())


@PROPERTY
@given(rates=rates(), distance_m=distances, duration_s=durations, surge=surges)
def test_amount_has_exactly_the_currency_places(rates, distance_m, duration_s, surge):
    fare = fares.price(rates, distance_m=distance_m, duration_s=duration_s, surge=surge)
    places = money.minor_units(rates.currency)

    assert fare.amount.as_tuple().exponent == -places
    assert all(part.as_tuple().exponent == -places for part in fare.breakdown.values())
    assert len(fare.as_json("quote")["amount"].partition(".")[2]) == places
    assert Fare.from_json(fare.as_json("quote")) == fare


@PROPERTY
@given(
    rates=rates(),
    distances=st.lists(distances, min_size=2, max_size=2).map(sorted),
    duration_s=durations,
    surge=surges,
)
def test_a_longer_trip_never_costs_less(rates, distances, duration_s, surge):
    shorter, longer = (
        fares.price(rates, distance_m=d, duration_s=duration_s, surge=surge) for d in distances
    )

    assert shorter.amount <= longer.amount


@PROPERTY
@given(
    rates=rates(),
    distance_m=distances,
    durations=st.lists(durations, min_size=2, max_size=2).map(sorted),
    surge=surges,
)
def test_a_slower_trip_never_costs_less(rates, distance_m, durations, surge):
    quicker, slower = (
        fares.price(rates, distance_m=distance_m, duration_s=t, surge=surge) for t in durations
    )

    assert quicker.amount <= slower.amount


@PROPERTY
@given(
    rates=rates(),
    distances=st.lists(distances, min_size=2, max_size=2).map(sorted),
    durations=st.lists(durations, min_size=2, max_size=2).map(sorted),
    surge=surges,
)
def test_a_longer_and_slower_trip_never_costs_less(rates, distances, durations, surge):
    small = fares.price(rates, distance_m=distances[0], duration_s=durations[0], surge=surge)
    large = fares.price(rates, distance_m=distances[1], duration_s=durations[1], surge=surge)

    assert small.amount <= large.amount


@PROPERTY
@given(
    rates=rates(),
    distance_m=distances,
    duration_s=durations,
    surges=st.lists(surges, min_size=2, max_size=2).map(lambda pair: sorted(pair, key=Decimal)),
)
def test_a_higher_surge_never_costs_less(rates, distance_m, duration_s, surges):
    lower, higher = (
        fares.price(rates, distance_m=distance_m, duration_s=duration_s, surge=s) for s in surges
    )

    assert lower.surge_multiplier <= higher.surge_multiplier
    assert lower.amount <= higher.amount


@PROPERTY
@given(
    value=st.one_of(
        st.decimals(min_value=-10, max_value=100, allow_nan=False, allow_infinity=False),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.integers(min_value=-100, max_value=100),
    )
)
def test_the_surge_multiplier_stays_within_one_and_surge_max(value):
    multiplier = fares.surge_multiplier(value)

    assert Decimal(1) <= multiplier <= Decimal(str(django_settings.SURGE_MAX))
    assert multiplier.as_tuple().exponent == -1


@PROPERTY
@given(rates=rates(), distance_m=distances, duration_s=durations, surge=surges)
def test_the_priced_multiplier_stays_within_one_and_surge_max(rates, distance_m, duration_s, surge):
    fare = fares.price(rates, distance_m=distance_m, duration_s=duration_s, surge=surge)

    assert Decimal(1) <= fare.surge_multiplier <= Decimal(str(django_settings.SURGE_MAX))
