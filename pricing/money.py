"""Money: a `Decimal` amount in an ISO 4217 currency, rounded in one place.

Floats cannot hold 12.40 exactly and their sums drift, so amounts are
`Decimal` from the rates to the wire, where they travel as decimal strings
("12.40") beside their currency (PROTOCOL.md, "Products, vehicles and
prices"). How many places a currency has, and how a figure is rounded to
them, is decided here and nowhere else, so a quote, a trip's fare and a
receipt can never disagree by a cent.
"""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not the usual hundredth.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
        "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
FOUR_DECIMAL_CURRENCIES = frozenset({"CLF", "UYW"})  # units of account, for completeness
DEFAULT_MINOR_UNITS = 2

_CODE = re.compile(r"[A-Z]{3}")


def is_currency(code: object) -> bool:
    """Whether `code` has the shape of an ISO 4217 code (three upper-case letters)."""
    return isinstance(code, str) and _CODE.fullmatch(code) is not None


def minor_units(currency: str) -> int:
    """How many decimal places amounts in `currency` carry."""
    if not is_currency(currency):
        raise ValueError(f"not an ISO 4217 currency code: {currency!r}")
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in THREE_DECIMAL_CURRENCIES:
        return 3
    if currency in FOUR_DECIMAL_CURRENCIES:
        return 4
    return DEFAULT_MINOR_UNITS


def quantize(amount: Decimal | int, currency: str) -> Decimal:
    """`amount` rounded half up (away from zero on a tie) to the currency's minor unit."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        # A float has already lost the exact figure; refuse it rather than round a guess.
        raise TypeError(f"money must be a Decimal, got {type(amount).__name__}")
    amount = Decimal(amount)
    if not amount.is_finite():
        raise ValueError(f"money must be finite, got {amount}")
    step = Decimal(1).scaleb(-minor_units(currency))
    try:
        rounded = amount.quantize(step, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError(f"amount too large to hold: {amount}") from None
    # -0.00 is zero; it must not reach the wire with a sign.
    return rounded.copy_abs() if rounded.is_zero() else rounded


def as_string(amount: Decimal | int, currency: str) -> str:
    """The wire form: exactly the minor-unit number of places, never an exponent."""
    return format(quantize(amount, currency), "f")


def parse(text: str, currency: str) -> Decimal:
    """Read a wire amount back, refusing one with more places than the currency has
    (that would be a figure somebody else rounded, or not at all)."""
    if not isinstance(text, str):
        raise TypeError(f"a wire amount is a string, got {type(text).__name__}")
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {text!r}") from None
    rounded = quantize(amount, currency)
    if rounded != amount:
        raise ValueError(f"{text!r} has more places than {currency} allows")
    return rounded
