"""Which process keeps a view up to date: the one holding the view's projector lease.

Every server process can project, and when several run (``aero-auth serve
--workers N``) each would otherwise read and decode every event for every
view, only for all but one to find, under the view's lock, that the batch is
already recorded. The lease makes one process the projector of a view; the
others stand by, read the view's position from the database, and take over
when the holder exits (the operating system or the database lets go of a
dead holder's lease).

The lease saves work; it is not what keeps each event recorded once. Two
projectors at once (a lease lost with its connection, say) stay correct:
each batch commits under the view's lock with its tracking position.
"""

from __future__ import annotations

import fcntl
import logging
import os
from typing import Any, Protocol

import psycopg

from infrastructure.lockfiles import open_lock_file
from projections.dialects import PostgresDialect, SQLiteDialect, advisory_key
from projections.store import ViewStore

logger = logging.getLogger("aero_auth.projections")


class Lease(Protocol):
    def try_acquire(self) -> bool:
        """True if this process now holds the lease (or already did)."""

    def held(self) -> bool:
        """Whether the lease is still this process's (a database session can end)."""

    def release(self) -> None: ...


# The lease's session and the views' LISTEN connections sit idle for long: both
# ends probe the connection, so that a dead holder's lease is freed in about half
# a minute, not after the kernel's two hours, and a connect gives up in 10 s.
CONNECTION_OPTIONS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "options": "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
}


def connection_options(pool_kwargs: dict[str, Any]) -> dict[str, Any]:
    """psycopg.connect arguments for a long-lived connection beside a datastore's pool."""
    kwargs = {k: v for k, v in pool_kwargs.items() if k != "row_factory"}
    return {**kwargs, **CONNECTION_OPTIONS}


class FileLease:
    """SQLite: an exclusive flock on a file beside the view's database file."""

    def __init__(self, path: str, database: str) -> None:
        self.path = path
        self.database = database
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = open_lock_file(self.path, self.database)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None  # a flock lasts as long as its descriptor

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor lets go of the flock
            self._fd = None


class AdvisoryLease:
    """PostgreSQL: a session-level advisory lock, held on a connection of its own."""

    def __init__(self, connect: Any, key: int) -> None:
        self._connect = connect
        self.key = key
        # One connection, kept while standing by too, so a retry is a query only.
        self._conn: psycopg.Connection[Any] | None = None
        self._holding = False

    def try_acquire(self) -> bool:
        if self._holding:
            return True
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        try:
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except BaseException:
            self._discard()
            raise
        self._holding = bool(row and row[0])
        return self._holding

    def held(self) -> bool:
        if not self._holding or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            # The session is gone, and the lock with it: another process may hold it now.
            self._discard()
            return False
        return True

    def release(self) -> None:
        self._discard()  # the session ends, and its advisory locks with it

    def _discard(self) -> None:
        conn, self._conn, self._holding = self._conn, None, False
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                logger.warning("closing the projector lease's connection failed", exc_info=True)


def projector_lease(view: ViewStore) -> Lease:
    dialect = view.dialect
    if isinstance(dialect, SQLiteDialect):
        return FileLease(f"{dialect.path}.projector.lock", dialect.path)
    if isinstance(dialect, PostgresDialect):
        # The connection arguments of the view's pool (eventsourcing passes a dict).
        pool_kwargs = dialect.datastore.pool.kwargs
        assert isinstance(pool_kwargs, dict)
        kwargs = connection_options(pool_kwargs)

        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(**kwargs, autocommit=True)

        return AdvisoryLease(connect, advisory_key(f"aero-auth/{view.base}/projector"))
    raise TypeError(f"no projector lease for {type(dialect).__name__}")


def lease_holder(view: ViewStore, lease: Lease | None = None) -> str | None:
    """Who holds the view's projector lease: ``this process`` (``lease`` is held), another
    process (named as far as the database knows it), or None: nobody projects the view.

    SQLite: a shared flock on the lease file is granted only while nobody holds it
    exclusively, and is let go at once (a runner that tries meanwhile tries again a
    standby interval later). PostgreSQL: the lock's row in pg_locks.
    """
    if lease is not None and lease.held():
        return "this process"
    dialect = view.dialect
    if isinstance(dialect, SQLiteDialect):
        fd = open_lock_file(f"{dialect.path}.projector.lock", dialect.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return "another process"
        finally:
            os.close(fd)  # and with it the shared lock, if it was granted
        return None
    if isinstance(dialect, PostgresDialect):
        key = advisory_key(f"aero-auth/{view.base}/projector") & 0xFFFF_FFFF_FFFF_FFFF
        rows = view.query(
            "SELECT l.pid, a.client_addr::text AS addr FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = ? AND l.objid::bigint = ? AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (key >> 32, key & 0xFFFF_FFFF),
        )
        if not rows:
            return None
        return f"PostgreSQL backend {rows[0]['pid']} ({rows[0]['addr'] or 'local'})"
    raise TypeError(f"no projector lease for {type(dialect).__name__}")
