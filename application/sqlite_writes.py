"""SQLite event store: writers queue on a lock that wakes them, not in SQLite's busy loop.

SQLite lets one connection write at a time. A connection that finds another
process writing sleeps in SQLite's busy handler, 1, 2, 5, 10 ms and longer,
and retries; with several server processes (``aero-auth serve --workers N``) a
code step often lands in that loop. Within a process the library's connection
pool serialises writers, but a writer waiting there holds the pool's queue, so
the reads behind it wait as well.

Here a write first takes this process's lock, then an exclusive flock on a file
beside the database: a waiting writer sleeps in the kernel and wakes the moment
the other one commits, and it waits before asking the pool for a connection,
so reads go past it. The busy handler stays for writers that do not take the
flock (the command line, another tool); it no longer paces our own processes.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore


class WriterLock:
    """One writer at a time in this process, then across processes (flock on ``path``).

    The file is opened for each write and closed after it, which lets the flock
    go: a few microseconds beside a commit's fsync, and no descriptor outlives
    the application.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._threads = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self.path is None:  # an in-memory database has no other process
                yield
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)


class SerialisedWritesRecorder(SQLiteApplicationRecorder):
    """The library's SQLite application recorder, its writes under a ``WriterLock``."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        pool = datastore.pool
        self.writer_lock = WriterLock(
            None if pool.is_sqlite_memory_mode else pool.db_name + ".writer-lock"
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.writer_lock.held():
            return super().insert_events(stored_events, **kwargs)
