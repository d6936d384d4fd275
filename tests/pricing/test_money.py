"""Money: places per currency, half-up rounding, and the wire's decimal strings."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing import money


@pytest.mark.parametrize(
    ("currency", "places"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("XOF", 0), ("KWD", 3), ("TND", 3)],
)
def test_minor_units_follow_iso_4217(currency, places):
    assert money.minor_units(currency) == places


@pytest.mark.parametrize("code", ["usd", "US", "USDT", "U$D", "", None, 840])
def test_a_malformed_code_is_not_a_currency(code):
    assert not money.is_currency(code)


def test_minor_units_refuses_a_malformed_code():
    with pytest.raises(ValueError):
        money.minor_units("usd")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.125", "USD", "0.13"),  # half up, where half-even would give 0.12
        ("0.135", "USD", "0.14"),
        ("-0.125", "USD", "-0.13"),  # ties go away from zero
        ("0.124999", "USD", "0.12"),
        ("2.5", "JPY", "3"),
        ("1.0005", "KWD", "1.001"),
        ("7", "USD", "7.00"),
    ],
)
def test_quantize_rounds_half_up_to_the_minor_unit(amount, currency, expected):
    rounded = money.quantize(Decimal(amount), currency)

    assert rounded == Decimal(expected)
    assert str(rounded) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("12.4"), "USD", "12.40"),
        (Decimal("0"), "USD", "0.00"),
        (Decimal("-0.001"), "USD", "0.00"),  # no "-0.00" on the wire
        (Decimal("1E+3"), "USD", "1000.00"),  # never exponent notation
        (Decimal("1E+3"), "JPY", "1000"),
        (Decimal("0E-8"), "KWD", "0.000"),
        (5, "USD", "5.00"),
    ],
)
def test_as_string_is_the_wire_form(amount, currency, expected):
    assert money.as_string(amount, currency) == expected


@pytest.mark.parametrize("amount", [1.5, "1.50", True])
def test_quantize_refuses_what_is_not_a_decimal(amount):
    with pytest.raises(TypeError):
        money.quantize(amount, "USD")


@pytest.mark.parametrize("amount", [Decimal("NaN"), Decimal("Infinity"), Decimal("1E+40")])
def test_quantize_refuses_what_cannot_be_an_amount(amount):
    with pytest.raises(ValueError):
        money.quantize(amount, "USD")


def test_parse_reads_the_wire_form_back():
    assert money.parse("12.40", "USD") == Decimal("12.40")
    assert money.parse("1000", "JPY") == Decimal("1000")


@pytest.mark.parametrize("text", ["12.401", "abc", "NaN", "Infinity", ""])
def test_parse_refuses_what_was_not_rounded_or_is_no_amount(text):
    with pytest.raises(ValueError):
        money.parse(text, "USD")


@settings(max_examples=200, deadline=None)
@given(
    amount=st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, places=6),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_the_wire_form_has_exactly_the_minor_unit_places_and_reads_back(amount, currency):
    text = money.as_string(amount, currency)
    places = money.minor_units(currency)

    assert "E" not in text.upper()
    assert len(text.partition(".")[2]) == places
    assert money.parse(text, currency) == money.quantize(amount, currency)
    assert abs(money.quantize(amount, currency) - amount) <= Decimal(1).scaleb(-places) / 2
