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

from projections.store import PostgresStore, SQLiteStore, ViewStore, _advisory_key

logger = logging.getLogger("aero_auth.projections")


class Lease(Protocol):
    def try_acquire(self) -> bool:
        """True if this process now holds the lease (or already did)."""

    def release(self) -> None: ...


class FileLease:
    """SQLite: an exclusive flock on a file beside the view's database file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor lets go of the flock
            self._fd = None


class AdvisoryLease:
    """PostgreSQL: a session-level advisory lock, held on a connection of its own."""

    def __init__(self, connect: Any, key: int) -> None:
        self._connect = connect
        self.key = key
        self._conn: psycopg.Connection[Any] | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = self._connect()
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except BaseException:
            conn.close()
            raise
        if not row or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()  # the session ends, and its advisory locks with it
            except psycopg.Error:
                logger.warning("closing the projector lease's connection failed", exc_info=True)


def projector_lease(view: ViewStore) -> Lease:
    if isinstance(view, SQLiteStore):
        return FileLease(f"{view.path}.projector.lock")
    if isinstance(view, PostgresStore):
        # The connection arguments of the view's pool (eventsourcing passes a dict).
        pool_kwargs = view.datastore.pool.kwargs
        assert isinstance(pool_kwargs, dict)
        kwargs = {k: v for k, v in pool_kwargs.items() if k != "row_factory"}

        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(**kwargs, autocommit=True)

        return AdvisoryLease(connect, _advisory_key(f"aero-auth/{view.base}/projector"))
    raise TypeError(f"no projector lease for {type(view).__name__}")
