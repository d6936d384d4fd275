"""Django's PostgreSQL backend, with its psycopg pool's refusal in the
project's error family.

Every process (web, worker, beat) takes its connections from one pool of at
most DB_POOL_MAX (taxi.settings). Under daphne each request runs on a thread
of its own; with persistent connections each thread kept one, and ordinary
load took PostgreSQL past `max_connections`: log-ins answered 500 ("too many
clients already"). With the pool a request borrows a connection and gives it
back when it ends, and when none is free it waits up to DB_POOL_TIMEOUT_S.

If none comes free in that time (or none can be made: PostgreSQL down or
full), the pool raises `PoolTimeout`. Here that becomes `DatabaseUnavailable`,
which is both the protocol's `unavailable` (REST answers 503, the socket an
`error` frame, as for Redis) and a database `OperationalError` (tasks retry
it, django-celery-beat logs it and carries on).
"""

import logging

from django.db.backends.postgresql import base
from django.db.utils import OperationalError
from psycopg_pool import PoolTimeout

from trips.errors import Unavailable

logger = logging.getLogger(__name__)


class DatabaseUnavailable(Unavailable, OperationalError):
    default_detail = "The database is busy right now; try again shortly."


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        try:
            return super().get_new_connection(conn_params)
        except PoolTimeout as exc:
            logger.warning(
                "db.pool_exhausted",
                extra={"pool_max": self.pool.max_size, "waited_s": self.pool.timeout},
            )
            raise DatabaseUnavailable() from exc
