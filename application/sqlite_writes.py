"""SQLite event store: writers take turns on a lock of ours, not in SQLite's busy loop.

SQLite lets one connection write at a time. A connection that finds another
process writing sleeps in SQLite's busy handler, 1, 2, 5, 10 ms and up to
100 ms, and retries; with several server processes (``aero-auth serve
--workers N``) a code step often landed in that loop. Within a process the
library's connection pool serialises writers, but a writer waiting there holds
the pool's queue, so the reads behind it waited as well.

Here an event-store write first takes this process's lock, then an exclusive
flock on a file beside the database, and only then a pooled connection: reads
go past a waiting writer, and a writer waiting on another process polls the
flock at most a millisecond apart. Both waits give up after the store's lock
timeout (``SQLITE_LOCK_TIMEOUT``), as SQLite's own would. Snapshots take the
same lock; writers outside aero-auth do not, and SQLite's busy handler still
orders them.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    OperationalError,
    StoredEvent,
)
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from infrastructure.lockfiles import open_lock_file

_LONGEST_PAUSE = 0.001


class WriterLock:
    """One writer at a time in this process, then across processes: an flock on a
    file beside ``database`` (None: an in-memory database, which no other process sees).

    The file is opened at the first write, with the database's permissions, and
    stays open until ``close``; each write takes the flock and lets it go.
    """

    def __init__(self, database: str | None, timeout: float) -> None:
        self.database = database
        self.path = None if database is None else database + ".writer-lock"
        self.timeout = timeout
        self._threads = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            raise OperationalError(f"database is locked: waited {self.timeout:g} s to write")
        try:
            if self.path is None or self.database is None:
                yield
                return
            if self._fd is None:
                self._fd = open_lock_file(self.path, self.database)
            self._flock(self._fd, deadline)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _flock(self, fd: int, deadline: float) -> None:
        pause = _LONGEST_PAUSE / 8
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OperationalError(
                        f"database is locked: another process kept writing for {self.timeout:g} s"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)


class SerialisedSnapshotsRecorder(SQLiteAggregateRecorder):
    """The library's SQLite recorder (the snapshots'), its writes under the factory's lock."""

    writer_lock: WriterLock

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.writer_lock.held():
            return super().insert_events(stored_events, **kwargs)


class SerialisedWritesRecorder(SerialisedSnapshotsRecorder, SQLiteApplicationRecorder):
    """The application recorder (the events), its writes under the same lock."""


class SerialisedWritesFactory(SQLiteFactory):
    """The library's SQLite persistence (PERSISTENCE_MODULE names this class), with one
    ``WriterLock`` for the events and the snapshots of its database."""

    application_recorder_class = SerialisedWritesRecorder
    aggregate_recorder_class = SerialisedSnapshotsRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        self.writer_lock = WriterLock(
            None if pool.is_sqlite_memory_mode else pool.db_name,
            pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
        )

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        recorder = super().aggregate_recorder(purpose)
        assert isinstance(recorder, SerialisedSnapshotsRecorder)
        recorder.writer_lock = self.writer_lock
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        recorder = super().application_recorder()
        assert isinstance(recorder, SerialisedWritesRecorder)
        recorder.writer_lock = self.writer_lock
        return recorder

    def close(self) -> None:
        self.writer_lock.close()
        super().close()
