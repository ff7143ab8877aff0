"""The two SQL dialects a view can live in: its own SQLite file, or the PostgreSQL store.

A view (projections/store.py) holds one of these and asks it for
transactions, locks, cursors and the database's types; the view's own SQL is
written once, with ``?`` placeholders, for both.
"""

from __future__ import annotations

import fcntl
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from projections.sql import Raw, sql

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class RebuildInProgressError(RuntimeError):
    pass


def advisory_key(text: str) -> int:
    """A PostgreSQL advisory lock key named by ``text``: the first 8 bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class Dialect(ABC):
    """Cursors, locks and types of one database; ``name`` arguments name the view."""

    # Column types by role.
    types: ClassVar[dict[str, str]]

    @abstractmethod
    def locked(self, name: str) -> AbstractContextManager[Any]:
        """A write transaction holding the view's lock; yields a cursor."""

    @abstractmethod
    def reading(self) -> AbstractContextManager[Any]:
        """A cursor for reads."""

    @abstractmethod
    def consistent_reading(self) -> AbstractContextManager[Any]:
        """A read-only transaction whose statements all see one committed state."""

    @abstractmethod
    def rebuild_lock(self, name: str) -> AbstractContextManager[None]:
        """Held by a rebuild: one rebuild of a view at a time."""

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
    def exists(self, cursor: Any, name: str) -> bool: ...

    @abstractmethod
    def replace_view(self, cursor: Any, view: str, table: str) -> None: ...

    @abstractmethod
    def analyze(self, cursor: Any, table: str) -> None: ...

    @contextmanager
    def sorting(self, cursor: Any) -> Iterator[None]:
        """Around building an index: the dialect may give its sort more memory."""
        yield

    @abstractmethod
    def time_to_db(self, value: datetime) -> Any: ...

    @abstractmethod
    def time_from_db(self, value: Any) -> datetime: ...

    @abstractmethod
    def legacy_tracking_table(self, name: str) -> str:
        """Where positions were kept before the views kept their own (the library's table)."""

    @abstractmethod
    def close(self) -> None: ...


class SQLiteDialect(Dialect):
    """A view in its own SQLite file."""

    types: ClassVar[dict[str, str]] = {
        "bigint": "INTEGER",
        "time": "INTEGER",  # microseconds since the epoch, UTC: sorts and compares as numbers
        "text": "TEXT",
        "bool": "INTEGER",
    }

    def __init__(self, path: str, lock_timeout: int = 10) -> None:
        self.path = path
        self.datastore = SQLiteDatastore(db_name=path, lock_timeout=lock_timeout)

    @contextmanager
    def locked(self, name: str) -> Iterator[Any]:
        # BEGIN IMMEDIATE takes the write lock before the first read, so the
        # position read under it cannot go stale before the commit. The file
        # holds one view: the database's lock is the view's.
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

    @contextmanager
    def rebuild_lock(self, name: str) -> Iterator[None]:
        with open(f"{self.path}.rebuild.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RebuildInProgressError(f"{name} is being rebuilt") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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

    def exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,))
        return cursor.fetchone() is not None

    def replace_view(self, cursor: Any, view: str, table: str) -> None:
        cursor.execute(sql("DROP VIEW IF EXISTS {v}", v=view))
        cursor.execute(sql("CREATE VIEW {v} AS SELECT * FROM {t}", v=view, t=table))

    def analyze(self, cursor: Any, table: str) -> None:
        # Sampled statistics: a few milliseconds however large the table.
        cursor.execute("PRAGMA analysis_limit = 1000")
        cursor.execute(sql("ANALYZE {t}", t=table))

    @contextmanager
    def sorting(self, cursor: Any) -> Iterator[None]:
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

    def legacy_tracking_table(self, name: str) -> str:
        return "tracking"

    def close(self) -> None:
        self.datastore.close()


class PostgresDialect(Dialect):
    """Views in the event store's database, next to the library's tables, sharing one pool."""

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

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self._keys: dict[str, int] = {}

    def _key(self, text: str) -> int:
        key = self._keys.get(text)
        if key is None:
            key = self._keys[text] = advisory_key(text)
        return key

    @contextmanager
    def _replacing_lost_connections(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError):
            # When the server ends one connection (a restart, a failover, an operator's
            # pg_terminate_backend) it has ended the idle ones in the pool as well:
            # replace them now, so that only this request fails, not the next few.
            with suppress(Exception):
                self.datastore.pool.check()
            raise

    @contextmanager
    def locked(self, name: str) -> Iterator[Any]:
        with self._replacing_lost_connections(), self.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._key(f"aero-auth/{name}"),))
            yield cursor

    @contextmanager
    def reading(self) -> Iterator[Any]:
        # The pool's connections are in autocommit mode: one statement, one snapshot.
        with (
            self._replacing_lost_connections(),
            self.datastore.get_connection() as conn,
            conn.cursor() as cursor,
        ):
            yield cursor

    @contextmanager
    def consistent_reading(self) -> Iterator[Any]:
        with (
            self._replacing_lost_connections(),
            self.datastore.transaction(commit=False) as cursor,
        ):
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cursor

    @contextmanager
    def rebuild_lock(self, name: str) -> Iterator[None]:
        key = self._key(f"aero-auth/{name}/rebuild")
        with self.datastore.get_connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (key,)).fetchone()
            if not row or not row["locked"]:
                raise RebuildInProgressError(f"{name} is being rebuilt")
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

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

    def exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (name,))
        row = cursor.fetchone()
        return bool(row and row["found"])

    def replace_view(self, cursor: Any, view: str, table: str) -> None:
        cursor.execute(sql("CREATE OR REPLACE VIEW {v} AS SELECT * FROM {t}", v=view, t=table))

    def analyze(self, cursor: Any, table: str) -> None:
        cursor.execute(sql("ANALYZE {t}", t=table))

    def time_to_db(self, value: datetime) -> datetime:
        return value

    def time_from_db(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def legacy_tracking_table(self, name: str) -> str:
        return f"{name}_tracking"

    def close(self) -> None:
        """The datastore is shared by the views; whoever opened it closes it."""
