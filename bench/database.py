"""The database's side of a benchmark run: on PostgreSQL, the most
connections the stack held at once (`pg_stat_activity`, sampled through the
run) beside what its pools allow. Each process borrows from a pool of at most
DB_POOL_MAX (taxi.settings); before the pools, every request thread of a web
process kept a connection of its own and load ran PostgreSQL out of them.
"""

from __future__ import annotations

import os
import threading

import dj_database_url

SAMPLE_EVERY_S = 0.05
# taxi.settings' default, for a stack started without DB_POOL_MAX.
DEFAULT_POOL_MAX = 20


def pool_max(env: dict[str, str]) -> int:
    return int(env.get("DB_POOL_MAX") or DEFAULT_POOL_MAX)


class ConnectionWatch:
    """Counts the connections to the stack's database every SAMPLE_EVERY_S on
    a thread of its own, from `start()` to `stop()`; does nothing on SQLite."""

    def __init__(self, database_url: str | None) -> None:
        config = dj_database_url.parse(database_url) if database_url else {}
        self.postgresql = config.get("ENGINE", "").endswith("postgresql")
        self.database = config.get("NAME")
        self._config = config
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ConnectionWatch:
        if self.postgresql:
            import psycopg

            observer = psycopg.connect(
                dbname=self.database,
                user=self._config.get("USER") or None,
                password=self._config.get("PASSWORD") or None,
                host=self._config.get("HOST") or None,
                port=self._config.get("PORT") or None,
                autocommit=True,
            )
            self._thread = threading.Thread(target=self._run, args=(observer,), daemon=True)
            self._thread.start()
        return self

    def _run(self, observer) -> None:
        try:
            while not self._stop.is_set():
                (count,) = observer.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self.database],
                ).fetchone()
                self.peak = max(self.peak, count)
                self.samples += 1
                self._stop.wait(SAMPLE_EVERY_S)
        finally:
            observer.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def summary(self, *, processes: int, env: dict[str, str]) -> dict:
        """What the run used beside what its `processes` pools allow."""
        if not self.postgresql:
            return {"engine": "sqlite"}
        per_process = pool_max(env)
        return {
            "engine": "postgresql",
            "peak_connections": self.peak,
            "samples": self.samples,
            "pool_max_per_process": per_process,
            "processes": processes,
            "pools_allow": per_process * processes,
        }


def describe_summary(summary: dict) -> str:
    if summary["engine"] != "postgresql":
        return "database: SQLite (no pool, no connection limit to watch)"
    return (
        f"database: PostgreSQL, at most {summary['peak_connections']} connections at once "
        f"({summary['samples']} samples of pg_stat_activity); pools allow "
        f"{summary['pool_max_per_process']} per process x {summary['processes']} "
        f"processes = {summary['pools_allow']}"
    )


def database_url_from_environment() -> str | None:
    """The benchmark's default database: DATABASE_URL, as every process reads it."""
    return os.environ.get("DATABASE_URL") or None
