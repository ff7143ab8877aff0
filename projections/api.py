"""What the interfaces may ask of the read models: rows, pages and the runtime."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")

TWO_FACTOR_FILTERS = ("all", "required", "registered", "required_unregistered")


@dataclass(frozen=True)
class UserRow:
    environment: str
    username: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    required: bool
    rule: str | None
    registered: bool
    locked_until: datetime | None
    disabled: bool = False


@dataclass(frozen=True)
class AuditEntry:
    """One event as API.md's AuditEntry; ``details`` never holds a secret."""

    position: int
    occurred_at: datetime
    type: str
    environment: str
    username: str | None
    actor: str | None
    outcome: str  # "success" or "failure"
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditQuery:
    environment: str
    username: str | None = None
    types: tuple[str, ...] = ()
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class Compliance:
    environment: str
    required: int
    registered: int
    required_unregistered: int


@dataclass(frozen=True)
class ChainReport:
    environment: str
    entries_checked: int
    first_broken_position: int | None

    @property
    def intact(self) -> bool:
        return self.first_broken_position is None


class InvalidCursorError(ValueError):
    pass


class ReadModelQueries(Protocol):
    """What the routes ask of the read models."""

    def list_users(
        self, environment: str, two_factor: str, limit: int, cursor: str | None
    ) -> Page[UserRow]: ...

    def compliance(self, environment: str) -> Compliance: ...

    def audit(self, query: AuditQuery, limit: int, cursor: str | None) -> Page[AuditEntry]: ...

    def export_audit(self, query: AuditQuery) -> Iterator[AuditEntry]: ...

    def history(self, environment: str, username: str) -> list[AuditEntry]: ...

    def verify_audit_chain(self, environment: str) -> ChainReport: ...


@dataclass(frozen=True)
class ViewStatus:
    """How far one view is behind the event store, and who keeps it up to date."""

    name: str
    position: int
    head: int  # the store's last position
    lag_events: int
    # Age of the oldest event the view does not hold yet; 0 when it holds them all.
    lag_seconds: float
    holder: str | None  # None: no process holds the view's projector lease


class ReadModelLifecycle(Protocol):
    """What the server does with the read models: start, wait for writes, probe, stop."""

    def start(self) -> None: ...

    def close(self) -> None: ...

    def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        """True once every view has processed ``position``; False on timeout."""

    def is_ready(self) -> bool:
        """Caught up at start and no view stopped by an error."""

    def problems(self) -> list[str]:
        """Each stopped view's error, naming the position it could not process."""

    def status(self) -> list[ViewStatus]:
        """Each view's position, lag and projector lease holder, read now."""


class ReadModels(ReadModelQueries, ReadModelLifecycle, Protocol):
    """The running read models of one process: both of the above."""
