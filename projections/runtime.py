"""Running the views: catch-up threads, the worker loop, waiting for a position, rebuilds.

Each view has a runner thread that takes notifications from a source in
batches and records each batch, with its tracking position, in one
transaction. On SQLite the source polls (its recorder cannot be subscribed to
in eventsourcing 9.5.6); on PostgreSQL it is the library's LISTEN/NOTIFY
subscription. An event a view cannot process stops that view, after
committing the events before it, with an error naming the position.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from math import inf
from time import monotonic
from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Mapper,
    Notification,
    OperationalError,
)

from domain.rules import username_key
from projections.api import (
    TWO_FACTOR_FILTERS,
    AuditEntry,
    AuditQuery,
    ChainReport,
    Compliance,
    InvalidCursorError,
    Page,
    ReadModels,
    UserRow,
)
from projections.audit import AuditProjection, AuditView, export, verify_chain
from projections.directory import DirectoryProjection, DirectoryView
from projections.lease import Lease, connection_options, projector_lease
from projections.store import ViewStore, Writer, sibling_path

logger = logging.getLogger("aero_auth.projections")

# Worth retrying: the database was unreachable, busy or restarting.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

ProgressCallback = Callable[[int, int], None]
# Positions between refreshes of the planner's statistics (ViewStore.optimize).
OPTIMIZE_EVERY = 50_000
# Under load, at most one batch per view this often (ViewRunner._between_batches).
BATCH_INTERVAL = 0.05


class Projection(Protocol):
    view: str

    def process(self, writer: Any, notification: Notification, mapper: Mapper[UUID]) -> None: ...


PROJECTIONS: dict[str, Callable[[], Projection]] = {
    "audit": AuditProjection,
    "directory": DirectoryProjection,
}


class UnprocessableEventError(Exception):
    def __init__(self, view: str, position: int, topic: str, cause: BaseException) -> None:
        super().__init__(
            f"{view} view stopped: cannot process the event at position {position} "
            f"({topic}): {type(cause).__name__}: {cause}"
        )
        self.view = view
        self.position = position


# ----- processing -----


def apply(
    view: str,
    projection: Projection,
    mapper: Mapper[UUID],
    writer: Writer,
    notifications: Sequence[Notification],
    done: int,
) -> int:
    """Process the notifications after ``done`` into ``writer``; the last position processed."""
    position = done
    for notification in notifications:
        if notification.id <= done:
            continue
        try:
            projection.process(writer, notification, mapper)
        except TRANSIENT_ERRORS:
            raise
        except Exception as e:
            raise UnprocessableEventError(view, notification.id, notification.topic, e) from e
        position = notification.id
    writer.flush()
    return position


def process_batch(
    view: ViewStore,
    projection: Projection,
    mapper: Mapper[UUID],
    notifications: Sequence[Notification],
    slot: str | None = None,
) -> int:
    """One transaction: rows and tracking position commit together, or neither does."""
    with view.transaction() as tx:
        target = slot or tx.active
        done = tx.position(target)
        position = apply(
            view.name, projection, mapper, view.writer(tx, target), notifications, done
        )
        if position > done:
            tx.track(target, position)
        return position


# ----- sources of notifications -----


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


# ----- runners -----


class ViewRunner:
    """Feeds one view from its source until stopped or an event cannot be processed."""

    def __init__(
        self,
        view: ViewStore,
        projection: Projection,
        mapper: Mapper[UUID],
        source: Callable[[int], Source],
        batch_size: int,
        position: int,
        on_progress: Callable[[], None],
        lease: Lease | None = None,
        standby_interval: float = 1.0,
        batch_interval: float = 0.0,
    ) -> None:
        self.view = view
        self.projection = projection
        self.mapper = mapper
        self.batch_size = batch_size
        self.position = position
        self.error: str | None = None
        self.problem: str | None = None
        self._optimized_at = position
        self._on_progress = on_progress
        self._lease = lease
        self._standby_interval = standby_interval
        self._batch_interval = batch_interval
        # Set by kick() and stop(): ends a wait between batches at once.
        self._hurry = threading.Event()
        self._open_source = source
        # None while another process holds the view's lease and this one stands by.
        self.source: Source | None = None if lease is not None else source(position)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"aero-{view.name}-projection", daemon=True
        )

    @property
    def stopped(self) -> bool:
        return self.error is not None

    def start(self) -> None:
        self._thread.start()

    @property
    def projecting(self) -> bool:
        """False while another process projects this view and this one stands by."""
        return self.source is not None

    def kick(self) -> None:
        self._hurry.set()
        if self.source is not None:
            self.source.kick()

    def stop(self) -> None:
        self._stop.set()
        self._hurry.set()
        if self.source is not None:
            self.source.kick()  # a polling source's wait ends now; the thread closes it

    def join(self) -> None:
        self._thread.join(timeout=10)

    def _take_over(self) -> bool:
        """Stand by until this process holds the view's lease; False if stopped first."""
        assert self._lease is not None
        delay = self._standby_interval
        while not self._stop.is_set():
            try:
                if self._lease.try_acquire():
                    # The last holder moved the view on: start where it stopped.
                    self.position = max(self.position, self.view.position())
                    self.source = self._open_source(self.position)
                    if self._stop.is_set():
                        self.source.close()
                        return False
                    logger.info("%s view: this process projects it now", self.view.name)
                    self._on_progress()
                    return True
                self.problem, delay = None, self._standby_interval
            except TRANSIENT_ERRORS as e:
                self.problem = f"{self.view.name} view: cannot take the projector lease: {e}"
                logger.warning(self.problem)
                delay = min(delay * 2, 5.0)
            self._stop.wait(delay)
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.source is None and not self._take_over():
                    return
                try:
                    lost = self._project()
                finally:
                    assert self.source is not None
                    self.source.close()
                if not lost:
                    return
                logger.warning("%s view: lost the projector lease; standing by", self.view.name)
                self.source = None
        except Exception as e:
            # Not an event it cannot process (that stops in _project): say so, or the
            # runner would look like one standing by, with nobody projecting.
            self.error = f"{self.view.name} view stopped: {type(e).__name__}: {e}"
            logger.exception(self.error)
            self._on_progress()
        finally:
            # Stopped, or stopped by an event it cannot process: another process may
            # take the view over (and, on such an event, report it in its turn).
            if self._lease is not None:
                self._lease.release()

    def _project(self) -> bool:
        """Record batches until stopped; True if the lease was lost meanwhile."""
        assert self.source is not None
        pending: list[Notification] = []
        delay = 0.1
        checked = monotonic()
        recorded_at = -inf
        while not self._stop.is_set():
            try:
                if self._lease is not None and monotonic() - checked >= self._standby_interval:
                    checked = monotonic()
                    if not self._lease.held():
                        return True
                if not pending:
                    self._between_batches(recorded_at)
                    pending = self.source.next_batch(self.batch_size, timeout=0.1)
                if pending:
                    started = monotonic()
                    self._advance(process_batch(self.view, self.projection, self.mapper, pending))
                    # A full batch means more is waiting: no pause before the next.
                    recorded_at = started if len(pending) < self.batch_size else -inf
                    pending = []
                self.problem, delay = None, 0.1
            except UnprocessableEventError as e:
                self._fail_at(e, pending)
                return False
            except TRANSIENT_ERRORS as e:
                self.problem = f"{self.view.name} view: database error, retrying: {e}"
                logger.warning(self.problem)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception as e:
                self.error = (
                    f"{self.view.name} view stopped after position {self.position}: "
                    f"{type(e).__name__}: {e}"
                )
                logger.exception(self.error)
                self._on_progress()
                return False
        return False

    def _between_batches(self, recorded_at: float) -> None:
        """Under load, at most one batch per ``batch_interval``.

        Each batch is a transaction of the view, a handful of round trips on
        PostgreSQL whatever its size; with one per commit, each login paid
        for two of them per view. Waiting out the rest of the interval
        since the last batch began lets the commits of that interval share
        one. An idle view waits for nothing: its last batch is long past. A
        kick (a request waiting to read its own write) or a stop ends the wait.
        """
        rest = recorded_at + self._batch_interval - monotonic()
        if rest > 0:
            self._hurry.wait(rest)
        self._hurry.clear()

    def _fail_at(self, error: UnprocessableEventError, batch: list[Notification]) -> None:
        # Keep what precedes the bad event, so the view stops exactly before it.
        before = [n for n in batch if n.id < error.position]
        try:
            if before:
                self._advance(process_batch(self.view, self.projection, self.mapper, before))
        except Exception:
            logger.exception("%s view: cannot record the events before it", self.view.name)
        self.error = str(error)
        logger.error(self.error)
        self._on_progress()

    def _advance(self, position: int) -> None:
        self.position = max(self.position, position)
        self._on_progress()
        if self.position - self._optimized_at >= OPTIMIZE_EVERY:
            self.view.optimize()
            self._optimized_at = self.position


