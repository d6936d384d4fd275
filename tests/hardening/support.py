"""Shared by the hardening tests: Hypothesis settings, what "nothing changed"
means, and strategies for values an endpoint must refuse."""

import json
import math
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dispatch import keys
from dispatch.models import Offer
from notifications.models import Device
from taxi.infra.redis import get_redis
from trips.models import Trip, User
from trips.serializers import MAX_LAT, MAX_LNG

# Examples per property; HARDENING_EXAMPLES=1000 for a deeper run.
EXAMPLES = int(os.environ.get("HARDENING_EXAMPLES", "60"))


def fuzz_settings(max_examples: int = EXAMPLES) -> settings:
    """No deadline: an example is a real request against the real database
    and Redis, whose timing is not what is under test. Function-scoped
    fixtures are shared by all examples of a test on purpose: every example
    must leave the database as it found it (which each test asserts), so
    there is nothing to rebuild between them."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


# --- what must not change ---------------------------------------------------------


def row_counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "trips": Trip.objects.count(),
        "offers": Offer.objects.count(),
        "devices": Device.objects.count(),
    }


def presence(user_id: int) -> tuple:
    """What Redis holds about a driver: their hash and their place in the
    available set (both empty for a driver never seen online)."""
    redis = get_redis()
    return redis.hgetall(keys.driver(user_id)), redis.zscore(keys.AVAILABLE, user_id)


def rows() -> dict[str, list]:
    """Every trip and offer row, every column: what a refused call leaves alone."""
    return {
        "trips": list(Trip.objects.order_by("pk").values()),
        "offers": list(Offer.objects.order_by("pk").values()),
    }


# --- values to refuse -------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
# Any JSON-ish value, nested a little; NaN and infinities become the
# non-standard literals `NaN`/`Infinity` when encoded.
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
containers = st.one_of(
    st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=8), json_values, max_size=3)
)
# What a text field (trips.fields.TextField) refuses whatever the length.
not_text = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), containers)


def repeated(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """A long string, cheaply: one character many times (not a space, which
    a trimming field would read as blank)."""
    return st.builds(
        lambda c, n: c * n,
        st.characters().filter(lambda c: not c.isspace()),
        st.integers(min_size, max_size),
    )


def bad_text(max_length: int) -> st.SearchStrategy[object]:
    """Values a required CharField(max_length) refuses: not text, blank,
    too long, or holding a NUL or a lone surrogate."""
    return st.one_of(
        not_text,
        st.sampled_from(["", " ", "\t\n "]),
        repeated(max_length + 1, max_length * 40),
        st.text(max_size=10).map(lambda s: s + "\x00"),
        st.text(max_size=10).map(lambda s: s + "\ud800"),
    )


def bad_number(low: float, high: float, *, nullable: bool = False) -> st.SearchStrategy[object]:
    """Values a BoundedFloatField(low, high) refuses: not a number (strings
    that read as numbers included), not finite, or out of range."""
    out_of_range = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(
            lambda x: not (math.isfinite(x) and low <= x <= high)
        ),
        st.integers(min_value=-(10**40), max_value=10**40).filter(lambda x: not low <= x <= high),
        # Integers too big for a float, up to the longest the JSON parser reads.
        st.builds(lambda n, sign: sign * 10**n, st.integers(309, 4299), st.sampled_from([1, -1])),
    )
    not_numbers = st.one_of(
        st.booleans(), containers, st.text(max_size=12), st.floats().map(str), st.just("")
    )
    strategy = st.one_of(out_of_range, not_numbers)
    return strategy if nullable else st.one_of(st.none(), strategy)


def bad_choice(choices) -> st.SearchStrategy[object]:
    choices = set(choices)
    return st.one_of(
        not_text, st.integers(), st.text(max_size=20).filter(lambda s: s not in choices)
    )


def encode(body: object) -> bytes:
    """JSON as a careless client writes it: NaN and infinities as bare
    literals, lone surrogates as escapes."""
    return json.dumps(body, allow_nan=True).encode()


@st.composite
def broken(draw, valid: dict, breakers: dict, required: set) -> dict:
    """`valid` with at least one field broken (a refused value, or a required
    field left out), and maybe some unknown fields added."""
    body = dict(valid)
    names = draw(st.lists(st.sampled_from(sorted(breakers)), min_size=1, unique=True))
    for name in names:
        if name in required and draw(st.booleans()):
            body.pop(name)
        else:
            body[name] = draw(breakers[name])
    extra = draw(
        st.dictionaries(
            st.text(max_size=12).filter(lambda key: key not in valid), json_values, max_size=3
        )
    )
    return {**body, **extra}


# Values a coordinate field refuses, and per trip-request field what it refuses.
lat = bad_number(-MAX_LAT, MAX_LAT)
lng = bad_number(-MAX_LNG, MAX_LNG)
TRIP_BREAKERS = {
    "pick_up_address": bad_text(255),
    "pick_up_lat": lat,
    "pick_up_lng": lng,
    "drop_off_address": bad_text(255),
    "drop_off_lat": bad_number(-MAX_LAT, MAX_LAT, nullable=True),
    "drop_off_lng": bad_number(-MAX_LNG, MAX_LNG, nullable=True),
}
