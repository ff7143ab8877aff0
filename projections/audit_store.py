"""The audit view's tables and SQL, on SQLite and on PostgreSQL (``SqlAuditView(dialect)``)."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, ClassVar
from uuid import UUID

from domain.rules import username_key
from projections.api import AuditEntry, AuditQuery
from projections.audit import AuditView, AuditWriter, ChainedEntry, Owner
from projections.audit_chain import GENESIS
from projections.sql import Raw, sql
from projections.store import Transaction

_COLUMNS = Raw(
    "position, environment, occurred_at, type, username, actor, outcome, ip, user_agent, details"
)
# The main table's columns in the order SqlAuditWriter writes them, with their types.
_ENTRY_COLUMNS = (
    ("position", "bigint"),
    ("environment", "text"),
    ("occurred_at", "time"),
    ("type", "text"),
    ("username", "text"),
    ("username_key", "text"),
    ("actor", "text"),
    ("outcome", "text"),
    ("ip", "text"),
    ("user_agent", "text"),
    ("details", "text"),
    ("event", "text"),
    ("hash", "text"),
)


class SqlAuditView(AuditView):
    """The audit log in either database: the SQL is shared, the dialect held supplies types,
    cursors and locks."""

    tables: ClassVar[tuple[str, ...]] = ("", "_chain", "_owners")
    exposed: ClassVar[tuple[str, ...]] = ("", "_chain")
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "": ("position",),
        "_chain": ("environment",),
        "_owners": ("originator_id",),
    }
    time_columns: ClassVar[frozenset[str]] = frozenset({"occurred_at"})

    def slot_ddl(self, slot: str) -> list[str]:
        names = {"t": self.table(slot), **self.types}
        return [
            sql(
                "CREATE TABLE {t} ("
                "position {bigint} PRIMARY KEY, environment TEXT NOT NULL, "
                "occurred_at {time} NOT NULL, type TEXT NOT NULL, "
                "username TEXT, username_key TEXT, actor TEXT, outcome TEXT NOT NULL, "
                "ip TEXT, user_agent TEXT, details TEXT NOT NULL, event TEXT NOT NULL, "
                "hash TEXT NOT NULL)",
                **names,
            ),
            sql(
                "CREATE TABLE {t}_chain (environment TEXT PRIMARY KEY, "
                "position {bigint} NOT NULL, hash TEXT NOT NULL)",
                **names,
            ),
            sql(
                "CREATE TABLE {t}_owners (originator_id TEXT PRIMARY KEY, "
                "environment TEXT NOT NULL, username TEXT)",
                **names,
            ),
        ]

    def slot_indexes(self, slot: str) -> list[str]:
        names = {"t": self.table(slot)}
        return [
            # Every filter of API.md starts with the environment and pages by position.
            sql("CREATE INDEX {t}_env ON {t} (environment, position)", **names),
            sql("CREATE INDEX {t}_user ON {t} (environment, username_key, position)", **names),
            sql(
                "CREATE INDEX {t}_user_time ON {t} (environment, username_key, occurred_at)",
                **names,
            ),
            sql("CREATE INDEX {t}_type ON {t} (environment, type, position)", **names),
            sql("CREATE INDEX {t}_time ON {t} (environment, occurred_at)", **names),
        ]

    @cached_property
    def owner_cache(self) -> OwnerCache:
        return OwnerCache()

    def writer(self, tx: Transaction, slot: str) -> SqlAuditWriter:
        return SqlAuditWriter(self, tx.cursor, slot)

    def entries(self, query: AuditQuery, after: int, limit: int) -> list[AuditEntry]:
        where = ["environment = ?", "position > ?"]
        params: list[Any] = [query.environment, after]
        if query.username is not None:
            where.append("username_key = ?")
            params.append(username_key(query.username))
        if query.types:
            where.append(f"type IN ({', '.join('?' * len(query.types))})")
            params.extend(query.types)
        if query.outcome is not None:
            where.append("outcome = ?")
            params.append(query.outcome)
        if query.since is not None:
            where.append("occurred_at >= ?")
            params.append(self.time_to_db(query.since))
        if query.until is not None:
            where.append("occurred_at < ?")
            params.append(self.time_to_db(query.until))
        params.append(limit)
        statement = sql(
            "SELECT {c} FROM {v} WHERE {w} ORDER BY position LIMIT ?",
            c=_COLUMNS,
            v=self.base,
            w=Raw(" AND ".join(where)),
        )
        return [self._entry(row) for row in self.query(statement, params)]

    def chained(
        self, environment: str, after: int, upto: int, limit: int
    ) -> list[tuple[AuditEntry, str, str]]:
        statement = sql(
            "SELECT {c}, event, hash FROM {v} WHERE environment = ? AND position > ? "
            "AND position <= ? ORDER BY position LIMIT ?",
            c=_COLUMNS,
            v=self.base,
        )
        rows = self.query(statement, (environment, after, upto, limit))
        return [(self._entry(row), str(row["event"]), str(row["hash"])) for row in rows]

    def chain_head(self, environment: str) -> tuple[int, str] | None:
        rows = self.query(
            sql("SELECT position, hash FROM {v}_chain WHERE environment = ?", v=self.base),
            (environment,),
        )
        return (int(rows[0]["position"]), str(rows[0]["hash"])) if rows else None

    def _entry(self, row: Any) -> AuditEntry:
        return AuditEntry(
            position=int(row["position"]),
            occurred_at=self.time_from_db(row["occurred_at"]),
            type=row["type"],
            environment=row["environment"],
            username=row["username"],
            actor=row["actor"],
            outcome=row["outcome"],
            ip=row["ip"],
            user_agent=row["user_agent"],
            details=json.loads(row["details"]),
        )


class OwnerCache:
    """Owners already looked up or added, shared by a view's writers.

    An owner is fixed by its aggregate's first event, so a cached one stays
    right whatever slot or transaction asks (even one that rolled back: the
    event that made it is processed again before any event that needs it).
    Without the cache a rebuild reads the owners table once per user per
    batch. Bounded: past ``limit`` entries it starts afresh.
    """

    limit = 50_000

    def __init__(self) -> None:
        self._owners: dict[UUID, Owner] = {}

    def get(self, originator_id: UUID) -> Owner | None:
        return self._owners.get(originator_id)

    def put(self, originator_id: UUID, owner: Owner) -> None:
        if len(self._owners) >= self.limit:
            self._owners = {}
        self._owners[originator_id] = owner


class SqlAuditWriter(AuditWriter):
    """Buffers a batch's entries and writes them in bulk on flush."""

    def __init__(self, view: SqlAuditView, cursor: Any, slot: str) -> None:
        self.view = view
        self.chain_key = view.chain_key
        self.cursor = cursor
        self.table = view.table(slot)
        self._owners = view.owner_cache
        self._rows: list[tuple[Any, ...]] = []
        self._hashes: dict[str, str] = {}
        self._heads: dict[str, tuple[int, str]] = {}
        self._new_owners: list[tuple[str, str, str | None]] = []

    def owner(self, originator_id: UUID) -> Owner | None:
        found = self._owners.get(originator_id)
        if found is None:
            self.view.execute(
                self.cursor,
                sql(
                    "SELECT environment, username FROM {t}_owners WHERE originator_id = ?",
                    t=self.table,
                ),
                (str(originator_id),),
            )
            row = self.cursor.fetchone()
            if row is None:
                return None
            found = Owner(row["environment"], row["username"])
            self._owners.put(originator_id, found)
        return found

    def add_owner(self, originator_id: UUID, owner: Owner) -> None:
        self._owners.put(originator_id, owner)
        self._new_owners.append((str(originator_id), owner.environment, owner.username))

    def last_hash(self, environment: str) -> str:
        if environment not in self._hashes:
            self.view.execute(
                self.cursor,
                sql("SELECT hash FROM {t}_chain WHERE environment = ?", t=self.table),
                (environment,),
            )
            row = self.cursor.fetchone()
            self._hashes[environment] = GENESIS if row is None else str(row["hash"])
        return self._hashes[environment]

    def append(self, entry: ChainedEntry) -> None:
        username = entry.username
        self._rows.append(
            (
                entry.position,
                entry.environment,
                self.view.time_to_db(entry.occurred_at),
                entry.type,
                username,
                None if username is None else username_key(username),
                entry.actor,
                entry.outcome,
                entry.ip,
                entry.user_agent,
                entry.details,
                entry.event,
                entry.hash,
            )
        )
        self._hashes[entry.environment] = entry.hash
        self._heads[entry.environment] = (entry.position, entry.hash)

    def flush(self) -> None:
        view, cursor = self.view, self.cursor
        if self._new_owners:
            statement = sql("INSERT INTO {t}_owners VALUES (?, ?, ?)", t=self.table)
            view.executemany(cursor, statement, self._new_owners)
        if self._rows:
            view.append_rows(cursor, self.table, _ENTRY_COLUMNS, self._rows)
        if self._heads:
            view.executemany(
                cursor,
                sql(
                    "INSERT INTO {t}_chain (environment, position, hash) VALUES (?, ?, ?) "
                    "ON CONFLICT (environment) DO UPDATE "
                    "SET position = excluded.position, hash = excluded.hash",
                    t=self.table,
                ),
                [(env, pos, h) for env, (pos, h) in self._heads.items()],
            )
        self._rows, self._new_owners, self._heads = [], [], {}
