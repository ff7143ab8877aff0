"""Where a view keeps its rows: two slots of tables, a pointer, and the library's tracking.

A view's tables come in two slots, ``{base}_a`` and ``{base}_b``. The pointer
table ``{base}_slot`` names the live one, and database views named ``{base}``
(``audit_v1``, ``user_directory_v1``) select from it, so readers never name a
slot. A rebuild fills the other slot from position 0 while the live one keeps
serving, then one transaction moves the pointer and the database views.

Each slot records its position in the library's tracking table under the key
``{upstream application}/{slot}``, written in the same transaction as the rows
(exactly once). Every write transaction first takes the view's lock (SQLite:
BEGIN IMMEDIATE; PostgreSQL: an advisory transaction lock) and reads the
position under it, so several projector processes may run at once: whoever
comes second skips what the first already recorded.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

SLOTS = ("a", "b")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class RebuildInProgressError(RuntimeError):
    pass


class Raw(str):
    """A fragment of SQL written in this code (column lists, conditions), never input."""

    __slots__ = ()


def sql(template: str, **names: str) -> str:
    """Fill names and Raw fragments into a statement; values always go in as parameters."""
    for name in names.values():
        if not isinstance(name, Raw) and not _IDENTIFIER.match(name):
            raise ValueError(f"not a safe SQL identifier: {name!r}")
    return template.format(**names)


class Writer(ABC):
    """A view's update side inside one transaction; buffered writes land on flush()."""

    @abstractmethod
    def flush(self) -> None: ...


class Transaction:
    """One locked write transaction on a view's database."""

    def __init__(self, store: ViewStore, cursor: Any) -> None:
        self.store = store
        self.cursor = cursor
        self.active = store._active_slot(cursor)

    def position(self, slot: str) -> int:
        return self.store._max_tracking_id(self.store.tracking_key(slot), self.cursor) or 0

    def track(self, slot: str, position: int) -> None:
        self.store._insert_tracking(self.cursor, Tracking(self.store.tracking_key(slot), position))

    def activate(self, slot: str) -> None:
        store = self.store
        store.execute(self.cursor, sql("UPDATE {t} SET active = ?", t=store.pointer_table), (slot,))
        for suffix in store.exposed:
            store._replace_view(self.cursor, store.base + suffix, store.table(slot, suffix))
        self.active = slot


class Snapshot:
    """A view's live slot as one committed state: the position and the rows agree."""

    def __init__(self, store: ViewStore, cursor: Any) -> None:
        self.store = store
        self.cursor = cursor
        self.active = store._active_slot(cursor)
        self.position = store._max_tracking_id(store.tracking_key(self.active), cursor) or 0

    def rows(self, suffix: str = "", page: int = 5000) -> Iterator[dict[str, Any]]:
        """One table's rows in key order, as ``ViewStore.comparable`` values.

        A table keyed by position (the audit log, which grows without bound) is
        read in pages. The others hold a row per user or environment and are
        sorted here, so that their order never depends on a database's collation.
        """
        store, key = self.store, self.store.keys[suffix]
        table = store.table(self.active, suffix)
        if key != ("position",):
            store.execute(self.cursor, sql("SELECT * FROM {t}", t=table))
            rows = [store.comparable(row) for row in self.cursor.fetchall()]
            yield from sorted(rows, key=lambda row: tuple(row[column] for column in key))
            return
        statement = sql("SELECT * FROM {t} WHERE position > ? ORDER BY position LIMIT ?", t=table)
        after = 0
        while True:
            store.execute(self.cursor, statement, (after, page))
            rows = [store.comparable(row) for row in self.cursor.fetchall()]
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1]["position"]