# ----- the views of one store -----


@dataclass
class Views:
    audit: AuditView
    directory: DirectoryView
    _close: Callable[[], None] = field(repr=False)

    def all(self) -> dict[str, ViewStore]:
        return {"audit": self.audit, "directory": self.directory}

    def ensure(self) -> None:
        for view in self.all().values():
            view.ensure()

    def close(self) -> None:
        self._close()


def open_views(app: Application[Any], *, postgres_pool_size: int = 4) -> Views:
    """The views of ``app``'s store: its PostgreSQL database, or files beside its SQLite file."""
    from eventsourcing.postgres import PostgresDatastore, PostgresFactory
    from eventsourcing.sqlite import SQLiteFactory

    from projections.audit_store import PostgresAuditView
    from projections.directory_store import PostgresDirectoryView

    factory, env = app.factory, app.factory.env
    if isinstance(factory, PostgresFactory):
        datastore = PostgresDatastore(
            dbname=env.get("POSTGRES_DBNAME") or "",
            host=env.get("POSTGRES_HOST") or "",
            port=env.get("POSTGRES_PORT") or "5432",
            user=env.get("POSTGRES_USER") or "",
            password=env.get("POSTGRES_PASSWORD") or "",
            connect_timeout=float(env.get("POSTGRES_CONNECT_TIMEOUT") or 10),
            idle_in_transaction_session_timeout=60,
            pool_size=postgres_pool_size,
            max_overflow=postgres_pool_size * 2,
        )
        return Views(
            PostgresAuditView(datastore, app.name),
            PostgresDirectoryView(datastore, app.name),
            datastore.close,
        )
    if isinstance(factory, SQLiteFactory):
        dbname = env.get("SQLITE_DBNAME") or ""
        if not dbname or ":memory:" in dbname or "mode=memory" in dbname:
            raise ValueError("the read models need a file-based SQLite event store")
        return sqlite_views(dbname, app.name)
    raise TypeError(f"no read models for {type(factory).__name__}")


