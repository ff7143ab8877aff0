"""The views of one store: the user directory and the audit log, in one dialect.

On PostgreSQL both live in the event store's database and share a pool; on
SQLite each has a file of its own beside the event store's. Which one is
chosen from the configuration, and the pool sized, by the composition root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eventsourcing.postgres import PostgresDatastore

from projections.audit import AuditView
from projections.audit_store import SqlAuditView
from projections.dialects import PostgresDialect, SQLiteDialect
from projections.directory import DirectoryView
from projections.directory_store import SqlDirectoryView
from projections.store import ViewStore


@dataclass
class Views:
    audit: AuditView
    directory: DirectoryView
    _close: Callable[[], None] = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    def all(self) -> dict[str, ViewStore]:
        return {"audit": self.audit, "directory": self.directory}

    def ensure(self) -> None:
        for view in self.all().values():
            view.ensure()

    def close(self) -> None:
        """Idempotent: the read models and whoever opened the views may both close them."""
        if not self._closed:
            self._closed = True
            self._close()


def sibling_path(event_store: str, view: str) -> str:
    """aero.db -> aero.audit.db: each view in its own file next to the event store."""
    path = Path(event_store)
    suffix = path.suffix or ".db"
    return str(path.with_name(f"{path.stem}.{view}{suffix}"))


def sqlite_views(event_store: str, chain_key: bytes) -> Views:
    """Views in SQLite files beside ``event_store`` (aero.db -> aero.audit.db, ...).

    Also how investigations build copies of the views in files of their own
    (with the live audit view's ``chain_key``, so the copies chain alike).
    """
    if not event_store or ":memory:" in event_store or "mode=memory" in event_store:
        raise ValueError("the read models need a file-based SQLite event store")
    audit = SqlAuditView(SQLiteDialect(sibling_path(event_store, "audit")), chain_key)
    directory = SqlDirectoryView(
        SQLiteDialect(sibling_path(event_store, SqlDirectoryView.file_stem))
    )

    def close() -> None:
        audit.close()
        directory.close()

    return Views(audit, directory, close)


def postgres_views(datastore: PostgresDatastore, chain_key: bytes) -> Views:
    """Views in the event store's PostgreSQL database; closing them closes ``datastore``."""
    dialect = PostgresDialect(datastore)
    return Views(SqlAuditView(dialect, chain_key), SqlDirectoryView(dialect), datastore.close)


def missing_views(views: Views) -> list[str]:
    """Why each view that was never built is missing (nothing is created by asking).

    On SQLite, opening a view's missing file would create it: that is checked first.
    """
    missing = []
    for name, view in views.all().items():
        dialect = view.dialect
        if isinstance(dialect, SQLiteDialect) and not Path(dialect.path).exists():
            missing.append(f"the {name} view has not been built (no {Path(dialect.path).name})")
        elif not view.exists(view.pointer_table):
            missing.append(f"the {name} view has not been built ({view.base})")
    return missing
