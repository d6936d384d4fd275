"""PostgreSQL through a bounded connection pool (the `ENGINE` taxi.settings
uses for a `postgres://` DATABASE_URL); see `base`."""
