"""The user directory's tables and SQL, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from typing import Any, ClassVar
from uuid import UUID

from domain.rules import username_key
from projections.api import TWO_FACTOR_FILTERS, Compliance, UserRow
from projections.directory import DirectoryView, DirectoryWriter, Policy
from projections.sql import Raw, sql
from projections.store import Transaction

# The same text in the partial indexes and the queries, so both databases match them.
_FILTERS = {
    "all": "",
    "required": "required",
    "registered": "registered",
    "required_unregistered": "required AND NOT registered",
}
assert set(_FILTERS) == set(TWO_FACTOR_FILTERS)

_USER_COLUMNS = Raw(
    "environment, username_key, username, user_id, groups, roles, "
    "required, rule, registered, locked_until, disabled"
)


class SqlDirectoryView(DirectoryView):
    """The user directory in either database, in the dialect it holds."""

    tables: ClassVar[tuple[str, ...]] = ("", "_policy")
    exposed: ClassVar[tuple[str, ...]] = ("",)
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "": ("environment", "username_key"),
        "_policy": ("environment_id",),
    }
    time_columns: ClassVar[frozenset[str]] = frozenset({"locked_until"})
    bool_columns: ClassVar[frozenset[str]] = frozenset(
        {"required", "registered", "require_2fa", "disabled"}
    )

    def slot_ddl(self, slot: str) -> list[str]:
        names = {"t": self.table(slot), **self.types}
        statements = [
            sql(
                "CREATE TABLE {t} ("
                "environment TEXT NOT NULL, username_key TEXT NOT NULL, "
                "username TEXT NOT NULL, user_id TEXT NOT NULL UNIQUE, "
                "groups TEXT NOT NULL, roles TEXT NOT NULL, "
                "required {bool} NOT NULL, rule TEXT, registered {bool} NOT NULL, "
                "locked_until {time}, disabled {bool} NOT NULL, "
                "PRIMARY KEY (environment, username_key))",
                **names,
            ),
            sql(
                "CREATE TABLE {t}_policy (environment_id TEXT PRIMARY KEY, "
                "environment TEXT NOT NULL UNIQUE, require_2fa {bool} NOT NULL, "
                "groups TEXT NOT NULL)",
                **names,
            ),
        ]
        for name, condition in _FILTERS.items():
            if condition:
                statements.append(
                    sql(
                        "CREATE INDEX {t}_{n} ON {t} (environment, username_key) WHERE {c}",
                        n=name,
                        c=Raw(condition),
                        **names,
                    )
                )
        return statements

    def writer(self, tx: Transaction, slot: str) -> SqlDirectoryWriter:
        return SqlDirectoryWriter(self, tx.cursor, slot)

    def users(
        self, environment: str, two_factor: str, after: str | None, limit: int
    ) -> list[UserRow]:
        if two_factor not in _FILTERS:
            raise ValueError(f"two_factor must be one of {', '.join(TWO_FACTOR_FILTERS)}")
        where = ["environment = ?"]
        params: list[Any] = [environment]
        if after is not None:
            where.append("username_key > ?")
            params.append(after)
        if _FILTERS[two_factor]:
            where.append(_FILTERS[two_factor])
        params.append(limit)
        rows = self.query(
            sql(
                "SELECT {c} FROM {v} WHERE {w} ORDER BY username_key LIMIT ?",
                c=_USER_COLUMNS,
                v=self.base,
                w=Raw(" AND ".join(where)),
            ),
            params,
        )
        return [self.row(r) for r in rows]

    def user(self, environment: str, username: str) -> UserRow | None:
        rows = self.query(
            sql(
                "SELECT {c} FROM {v} WHERE environment = ? AND username_key = ?",
                c=_USER_COLUMNS,
                v=self.base,
            ),
            (environment, username_key(username)),
        )
        return self.row(rows[0]) if rows else None

    def compliance(self, environment: str) -> Compliance:
        rows = self.query(
            sql(
                "SELECT "
                "COALESCE(SUM(CASE WHEN required THEN 1 ELSE 0 END), 0) AS required, "
                "COALESCE(SUM(CASE WHEN registered THEN 1 ELSE 0 END), 0) AS registered, "
                "COALESCE(SUM(CASE WHEN required AND NOT registered THEN 1 ELSE 0 END), 0) "
                "AS required_unregistered FROM {v} WHERE environment = ?",
                v=self.base,
            ),
            (environment,),
        )
        row = rows[0]
        return Compliance(
            environment=environment,
            required=int(row["required"]),
            registered=int(row["registered"]),
            required_unregistered=int(row["required_unregistered"]),
        )

    def row(self, row: Any) -> UserRow:
        locked_until = row["locked_until"]
        return UserRow(
            environment=row["environment"],
            username=row["username"],
            groups=tuple(json.loads(row["groups"])),
            roles=tuple(json.loads(row["roles"])),
            required=bool(row["required"]),
            rule=row["rule"],
            registered=bool(row["registered"]),
            locked_until=None if locked_until is None else self.time_from_db(locked_until),
            disabled=bool(row["disabled"]),
        )


class SqlDirectoryWriter(DirectoryWriter):
    def __init__(self, view: SqlDirectoryView, cursor: Any, slot: str) -> None:
        self.view = view
        self.cursor = cursor
        self.table = view.table(slot)

    def flush(self) -> None:
        """Nothing to do: every write went straight into the transaction."""

    def _fetch(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        self.view.execute(self.cursor, statement, params)
        return list(self.cursor.fetchall())

    def policy(self, environment_id: UUID) -> Policy | None:
        rows = self._fetch(
            sql("SELECT * FROM {t}_policy WHERE environment_id = ?", t=self.table),
            (str(environment_id),),
        )
        return self._policy(rows[0]) if rows else None

    def policy_of(self, environment: str) -> Policy | None:
        rows = self._fetch(
            sql("SELECT * FROM {t}_policy WHERE environment = ?", t=self.table), (environment,)
        )
        return self._policy(rows[0]) if rows else None

    def put_policy(self, policy: Policy) -> None:
        self.view.execute(
            self.cursor,
            sql(
                "INSERT INTO {t}_policy (environment_id, environment, require_2fa, groups) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (environment_id) DO UPDATE "
                "SET require_2fa = excluded.require_2fa, groups = excluded.groups",
                t=self.table,
            ),
            (
                str(policy.environment_id),
                policy.environment,
                policy.require_2fa,
                json.dumps(sorted(policy.groups)),
            ),
        )

    def user(self, user_id: UUID) -> UserRow | None:
        rows = self._fetch(
            sql("SELECT {c} FROM {t} WHERE user_id = ?", c=_USER_COLUMNS, t=self.table),
            (str(user_id),),
        )
        return self.view.row(rows[0]) if rows else None

    def put_user(self, user_id: UUID, row: UserRow) -> None:
        self.view.execute(
            self.cursor,
            sql(
                "INSERT INTO {t} ({c}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET groups = excluded.groups, "
                "roles = excluded.roles, required = excluded.required, rule = excluded.rule, "
                "registered = excluded.registered, locked_until = excluded.locked_until, "
                "disabled = excluded.disabled",
                c=_USER_COLUMNS,
                t=self.table,
            ),
            (
                row.environment,
                username_key(row.username),
                row.username,
                str(user_id),
                json.dumps(list(row.groups)),
                json.dumps(list(row.roles)),
                row.required,
                row.rule,
                row.registered,
                None if row.locked_until is None else self.view.time_to_db(row.locked_until),
                row.disabled,
            ),
        )

    def users(self, environment: str) -> list[tuple[UUID, UserRow]]:
        rows = self._fetch(
            sql("SELECT {c} FROM {t} WHERE environment = ?", c=_USER_COLUMNS, t=self.table),
            (environment,),
        )
        return [(UUID(r["user_id"]), self.view.row(r)) for r in rows]

    @staticmethod
    def _policy(row: Any) -> Policy:
        return Policy(
            environment_id=UUID(row["environment_id"]),
            environment=row["environment"],
            require_2fa=bool(row["require_2fa"]),
            groups=frozenset(json.loads(row["groups"])),
        )
