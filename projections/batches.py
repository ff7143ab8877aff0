"""Processing a batch of notifications into a view: one transaction, rows and position together.

An event a view cannot process stops that view, after committing the events
before it, with an error naming the position (UnprocessableEventError).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, Mapper, Notification, OperationalError

from projections.audit import AuditProjection
from projections.directory import DirectoryProjection
from projections.store import ViewStore, Writer

# Worth retrying: the database was unreachable, busy or restarting.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

ProgressCallback = Callable[[int, int], None]


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
