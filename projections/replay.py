"""Copies of the views built from the events: as at an instant, or to check the live views.

``aero-auth investigate replay`` and ``verify`` feed the projections that keep
the live views (``batches.PROJECTIONS``, through ``batches.process_batch``)
into view stores of their own: SQLite files in a scratch directory. They read
the event store and never write to it or to its views.

A replay then copies the scratch views into one standalone SQLite file of
plain tables (``COPY_SCHEMA``) that an investigator can open offline.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, Notification

from projections.batches import PROJECTIONS, ProgressCallback, process_batch
from projections.store import ViewStore
from projections.views import Views, sqlite_views

BATCH = 1000


def feed(
    app: Application[Any],
    views: Mapping[str, ViewStore],
    stops: Mapping[str, int],
    *,
    keep: Callable[[Notification], bool] | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = BATCH,
) -> int:
    """Process the events up to each view's stop position into it; the last position read.

    Each view resumes after its own tracked position, so a second call with
    higher stops adds only the events in between. ``keep`` leaves events out.
    """
    projections = {name: PROJECTIONS[name]() for name in views}
    position = min((view.position() for view in views.values()), default=0)
    last = max(stops.values(), default=0)
    while position < last:
        batch = app.recorder.select_notifications(
            start=position, limit=batch_size, stop=last, inclusive_of_start=False
        )
        if not batch:
            break
        position = batch[-1].id
        kept = batch if keep is None else [n for n in batch if keep(n)]
        for name, view in views.items():
            mine = [n for n in kept if n.id <= stops[name]]
            if mine:
                process_batch(view, projections[name], app.mapper, mine)
        if progress is not None:
            progress(position, last)
    return position


class AtOrBefore:
    """Keeps the events that occurred at or before ``until``, judged by each one's timestamp.

    Notifications come in commit order, and across aggregates a timestamp can
    be a hair out of that order (several servers' clocks; a command that read
    the clock just before loading a version stored after it). So the scan
    never stops at the first later event: it reads up to the store's last
    position and judges every event. Within one aggregate, version order is
    time order (``domain.base`` never stamps an event before its predecessor),
    so each aggregate ends at a version it really had, the one
    ``application.history`` rebuilds for ``--at``, and no projection sees an
    event without the events it follows.
    """

    def __init__(self, mapper: Mapper[UUID], until: datetime) -> None:
        self.mapper = mapper
        self.until = until
        self.included = 0
        self.later = 0

    def __call__(self, notification: Notification) -> bool:
        event: Any = self.mapper.to_domain_event(notification)
        if event.timestamp <= self.until:
            self.included += 1
            return True
        self.later += 1
        return False


# ----- the standalone copy -----

COPY_SCHEMA = """
CREATE TABLE replay (
    until TEXT NOT NULL,
    last_position INTEGER NOT NULL,
    events INTEGER NOT NULL,
    later_events INTEGER NOT NULL,
    source TEXT NOT NULL,
    made_at TEXT NOT NULL
);
CREATE TABLE policies (
    environment TEXT PRIMARY KEY,
    require_2fa INTEGER NOT NULL,
    groups TEXT NOT NULL
);
CREATE TABLE users (
    environment TEXT NOT NULL,
    username TEXT NOT NULL,
    groups TEXT NOT NULL,
    roles TEXT NOT NULL,
    required INTEGER NOT NULL,
    rule TEXT,
    registered INTEGER NOT NULL,
    locked_until TEXT,
    user_id TEXT NOT NULL UNIQUE,
    PRIMARY KEY (environment, username)
);
CREATE TABLE audit_log (
    position INTEGER PRIMARY KEY,
    occurred_at TEXT NOT NULL,
    environment TEXT NOT NULL,
    type TEXT NOT NULL,
    username TEXT,
    actor TEXT,
    outcome TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    details TEXT NOT NULL,
    event TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_user ON audit_log (environment, username, position);
CREATE INDEX audit_log_time ON audit_log (environment, occurred_at);
CREATE TABLE audit_chain (
    environment TEXT PRIMARY KEY,
    entries INTEGER NOT NULL,
    last_position INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
"""


def instant(value: datetime) -> str:
    """UTC with six fractional digits: the form the audit chain hashes
    (``projections.audit.canonical``), which also sorts as text."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ReplaySummary:
    path: Path
    until: datetime
    last_position: int
    events: int
    later_events: int
    environments: int
    users: int
    audit_entries: int


def replay_until(
    app: Application[Any],
    until: datetime,
    target: Path,
    source: str,
    chain_key: bytes,
    progress: ProgressCallback | None = None,
) -> ReplaySummary:
    """Write the views as they stood at ``until`` into the new SQLite file ``target``.

    The scratch views and the copy are made in a hidden directory beside
    ``target`` and the copy is hard-linked into place at the end: the name
    never shows a half-written file, and an existing file is never replaced.
    ``source`` names the event store in the copy (without any password);
    ``chain_key`` is the audit key, so the copy's chain is the live one's.
    """
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        scratch = sqlite_views(str(work / "views.db"), chain_key)
        try:
            scratch.ensure()
            # Events recorded after this are not considered, whatever their timestamps.
            last = app.recorder.max_notification_id() or 0
            keep = AtOrBefore(app.mapper, until)
            views = scratch.all()
            feed(app, views, dict.fromkeys(views, last), keep=keep, progress=progress)
            info = (
                instant(until),
                last,
                keep.included,
                keep.later,
                source,
                instant(datetime.now(UTC)),
            )
            copy = work / "copy.db"
            counts = _write_copy(copy, scratch, until, info)
        finally:
            scratch.close()
        _publish(copy, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ReplaySummary(target, until, last, keep.included, keep.later, *counts)


def _publish(copy: Path, target: Path) -> None:
    """Give the finished copy its name, never replacing a file that appeared meanwhile."""
    try:
        os.link(copy, target)
    except FileExistsError:
        raise
    except OSError:
        # A filesystem without hard links: create the name exclusively, then copy.
        with copy.open("rb") as source, target.open("xb") as out:
            shutil.copyfileobj(source, out)


def _write_copy(
    path: Path, views: Views, until: datetime, info: tuple[Any, ...]
) -> tuple[int, int, int]:
    """The plain tables of COPY_SCHEMA from the scratch views; counts of what they hold."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executescript(COPY_SCHEMA)
            conn.execute("INSERT INTO replay VALUES (?, ?, ?, ?, ?, ?)", info)
            with views.directory.snapshot() as directory:
                environments = _insert(
                    conn,
                    "INSERT INTO policies VALUES (?, ?, ?)",
                    (
                        (row["environment"], int(row["require_2fa"]), row["groups"])
                        for row in directory.rows("_policy")
                    ),
                )
                users = _insert(
                    conn,
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (_user(row, until) for row in directory.rows()),
                )
            with views.audit.snapshot() as audit:
                entries = _insert(
                    conn,
                    "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (_entry(row) for row in audit.rows()),
                )
                _insert(
                    conn,
                    "INSERT INTO audit_chain VALUES (?, 0, ?, ?)",
                    (
                        (row["environment"], row["position"], row["hash"])
                        for row in audit.rows("_chain")
                    ),
                )
            conn.execute(
                "UPDATE audit_chain SET entries = (SELECT COUNT(*) FROM audit_log "
                "WHERE audit_log.environment = audit_chain.environment)"
            )
    finally:
        conn.close()
    return environments, users, entries


def _insert(conn: sqlite3.Connection, statement: str, rows: Iterable[tuple[Any, ...]]) -> int:
    """Streams the rows in; the number inserted."""
    return conn.executemany(statement, rows).rowcount


def _user(row: Mapping[str, Any], until: datetime) -> tuple[Any, ...]:
    # As the API shows a user at an instant: a lock that had ended by then is no lock.
    locked_until = row["locked_until"]
    in_force = locked_until is not None and locked_until > until
    return (
        row["environment"],
        row["username"],
        row["groups"],
        row["roles"],
        int(row["required"]),
        row["rule"],
        int(row["registered"]),
        instant(locked_until) if in_force else None,
        row["user_id"],
    )


def _entry(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        row["position"],
        instant(row["occurred_at"]),
        row["environment"],
        row["type"],
        row["username"],
        row["actor"],
        row["outcome"],
        row["ip"],
        row["user_agent"],
        row["details"],
        row["event"],
        row["hash"],
    )
