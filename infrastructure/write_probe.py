"""Whether the event store accepts a write, without adding an event.

Each probe commits one row of a table of its own, ``aero_heartbeat``, so that
what is tested is what a login needs: the write lock, room for the write-ahead
log, a database that is not read-only. A connection of its own per probe, with
timeouts, so a probe never waits behind the application's pool.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg

HEARTBEAT_DDL = (
    "CREATE TABLE IF NOT EXISTS aero_heartbeat (id INTEGER PRIMARY KEY, beat TEXT NOT NULL)"
)
HEARTBEAT_UPSERT = (
    "INSERT INTO aero_heartbeat (id, beat) VALUES (1, {p}) "
    "ON CONFLICT (id) DO UPDATE SET beat = excluded.beat"
)


class SQLiteWriteProbe:
    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout

    def __call__(self) -> None:
        if not self.path.exists():
            raise FileNotFoundError(f"no event store at {self.path}")
        connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(HEARTBEAT_DDL)
            connection.execute(HEARTBEAT_UPSERT.format(p="?"), (_now(),))
            connection.execute("COMMIT")
        finally:
            connection.close()


class PostgresWriteProbe:
    def __init__(self, connect_kwargs: dict[str, object], timeout: float) -> None:
        self.connect_kwargs = connect_kwargs
        self.timeout = timeout

    def __call__(self) -> None:
        milliseconds = max(1, int(self.timeout * 1000))
        with psycopg.connect(
            **self.connect_kwargs,  # type: ignore[arg-type]
            connect_timeout=max(2, int(self.timeout + 0.999)),  # libpq's least
            options=f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}",
            autocommit=True,
        ) as connection:
            try:
                connection.execute(HEARTBEAT_DDL)
            except psycopg.errors.UniqueViolation:
                pass  # another process created it at the same moment
            connection.execute(HEARTBEAT_UPSERT.format(p="%s"), (_now(),))


def _now() -> str:
    return datetime.now(UTC).isoformat()
