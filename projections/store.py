"""Where a view keeps its rows: two slots of tables, a pointer, and its tracked positions.

A view's tables come in two slots, ``{base}_a`` and ``{base}_b``. The pointer
table ``{base}_slot`` names the live one, and database views named ``{base}``
(``audit_v2``, ``user_directory_v1``) select from it, so readers never name a
slot. A rebuild fills the other slot from position 0 while the live one keeps
serving, then one transaction moves the pointer and the database views.

Each slot's position is a row of the view's own table ``{base}_positions``,
written in the same transaction as the rows (exactly once). Every write
transaction first takes the view's lock (SQLite: BEGIN IMMEDIATE; PostgreSQL:
an advisory transaction lock) and reads the position under it, so several
projector processes may run at once: whoever comes second skips what the
first already recorded. A view holds its database's dialect
(projections/dialects.py); it does not inherit one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, ClassVar

from projections.dialects import Dialect
from projections.sql import sql

SLOTS = ("a", "b")


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
        return self.store._position(self.cursor, slot)

    def track(self, slot: str, position: int) -> None:
        store = self.store
        store.execute(self.cursor, store._track_statement, (slot, position))

    def activate(self, slot: str) -> None:
        store = self.store
        store.execute(self.cursor, sql("UPDATE {t} SET active = ?", t=store.pointer_table), (slot,))
        for suffix in store.exposed:
            store.dialect.replace_view(self.cursor, store.base + suffix, store.table(slot, suffix))
        self.active = slot


class Snapshot:
    """A view's live slot as one committed state: the position and the rows agree."""

    def __init__(self, store: ViewStore, cursor: Any) -> None:
        self.store = store
        self.cursor = cursor
        self.active = store._active_slot(cursor)
        self.position = store._position(cursor, self.active)

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
    """The slot, pointer and tracking mechanics every view shares, in the dialect it holds."""

    name: ClassVar[str]
    base: ClassVar[str]
    # On SQLite, the view's file beside the event store's: aero.{file_stem}.db.
    file_stem: ClassVar[str]
    # Only the first version of a view was ever tracked in the library's table
    # (dialect.legacy_tracking_table); a later version must not adopt those
    # positions, or it would skip the history before them.
    adopts_legacy_positions: ClassVar[bool] = False
    # Suffixes of one slot's tables; the first is the main table.
    tables: ClassVar[tuple[str, ...]] = ("",)
    # Suffixes of the tables that readers see through a database view.
    exposed: ClassVar[tuple[str, ...]] = ("",)
    # For comparing two copies of a view row by row: each table's key columns
    # by suffix, and the columns that each dialect stores its own way.
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"": ("position",)}
    time_columns: ClassVar[frozenset[str]] = frozenset()
    bool_columns: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.types = dialect.types
        # An upsert that SQLite (3.24 and later) and PostgreSQL both read alike.
        self._track_statement = sql(
            "INSERT INTO {t} (slot, position) VALUES (?, ?) "
            "ON CONFLICT (slot) DO UPDATE SET position = excluded.position",
            t=self.tracking_table,
        )
        self._position_statement = sql(
            "SELECT position FROM {t} WHERE slot = ?", t=self.tracking_table
        )

    # ----- names -----

    @property
    def pointer_table(self) -> str:
        return f"{self.base}_slot"

    @property
    def tracking_table(self) -> str:
        """One row per slot: the last position recorded into it. Versioned with the view."""
        return f"{self.base}_positions"

    def table(self, slot: str, suffix: str = "") -> str:
        return f"{self.base}_{slot}{suffix}"

    # ----- the dialect's, for the view's SQL -----

    def execute(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> None:
        self.dialect.execute(cursor, statement, params)

    def executemany(self, cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self.dialect.executemany(cursor, statement, rows)

    def append_rows(
        self,
        cursor: Any,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        self.dialect.append_rows(cursor, table, columns, rows)

    def time_to_db(self, value: datetime) -> Any:
        return self.dialect.time_to_db(value)

    def time_from_db(self, value: Any) -> datetime:
        return self.dialect.time_from_db(value)

    def rebuild_lock(self) -> AbstractContextManager[None]:
        """Held by a rebuild: one rebuild of a view at a time."""
        return self.dialect.rebuild_lock(self.base)

    def close(self) -> None:
        self.dialect.close()

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
        with self.dialect.reading() as cursor:
            return self.dialect.exists(cursor, name)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.dialect.reading() as cursor:
            self.execute(cursor, statement, params)
            return list(cursor.fetchall())

    def ensure(self) -> None:
        """Create what is missing: positions, pointer, the live slot, the database views.

        Under the view's lock, so processes that start together create each once.
        """
        with self.dialect.locked(self.base) as cursor:
            if not self.dialect.exists(cursor, self.tracking_table):
                self.execute(
                    cursor,
                    sql(
                        "CREATE TABLE {t} (slot TEXT PRIMARY KEY, position {bigint} NOT NULL)",
                        t=self.tracking_table,
                        bigint=self.types["bigint"],
                    ),
                )
                self._adopt_legacy_positions(cursor)
            if not self.dialect.exists(cursor, self.pointer_table):
                self.execute(
                    cursor, sql("CREATE TABLE {t} (active TEXT NOT NULL)", t=self.pointer_table)
                )
                self.execute(
                    cursor, sql("INSERT INTO {t} VALUES (?)", t=self.pointer_table), (SLOTS[0],)
                )
            active = self._active_slot(cursor)
            if not self.dialect.exists(cursor, self.table(active)):
                self._create_slot(cursor, active)
            for suffix in self.exposed:
                if not self.dialect.exists(cursor, self.base + suffix):
                    self.dialect.replace_view(
                        cursor, self.base + suffix, self.table(active, suffix)
                    )

    def _adopt_legacy_positions(self, cursor: Any) -> None:
        """Views built before they kept their own positions kept them in the library's
        tracking table, keyed ``{application}/{slot}``: carry them over once, or the
        view would process its events a second time."""
        legacy = self.dialect.legacy_tracking_table(self.base)
        if not self.adopts_legacy_positions or not self.dialect.exists(cursor, legacy):
            return
        self.execute(
            cursor,
            sql(
                "SELECT application_name, MAX(notification_id) AS position FROM {t} "
                "GROUP BY application_name",
                t=legacy,
            ),
        )
        for row in cursor.fetchall():
            slot = str(row["application_name"]).rpartition("/")[2]
            if slot in SLOTS and row["position"] is not None:
                self.execute(cursor, self._track_statement, (slot, int(row["position"])))

    def optimize(self) -> None:
        """Refresh the planner's statistics of the live slot.

        Without them SQLite pages a busy user's one-day window by scanning all
        of that user's entries instead of the day's (bench/audit_page.py).
        """
        with self.transaction() as tx:
            for suffix in self.tables:
                self.dialect.analyze(tx.cursor, self.table(tx.active, suffix))

    def position(self) -> int:
        """The position the live slot has processed up to (0 before any)."""
        with self.dialect.reading() as cursor:
            return self._position(cursor, self._active_slot(cursor))

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.dialect.locked(self.base) as cursor:
            yield Transaction(self, cursor)

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The live slot as one committed state, without taking the view's lock."""
        with self.dialect.consistent_reading() as cursor:
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
                with self.dialect.sorting(tx.cursor):
                    self.execute(tx.cursor, statement)

    def drop_slot(self, slot: str) -> None:
        with self.transaction() as tx:
            if slot == tx.active:
                raise ValueError(f"slot {slot} of {self.base} is live")
            self._drop_slot(tx.cursor, slot)

    def _position(self, cursor: Any, slot: str) -> int:
        self.execute(cursor, self._position_statement, (slot,))
        row = cursor.fetchone()
        return 0 if row is None else int(row["position"])

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
        self.execute(cursor, sql("DELETE FROM {t} WHERE slot = ?", t=self.tracking_table), (slot,))
