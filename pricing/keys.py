"""Every Redis key pricing uses, and how long each lives (STYLE.md rule 10).

Like presence, surge is something Redis holds and a refresh rebuilds: losing
every key here costs a few minutes of prices at 1.0, never a wrong trip (a
quote or a trip keeps the multiplier it was priced with).

    demand(minute) hash per minute (unix time // 60): H3 cell -> ride requests
                   made in that cell during that minute. Lives
                   demand_ttl_s() past its last write, long enough for every
                   refresh whose window still reaches back to it.
    MULTIPLIERS    hash: H3 cell -> published multiplier, one decimal ("1.5");
                   only cells above 1.0, so a cell missing is a cell at 1.0.
                   What quotes read (`pricing.surge.multiplier_at`).
    CELL_COUNTS    hash: H3 cell -> "supply demand", the cell's own available
                   drivers and recent requests, for the staff map only (at
                   most pricing.surge.MAP_MAX_CELLS cells).
    UPDATED_AT     string: unix time of the refresh that wrote the two hashes.

    CATALOGUE_GENERATION
                   string: a random token, replaced whenever a product or a
                   rate card is saved (`pricing.catalogue`); processes keep
                   their copy of the catalogue while it is unchanged. No TTL:
                   one short string, and a lost one is simply replaced.

The refresh replaces MULTIPLIERS, CELL_COUNTS and UPDATED_AT together, in one
script, and gives all three published_ttl_s(): should beat stop, surge falls
back to 1.0 everywhere within that time instead of freezing at its last value.
"""

from django.conf import settings

PREFIX = "taxi:pricing:surge:"

MULTIPLIERS = PREFIX + "multipliers"
CELL_COUNTS = PREFIX + "cell_counts"
UPDATED_AT = PREFIX + "updated_at"

CATALOGUE_GENERATION = "taxi:pricing:catalogue:generation"

# Requests are counted in buckets of this many seconds.
DEMAND_BUCKET_S = 60
# What was published outlives the refresh that wrote it by this many
# refresh intervals (and by this many seconds at least): a late or skipped
# run or two keeps surge, a stopped beat drops it.
PUBLISHED_TTL_REFRESHES = 3
PUBLISHED_MIN_TTL_S = 90


def demand(minute: int) -> str:
    """`minute` as unix time // DEMAND_BUCKET_S."""
    return f"{PREFIX}demand:{minute}"


def demand_ttl_s() -> int:
    """A bucket is read by refreshes until the window has passed its end."""
    return int(settings.SURGE_DEMAND_WINDOW_S) + 2 * DEMAND_BUCKET_S


def published_ttl_s() -> float:
    return max(float(PUBLISHED_MIN_TTL_S), PUBLISHED_TTL_REFRESHES * settings.SURGE_REFRESH_S)