def sqlite_views(event_store: str, upstream: str) -> Views:
    """Views in SQLite files beside ``event_store`` (aero.db -> aero.audit.db, ...).

    Also how investigations build copies of the views in files of their own.
    """
    from projections.audit_store import SQLiteAuditView
    from projections.directory_store import SQLiteDirectoryView

    audit = SQLiteAuditView(sibling_path(event_store, "audit"), upstream)
    directory = SQLiteDirectoryView(sibling_path(event_store, "directory"), upstream)

    def close() -> None:
        audit.close()
        directory.close()

    return Views(audit, directory, close)


# ----- cursors -----


def encode_cursor(kind: str, after: int | str) -> str:
    raw = json.dumps({"k": kind, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, expected: type) -> Any:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursorError("the cursor is not one this service issued") from None
    if not isinstance(data, dict) or data.get("k") != kind:
        raise InvalidCursorError("the cursor is not one this service issued")
    after = data.get("a")
    if not isinstance(after, expected) or isinstance(after, bool):
        raise InvalidCursorError("the cursor is not one this service issued")
    if isinstance(after, int) and not 0 <= after < 2**63:
        # Positions are BIGINTs: a larger number would fail in the database, a 500.
        raise InvalidCursorError("the cursor is not one this service issued")
    return after


# ----- the runtime -----


class LiveReadModels:
    """The read models of one process (projections.api.ReadModels).

    With ``process=True`` (the default) this process keeps the views up to
    date itself; with ``process=False`` it only reads, and a separate
    ``aero-auth project`` worker (``run_projector``) keeps them up to date.
    Of several processes that may project, one per view does, the holder of
    the view's lease (projections/lease.py); the others stand by and read the
    view's position from the database until they take over. Even two at once
    stay correct: the views' locks and tracking keep each event recorded once.
    """

    def __init__(
        self,
        app: Application[Any],
        views: Views,
        *,
        process: bool = True,
        batch_size: int = 500,
        poll_interval: float = 0.05,
        standby_interval: float = 1.0,
        batch_interval: float = BATCH_INTERVAL,
    ) -> None:
        self.app = app
        self.standby_interval = standby_interval
        self.batch_interval = batch_interval
        self.views = views
        self.process = process
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._changed = threading.Condition()
        self._positions: dict[str, int] = dict.fromkeys(views.all(), 0)
        self._runners: dict[str, ViewRunner] = {}
        self._refresh_problem: str | None = None
        self._target = 0
        self._started = False

    @classmethod
    def for_app(cls, app: Application[Any], **options: Any) -> LiveReadModels:
        pool_size = options.pop("postgres_pool_size", 4)
        return cls(app, open_views(app, postgres_pool_size=pool_size), **options)

    # ----- lifecycle -----

    def start(self) -> None:
        self.views.ensure()
        for view in self.views.all().values():
            view.optimize()
        self._target = self.app.recorder.max_notification_id() or 0
        for name, view in self.views.all().items():
            self._positions[name] = view.position()
            if self.process:
                self._runners[name] = ViewRunner(
                    view,
                    PROJECTIONS[name](),
                    self.app.mapper,
                    partial(self._source, name),
                    self.batch_size,
                    self._positions[name],
                    self._progressed,
                    lease=projector_lease(view),
                    standby_interval=self.standby_interval,
                    batch_interval=self.batch_interval,
                )
        for runner in self._runners.values():
            runner.start()
        self._started = True

    def close(self) -> None:
        for runner in self._runners.values():
            runner.stop()
        for runner in self._runners.values():
            runner.join()
        self._runners.clear()
        self.views.close()

    def _source(self, name: str, after: int) -> Source:
        from eventsourcing.postgres import PostgresApplicationRecorder

        if isinstance(self.app.recorder, PostgresApplicationRecorder):
            return ListeningSource(self.app.recorder, after)
        return PollingSource(self.app.recorder, after, self.poll_interval)

    def _progressed(self) -> None:
        with self._changed:
            for name, runner in self._runners.items():
                self._positions[name] = max(self._positions[name], runner.position)
            self._changed.notify_all()

    def _elsewhere(self) -> bool:
        """Whether another process keeps some view up to date, so positions are read."""
        return not self.process or not all(r.projecting for r in self._runners.values())

    def _refresh(self) -> None:
        """Read the positions from the database: another process may be doing the work."""
        try:
            positions = {name: view.position() for name, view in self.views.all().items()}
        except TRANSIENT_ERRORS as e:
            self._refresh_problem = f"cannot read the views' positions: {e}"
            return
        self._refresh_problem = None
        with self._changed:
            for name, position in positions.items():
                self._positions[name] = max(self._positions[name], position)
            self._changed.notify_all()

    # ----- state -----

    def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        """True once every view has processed ``position``; False on timeout or a stopped view."""
        deadline = monotonic() + timeout
        while True:
            with self._changed:
                behind = [n for n, p in self._positions.items() if p < position]
                if not behind:
                    return True
                if any(n in self._runners and self._runners[n].stopped for n in behind):
                    return False
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                for name in behind:
                    if name in self._runners:
                        self._runners[name].kick()
                self._changed.wait(min(remaining, 0.05))
            if self._elsewhere():
                self._refresh()

    def is_ready(self) -> bool:
        """Caught up with the store as it was at start, and no view stopped by an error."""
        if not self._started or any(r.stopped for r in self._runners.values()):
            return False
        if self._elsewhere():
            self._refresh()
        with self._changed:
            return all(p >= self._target for p in self._positions.values())

    def problems(self) -> list[str]:
        found = []
        for runner in self._runners.values():
            source_problem = runner.source.problem if runner.source is not None else None
            found += [p for p in (runner.error, runner.problem, source_problem) if p]
        if self._refresh_problem:
            found.append(self._refresh_problem)
        return found

    def all_stopped(self) -> bool:
        return bool(self._runners) and all(r.stopped for r in self._runners.values())

    def positions(self) -> dict[str, int]:
        with self._changed:
            return dict(self._positions)

    # ----- queries -----

    def list_users(
        self, environment: str, two_factor: str, limit: int, cursor: str | None
    ) -> Page[UserRow]:
        if two_factor not in TWO_FACTOR_FILTERS:
            raise ValueError(f"two_factor must be one of {', '.join(TWO_FACTOR_FILTERS)}")
        _check_limit(limit)
        after = None if cursor is None else decode_cursor("users", cursor, str)
        rows = self.views.directory.users(environment, two_factor, after, limit + 1)
        items = [self._current(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor("users", username_key(items[-1].username))
        return Page(items, next_cursor)

    def user(self, environment: str, username: str) -> UserRow | None:
        row = self.views.directory.user(environment, username)
        return None if row is None else self._current(row)

    def compliance(self, environment: str) -> Compliance:
        return self.views.directory.compliance(environment)

    def audit(self, query: AuditQuery, limit: int, cursor: str | None) -> Page[AuditEntry]:
        _check_limit(limit)
        after = 0 if cursor is None else decode_cursor("audit", cursor, int)
        rows = self.views.audit.entries(query, after, limit + 1)
        items = rows[:limit]
        next_cursor = encode_cursor("audit", items[-1].position) if len(rows) > limit else None
        return Page(items, next_cursor)

    def export_audit(self, query: AuditQuery) -> Iterator[AuditEntry]:
        return export(self.views.audit, query)

    def history(self, environment: str, username: str) -> list[AuditEntry]:
        return list(export(self.views.audit, AuditQuery(environment, username=username)))

    def verify_audit_chain(self, environment: str) -> ChainReport:
        return verify_chain(self.views.audit, environment)

    def _current(self, row: UserRow) -> UserRow:
        # The view stores when a lock ends; whether it still holds depends on now.
        now = getattr(self.app, "clock", None)
        if row.locked_until is not None and now is not None and row.locked_until <= now.now():
            return replace(row, locked_until=None)
        return row

    # ----- rebuilding -----

    def rebuild(
        self, view_name: str, progress: ProgressCallback | None = None, batch_size: int = 1000
    ) -> int:
        """Rebuild one view from position 0 beside the live one, then switch atomically."""
        position = rebuild_view(self.app, self.views.all()[view_name], progress, batch_size)
        self._refresh()
        return position


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be 1 to 1000")


def rebuild_view(
    app: Application[Any],
    view: ViewStore,
    progress: ProgressCallback | None = None,
    batch_size: int = 1000,
) -> int:
    """Fill the spare slot from position 0 while the live slot keeps serving, then switch.

    The switch happens in one transaction under the view's lock: it first
    brings the spare slot up to the live slot's position, so the view never
    goes back, then points the database views at it. The old slot is dropped
    afterwards. Returns the position the rebuilt view has reached.
    """
    projection = PROJECTIONS[view.name]()
    with view.rebuild_lock():
        spare = view.prepare_rebuild()
        try:
            position = 0
            for batch in _pages(app.recorder, batch_size):
                if batch:
                    position = process_batch(view, projection, app.mapper, batch, slot=spare)
                if progress is not None:
                    last = app.recorder.max_notification_id() or 0
                    progress(position, max(last, position))
            view.index_slot(spare)
            position, old = _switch(app, view, projection, spare, batch_size)
        except BaseException:
            try:
                view.drop_slot(spare)
            except Exception:
                logger.exception("could not drop the unfinished rebuild of %s", view.base)
            raise
        view.drop_slot(old)
        view.optimize()
        logger.info("rebuilt the %s view up to position %d", view.name, position)
        return position


def _pages(recorder: ApplicationRecorder, size: int) -> Iterator[Sequence[Notification]]:
    """Every notification from position 0, ``size`` at a time, ending with a short page.

    From a PostgreSQL server the next page is read in a thread while the
    caller processes this one: psycopg lets go of the GIL while the server
    works. SQLite does its work in this process, and a reading thread there
    costs more in contention for the GIL than it saves (bench/audit_rebuild.py).
    """
    from eventsourcing.postgres import PostgresApplicationRecorder

    def read(after: int) -> Sequence[Notification]:
        return recorder.select_notifications(start=after, limit=size, inclusive_of_start=False)

    if not isinstance(recorder, PostgresApplicationRecorder):
        page = read(0)
        while len(page) == size:
            yield page
            page = read(page[-1].id)
        yield page
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aero-rebuild-read") as reader:
        page = read(0)
        while len(page) == size:
            following = reader.submit(read, page[-1].id)
            yield page
            page = following.result()
        yield page


def _switch(
    app: Application[Any], view: ViewStore, projection: Projection, spare: str, batch_size: int
) -> tuple[int, str]:
    with view.transaction() as tx:
        old = tx.active
        if old == spare:
            raise RuntimeError(f"{view.base}: the spare slot went live during the rebuild")
        live, done = tx.position(old), tx.position(spare)
        writer = view.writer(tx, spare)
        position = done
        while position < live:
            batch = app.recorder.select_notifications(
                start=position, limit=batch_size, stop=live, inclusive_of_start=False
            )
            if not batch:
                break
            position = apply(view.name, projection, app.mapper, writer, batch, position)
        if position > done:
            tx.track(spare, position)
        tx.activate(spare)
        return position, old


def run_projector(
    app: Application[Any],
    stop_event: threading.Event,
    *,
    batch_size: int = 500,
    poll_interval: float = 0.05,
    views: Views | None = None,
) -> list[str]:
    """The ``aero-auth project`` worker: keep every view up to date until ``stop_event``.

    Returns the problems that were left when it stopped (empty when clean);
    it also returns once every view has stopped on an event it cannot process.
    """
    read_models = LiveReadModels(
        app,
        views if views is not None else open_views(app),
        process=True,
        batch_size=batch_size,
        poll_interval=poll_interval,
    )
    read_models.start()
    try:
        while not stop_event.wait(0.2):
            if read_models.all_stopped():
                break
        return read_models.problems()
    finally:
        read_models.close()


def run_rebuild(
    app: Application[Any], view_name: str, progress: ProgressCallback | None = None
) -> int:
    """``aero-auth rebuild <view>``: safe while the service and workers run."""
    views = open_views(app)
    try:
        views.ensure()
        return rebuild_view(app, views.all()[view_name], progress)
    finally:
        views.close()


def check_audit_chain(app: Application[Any], environment: str) -> ChainReport:
    """``aero-auth verify-audit <environment>`` (SECURITY.md 19)."""
    views = open_views(app)
    try:
        views.ensure()
        return verify_chain(views.audit, environment)
    finally:
        views.close()


# Checked by mypy: LiveReadModels is what the HTTP layer asks for.
_implements: type[ReadModels] = LiveReadModels
