"""The catalogue as pricing reads it: the active products, in order, each
with its current rate card.

Every quote and every trip request prices against it, and it changes only
when staff edit a product, so each process keeps a copy instead of reading
two tables per request. A copy is used while

- the catalogue's generation in Redis (`keys.CATALOGUE_GENERATION`) is the
  one it was read under: saving or deleting a product or a rate card
  through the ORM (the admin does) replaces the generation, once at once
  and once more when the transaction commits, so every process reads the
  change on its next request. A generation that Redis lost is replaced by
  a new one on the next read, so a flushed or failed-over Redis never
  keeps a stale copy alive;
- and it is younger than MAX_AGE_S: an edit that bypasses the ORM's save
  (SQL, `QuerySet.update`) sends no signal, and is read within that time.

Without Redis every request reads the database, as before the copy.
"""

import logging
import secrets
import time
from dataclasses import dataclass

from django.db import transaction
from redis.exceptions import RedisError

from dispatch.scripts import Lua
from pricing import keys
from pricing.models import Product, RateCard
from taxi.infra.redis import get_redis

logger = logging.getLogger(__name__)

MAX_AGE_S = 30.0
_clock = time.monotonic

Priced = tuple[Product, RateCard]


@dataclass(frozen=True)
class _Copy:
    generation: str
    read_at: float
    entries: tuple[Priced, ...]


_copy: _Copy | None = None

# KEYS: the generation. ARGV: a new token. The current generation, which is
# the new token when there was none (SET's NX with GET needs Redis 7).
GENERATION = Lua("""
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
""")


def priced(code: str | None = None) -> list[Priced]:
    """The active products (or the one named, if active) with their current
    rate cards, in catalogue order. A product without a rate card is left out."""
    entries = _current()
    if code is None:
        return list(entries)
    return [entry for entry in entries if entry[0].code == code]


def changed() -> None:
    """A product or a rate card was saved or deleted: this process drops its
    copy, and every process reads the catalogue again on its next request."""
    global _copy
    _copy = None
    _replace_generation()
    transaction.on_commit(_replace_generation)


def _current() -> tuple[Priced, ...]:
    global _copy
    try:
        generation = _generation()
    except RedisError as exc:
        logger.warning(
            "pricing.catalogue_generation_unavailable", extra={"error": type(exc).__name__}
        )
        return _read()
    copy = _copy
    now = _clock()
    if copy is not None and copy.generation == generation and now - copy.read_at < MAX_AGE_S:
        return copy.entries
    entries = _read()
    _copy = _Copy(generation=generation, read_at=now, entries=entries)
    return entries


def _read() -> tuple[Priced, ...]:
    """Two queries, however many products."""
    products = list(Product.objects.filter(active=True).order_by("position", "code"))
    latest: dict[int, RateCard] = {}
    for card in RateCard.objects.filter(product__in=products).order_by("-version"):
        latest.setdefault(card.product_id, card)
    return tuple((product, latest[product.pk]) for product in products if product.pk in latest)


def _generation() -> str:
    """The current generation; one round trip, which also starts a new one
    when there is none."""
    return GENERATION(get_redis(), [keys.CATALOGUE_GENERATION], [secrets.token_hex(8)])


def _replace_generation() -> None:
    try:
        get_redis().set(keys.CATALOGUE_GENERATION, secrets.token_hex(8))
    except RedisError as exc:
        # Other processes keep their copies until MAX_AGE_S.
        logger.warning(
            "pricing.catalogue_generation_not_replaced", extra={"error": type(exc).__name__}
        )