class ViewStore(ABC):
    """The slot, pointer and tracking mechanics every view shares, on any database."""

    name: ClassVar[str]
    base: ClassVar[str]
    # Suffixes of one slot's tables; the first is the main table.
    tables: ClassVar[tuple[str, ...]] = ("",)
    # Suffixes of the tables that readers see through a database view.
    exposed: ClassVar[tuple[str, ...]] = ("",)
    # Column types by role; each dialect maps them.
    types: ClassVar[dict[str, str]]
    # For comparing two copies of a view row by row: each table's key columns
    # by suffix, and the columns that each dialect stores its own way.
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"": ("position",)}
    time_columns: ClassVar[frozenset[str]] = frozenset()
    bool_columns: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    # ----- names -----

    @property
    def pointer_table(self) -> str:
        return f"{self.base}_slot"

    def table(self, slot: str, suffix: str = "") -> str:
        return f"{self.base}_{slot}{suffix}"

    def tracking_key(self, slot: str) -> str:
        return f"{self.upstream}/{slot}"

    # ----- what each dialect provides -----

    @abstractmethod
    def locked(self) -> AbstractContextManager[Any]:
        """A write transaction holding the view's lock; yields a cursor."""

    @abstractmethod
    def reading(self) -> AbstractContextManager[Any]:
        """A cursor for reads."""

    @abstractmethod
    def execute(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def executemany(self, cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def append_rows(
        self,
        cursor: Any,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Insert ``rows`` into ``table``; ``columns`` names each value and its type role."""

    @abstractmethod
    def consistent_reading(self) -> AbstractContextManager[Any]:
        """A read-only transaction whose statements all see one committed state."""

    @abstractmethod
    def rebuild_lock(self) -> AbstractContextManager[None]:
        """Held by a rebuild: one rebuild of a view at a time."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _exists(self, cursor: Any, name: str) -> bool: ...

    @abstractmethod
    def _replace_view(self, cursor: Any, view: str, table: str) -> None: ...

    @abstractmethod
    def _tracking_table(self) -> str: ...

    @abstractmethod
    def _analyze(self, cursor: Any, table: str) -> None: ...

    @contextmanager
    def _sorting(self, cursor: Any) -> Iterator[None]:
        """Around building an index: the dialect may give its sort more memory."""
        yield

    @abstractmethod
    def time_to_db(self, value: datetime) -> Any: ...

    @abstractmethod
    def time_from_db(self, value: Any) -> datetime: ...

    # Implemented by the library's tracking recorders.
    @abstractmethod
    def create_table(self) -> None: ...

    @abstractmethod
    def _max_tracking_id(self, application_name: str, c: Any) -> int | None: ...

    @abstractmethod
    def _insert_tracking(self, c: Any, tracking: Tracking) -> None: ...

    # ----- what each view provides -----

    @abstractmethod
    def slot_ddl(self, slot: str) -> list[str]:
        """CREATE statements for one slot's tables (and any index created with them)."""

    def slot_indexes(self, slot: str) -> list[str]:
        """CREATE statements for the indexes that only serve queries.

        A rebuild creates them after filling the slot and before switching to
        it: building an index over a full table costs a fraction of updating it
        row by row (bench/audit_rebuild.py).
        """
        return []

    @abstractmethod
    def writer(self, tx: Transaction, slot: str) -> Writer:
        """The view's update interface inside ``tx``, writing to ``slot``."""

    # ----- shared mechanics -----

    def exists(self, name: str) -> bool:
        """Whether a table or view of that name exists in the view's database."""
        with self.reading() as cursor:
            return self._exists(cursor, name)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.reading() as cursor:
            self.execute(cursor, statement, params)
            return list(cursor.fetchall())

    def ensure(self) -> None:
        """Create what is missing: tracking table, pointer, the live slot, the database views."""
        for attempt in range(3):
            try:
                self.create_table()
                break
            except IntegrityError:
                # Two processes creating the library's table at once: the loser retries.
                if attempt == 2:
                    raise
        with self.locked() as cursor:
            if not self._exists(cursor, self.pointer_table):
                self.execute(
                    cursor, sql("CREATE TABLE {t} (active TEXT NOT NULL)", t=self.pointer_table)
                )
                self.execute(
                    cursor, sql("INSERT INTO {t} VALUES (?)", t=self.pointer_table), (SLOTS[0],)
                )
            active = self._active_slot(cursor)
            if not self._exists(cursor, self.table(active)):
                self._create_slot(cursor, active)
            for suffix in self.exposed:
                if not self._exists(cursor, self.base + suffix):
                    self._replace_view(cursor, self.base + suffix, self.table(active, suffix))

    def optimize(self) -> None:
        """Refresh the planner's statistics of the live slot.

        Without them SQLite pages a busy user's one-day window by scanning all
        of that user's entries instead of the day's (bench/audit_page.py).
        """
        with self.transaction() as tx:
            for suffix in self.tables:
                self._analyze(tx.cursor, self.table(tx.active, suffix))

    def position(self) -> int:
        """The position the live slot has processed up to (0 before any)."""
        with self.reading() as cursor:
            active = self._active_slot(cursor)
            return self._max_tracking_id(self.tracking_key(active), cursor) or 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.locked() as cursor:
            yield Transaction(self, cursor)

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The live slot as one committed state, without taking the view's lock."""
        with self.consistent_reading() as cursor:
            yield Snapshot(self, cursor)

    def comparable(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A stored row in values both dialects agree on: UTC datetimes, bools."""
        values = dict(row)
        for column in self.time_columns & values.keys():
            if values[column] is not None:
                values[column] = self.time_from_db(values[column])
        for column in self.bool_columns & values.keys():
            values[column] = bool(values[column])
        return values

    def prepare_rebuild(self) -> str:
        """Empty the spare slot (dropping what a failed rebuild left) and return its name.

        The slot comes without the indexes of ``slot_indexes``: ``index_slot``
        adds them once it is filled.
        """
        with self.transaction() as tx:
            spare = next(s for s in SLOTS if s != tx.active)
            self._drop_slot(tx.cursor, spare)
            self._create_slot(tx.cursor, spare, indexes=False)
            return spare

    def index_slot(self, slot: str) -> None:
        """Create the spare slot's query indexes, one transaction each.

        Each holds the view's lock (on SQLite any write does) for as long as
        its index takes to build, so the live runner waits for one index at a
        time, never for all of them.
        """
        for statement in self.slot_indexes(slot):
            with self.transaction() as tx:
                if slot == tx.active:
                    raise ValueError(f"slot {slot} of {self.base} is live")
                with self._sorting(tx.cursor):
                    self.execute(tx.cursor, statement)

    def drop_slot(self, slot: str) -> None:
        with self.transaction() as tx:
            if slot == tx.active:
                raise ValueError(f"slot {slot} of {self.base} is live")
            self._drop_slot(tx.cursor, slot)

    def _active_slot(self, cursor: Any) -> str:
        self.execute(cursor, sql("SELECT active FROM {t}", t=self.pointer_table))
        row = cursor.fetchone()
        if row is None:
            raise LookupError(f"{self.pointer_table} is empty")
        return str(row["active"])

    def _create_slot(self, cursor: Any, slot: str, *, indexes: bool = True) -> None:
        for statement in self.slot_ddl(slot) + (self.slot_indexes(slot) if indexes else []):
            self.execute(cursor, statement)

    def _drop_slot(self, cursor: Any, slot: str) -> None:
        for suffix in self.tables:
            self.execute(cursor, sql("DROP TABLE IF EXISTS {t}", t=self.table(slot, suffix)))
        self.execute(
            cursor,
            sql("DELETE FROM {t} WHERE application_name = ?", t=self._tracking_table()),
            (self.tracking_key(slot),),
        )


class SQLiteStore(SQLiteTrackingRecorder, ViewStore):
    """A view in its own SQLite file: the library's tracking table is keyed by application only."""

    types: ClassVar[dict[str, str]] = {
        "bigint": "INTEGER",
        "time": "INTEGER",  # microseconds since the epoch, UTC: sorts and compares as numbers
        "text": "TEXT",
        "bool": "INTEGER",
    }

    def __init__(self, path: str, upstream: str, lock_timeout: int = 10) -> None:
        SQLiteTrackingRecorder.__init__(
            self, SQLiteDatastore(db_name=path, lock_timeout=lock_timeout)
        )
        ViewStore.__init__(self, upstream)
        self.path = path

    @contextmanager
    def locked(self) -> Iterator[Any]:
        # BEGIN IMMEDIATE takes the write lock before the first read, so the
        # position read under it cannot go stale before the commit.
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cursor.sqlite_cursor.close()

    def reading(self) -> AbstractContextManager[Any]:
        return self.datastore.transaction(commit=False)

    def consistent_reading(self) -> AbstractContextManager[Any]:
        # A deferred BEGIN: in WAL mode its first read fixes what it sees, and
        # writers carry on meanwhile.
        return self.reading()

    def execute(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> None:
        cursor.execute(statement, params)

    def executemany(self, cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor.executemany(statement, rows)

    def append_rows(
        self,
        cursor: Any,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        statement = sql(
            "INSERT INTO {t} ({c}) VALUES ({v})",
            t=table,
            c=Raw(", ".join(name for name, _ in columns)),
            v=Raw(", ".join("?" * len(columns))),
        )
        cursor.executemany(statement, rows)

    @contextmanager
    def rebuild_lock(self) -> Iterator[None]:
        with open(f"{self.path}.rebuild.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RebuildInProgressError(f"{self.base} is being rebuilt") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        self.datastore.close()

    def _exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,))
        return cursor.fetchone() is not None

    def _replace_view(self, cursor: Any, view: str, table: str) -> None:
        cursor.execute(sql("DROP VIEW IF EXISTS {v}", v=view))
        cursor.execute(sql("CREATE VIEW {v} AS SELECT * FROM {t}", v=view, t=table))

    def _tracking_table(self) -> str:
        return "tracking"

    def _analyze(self, cursor: Any, table: str) -> None:
        # Sampled statistics: a few milliseconds however large the table.
        cursor.execute("PRAGMA analysis_limit = 1000")
        cursor.execute(sql("ANALYZE {t}", t=table))

    @contextmanager
    def _sorting(self, cursor: Any) -> Iterator[None]:
        # CREATE INDEX sorts within the page cache (2 MB by default) and spills
        # the rest to temporary files: 64 MB builds a 200,000-row slot's indexes
        # in two thirds of the time. The pool's connection gets its cache back.
        cursor.execute("PRAGMA cache_size")
        size = int(cursor.fetchone()[0])
        cursor.execute("PRAGMA cache_size = -65536")
        try:
            yield
        finally:
            cursor.execute(f"PRAGMA cache_size = {size}")

    def time_to_db(self, value: datetime) -> int:
        return (value - _EPOCH) // _MICROSECOND

    def time_from_db(self, value: Any) -> datetime:
        return _EPOCH + timedelta(microseconds=int(value))


class PostgresStore(PostgresTrackingRecorder, ViewStore):
    """A view in the event store's database, next to the library's tables."""

    types: ClassVar[dict[str, str]] = {
        "bigint": "BIGINT",
        "time": "TIMESTAMPTZ",
        "text": "TEXT",
        "bool": "BOOLEAN",
    }
    # The same roles as names of PostgreSQL's binary COPY formats.
    copy_types: ClassVar[dict[str, str]] = {
        "bigint": "int8",
        "time": "timestamptz",
        "text": "text",
        "bool": "bool",
    }

    def __init__(self, datastore: PostgresDatastore, upstream: str) -> None:
        PostgresTrackingRecorder.__init__(
            self, datastore, tracking_table_name=f"{self.base}_tracking"
        )
        ViewStore.__init__(self, upstream)
        self._lock_key = advisory_key(f"aero-auth/{self.base}")
        self._rebuild_key = advisory_key(f"aero-auth/{self.base}/rebuild")

    @contextmanager
    def locked(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            yield cursor

    @contextmanager
    def reading(self) -> Iterator[Any]:
        # The pool's connections are in autocommit mode: one statement, one snapshot.
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            yield cursor

    @contextmanager
    def consistent_reading(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cursor

    def execute(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> None:
        cursor.execute(statement.replace("?", "%s"), params)

    def executemany(self, cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor.executemany(statement.replace("?", "%s"), rows)

    def append_rows(
        self,
        cursor: Any,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        # COPY in binary: a tenth of the client's CPU time of executemany's
        # INSERTs, and no statement per row on the server (bench/audit_rebuild.py).
        statement = sql(
            "COPY {t} ({c}) FROM STDIN (FORMAT BINARY)",
            t=table,
            c=Raw(", ".join(name for name, _ in columns)),
        )
        with cursor.copy(statement) as copy:
            copy.set_types([self.copy_types[role] for _, role in columns])
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def rebuild_lock(self) -> Iterator[None]:
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS locked", (self._rebuild_key,)
            ).fetchone()
            if not row or not row["locked"]:
                raise RebuildInProgressError(f"{self.base} is being rebuilt")
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self._rebuild_key,))

    def close(self) -> None:
        """The datastore is shared by the views; whoever opened it closes it."""

    def _exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (name,))
        row = cursor.fetchone()
        return bool(row and row["found"])

    def _replace_view(self, cursor: Any, view: str, table: str) -> None:
        cursor.execute(sql("CREATE OR REPLACE VIEW {v} AS SELECT * FROM {t}", v=view, t=table))

    def _tracking_table(self) -> str:
        return str(self.tracking_table_name)

    def _analyze(self, cursor: Any, table: str) -> None:
        cursor.execute(sql("ANALYZE {t}", t=table))

    def time_to_db(self, value: datetime) -> datetime:
        return value

    def time_from_db(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


def advisory_key(text: str) -> int:
    """A PostgreSQL advisory lock key named by ``text``: the first 8 bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def sibling_path(event_store: str, view: str) -> str:
    """aero.db -> aero.audit.db: each view in its own file next to the event store."""
    path = Path(event_store)
    suffix = path.suffix or ".db"
    return str(path.with_name(f"{path.stem}.{view}{suffix}"))
