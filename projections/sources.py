"""Where a view's runner takes its notifications from.

On SQLite the source polls (its recorder cannot be subscribed to in
eventsourcing 9.5.6); on PostgreSQL it waits for the NOTIFY that the library
sends with every insert.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import psycopg
from eventsourcing.persistence import ApplicationRecorder, Notification

from projections.lease import connection_options

logger = logging.getLogger("aero_auth.projections")


class Source(Protocol):
    problem: str | None

    def next_batch(self, limit: int, timeout: float) -> list[Notification]: ...

    def kick(self) -> None: ...

    def close(self) -> None: ...


class PollingSource:
    """SQLite: pull after the last position seen; ``kick`` makes the next pull immediate."""

    def __init__(self, recorder: ApplicationRecorder, after: int, interval: float) -> None:
        self._recorder = recorder
        self._after = after
        self._interval = interval
        self._kick = threading.Event()
        self.problem: str | None = None

    def next_batch(self, limit: int, timeout: float) -> list[Notification]:
        batch = self._recorder.select_notifications(
            start=self._after, limit=limit, inclusive_of_start=False
        )
        if batch:
            self._after = batch[-1].id
            return list(batch)
        self._kick.wait(min(timeout, self._interval))
        self._kick.clear()
        return []

    def kick(self) -> None:
        self._kick.set()

    def close(self) -> None:
        self._kick.set()


class ListeningSource:
    """PostgreSQL: select after the last position seen; when nothing is new, wait for the
    NOTIFY that eventsourcing sends with every insert, on a connection of its own.

    One thread, the runner's, does both: no thread hand-offs per event (the
    library's subscription takes three threads per subscriber), and whatever
    committed while a batch was being recorded comes in the next select, so
    batches grow with the load. LISTEN starts before the first select, so no
    commit goes unnoticed between a select and the wait.
    """

    def __init__(self, recorder: ApplicationRecorder, after: int) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder

        assert isinstance(recorder, PostgresApplicationRecorder)
        self._recorder = recorder
        self._after = after
        pool_kwargs = recorder.datastore.pool.kwargs
        assert isinstance(pool_kwargs, dict)
        self._connect_kwargs = connection_options(pool_kwargs)
        self._listen = psycopg.sql.SQL("LISTEN {0}").format(
            psycopg.sql.Identifier(recorder.channel_name)
        )
        self._conn: psycopg.Connection[Any] | None = None
        self.problem: str | None = None
        self._listening()

    def _listening(self) -> psycopg.Connection[Any] | None:
        """The LISTEN connection, opened again if it was lost; None while it cannot be."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                conn = psycopg.connect(**self._connect_kwargs, autocommit=True)
                conn.execute(self._listen)
            except psycopg.Error as e:
                # The pool may still work (max_connections reached, say): select on,
                # and wait out the timeout instead of a NOTIFY.
                self.problem = f"cannot LISTEN, polling instead: {type(e).__name__}: {e}"
                logger.warning(self.problem)
                return None
            self._conn, self.problem = conn, None
        return self._conn

    def next_batch(self, limit: int, timeout: float) -> list[Notification]:
        # LISTEN before the select, so that no commit between the two goes unnoticed.
        conn = self._listening()
        batch = self._recorder.select_notifications(
            start=self._after, limit=limit, inclusive_of_start=False
        )
        if not batch:
            if conn is None:
                time.sleep(timeout)
                return []
            # Any NOTIFY queued meanwhile ends the wait at once; its events are
            # then taken by the next call's select.
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                pass
            return []
        if batch:
            self._after = batch[-1].id
        return list(batch)

    def kick(self) -> None:
        """Nothing to do: every insert notifies the channel, and a wait lasts ``timeout``."""

    def close(self) -> None:
        """From the thread that takes the batches, once it has taken its last."""
        if self._conn is not None:
            self._conn.close()


def open_source(recorder: ApplicationRecorder, after: int, poll_interval: float) -> Source:
    """LISTEN on PostgreSQL; poll every ``poll_interval`` seconds on SQLite."""
    from eventsourcing.postgres import PostgresApplicationRecorder

    if isinstance(recorder, PostgresApplicationRecorder):
        return ListeningSource(recorder, after)
    return PollingSource(recorder, after, poll_interval)
