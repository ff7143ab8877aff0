"""The audit log: one entry per event, chained per environment (projections/audit_chain.py).

The view's interface, the projection that turns each event into its entry by
the audit rules (projections/audit_rules.py), and the checks and exports that
read the view page by page. ``verify_chain`` names the first entry whose
stored hash differs from the one recomputed.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from domain.credential import UserCredential
from domain.environment import Environment
from domain.identity import FederatedLogin, RejectedCallback
from domain.service_credential import ServiceCredential
from domain.unknown_user import UnknownUserLogin
from projections.api import AuditEntry, AuditQuery, ChainReport
from projections.audit_chain import (
    GENESIS,
    NotCanonicalError,
    canonical_json,
    chain_hash,
    entry_content,
    event_digest,
    link,
)
from projections.audit_rules import RULES, UnknownTopicError
from projections.store import ViewStore, Writer

# ----- the view's interface -----


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose aggregate an event belongs to: later events carry only the aggregate's id.

    Fixed by the aggregate's first event and never changed, so a writer may
    keep owners it has seen for as long as it likes.
    """

    environment: str
    username: str | None


class ChainedEntry(NamedTuple):
    """An entry as the view stores it: details as canonical JSON, and its chain hash."""

    position: int
    environment: str
    occurred_at: datetime
    type: str
    username: str | None
    actor: str | None
    outcome: str
    ip: str | None
    user_agent: str | None
    details: str
    event: str  # event_digest of the stored event beneath the entry
    hash: str


class AuditWriter(Writer):
    chain_key: bytes

    @abstractmethod
    def owner(self, originator_id: UUID) -> Owner | None: ...

    @abstractmethod
    def add_owner(self, originator_id: UUID, owner: Owner) -> None: ...

    @abstractmethod
    def last_hash(self, environment: str) -> str:
        """The hash of the environment's latest entry, GENESIS before the first."""

    @abstractmethod
    def append(self, entry: ChainedEntry) -> None: ...


class AuditView(ViewStore):
    """The audit log's query and update interface, whatever the database."""

    name = "audit"
    # v2: the chain is keyed (HMAC) and records each event's digest; v1's unkeyed
    # SHA-256 tables are left alone and the new version rebuilds from position 0.
    base = "audit_v2"
    file_stem = "audit"
    adopts_legacy_positions = False

    def __init__(self, dialect: Any, chain_key: bytes) -> None:
        super().__init__(dialect)
        if len(chain_key) < 32:
            raise ValueError("the audit chain key must be at least 256 bits")
        self.chain_key = chain_key

    @abstractmethod
    def writer(self, tx: Any, slot: str) -> AuditWriter: ...

    @abstractmethod
    def entries(self, query: AuditQuery, after: int, limit: int) -> list[AuditEntry]:
        """Entries matching ``query`` with positions above ``after``, oldest first."""

    @abstractmethod
    def chained(
        self, environment: str, after: int, upto: int, limit: int
    ) -> list[tuple[AuditEntry, str, str]]:
        """The environment's entries in (after, upto] with their event digests and stored
        hashes."""

    @abstractmethod
    def chain_head(self, environment: str) -> tuple[int, str] | None:
        """Position and hash of the environment's latest entry, as last written."""


# ----- the projection -----


class AuditProjection:
    """Turns each event into one entry of its environment's chain.

    The live runners and a rebuild both come through ``process``, so a rebuilt
    slot holds the very rows and hashes the live one does.
    """

    view = "audit"

    def process(
        self, writer: AuditWriter, notification: Notification, mapper: Mapper[UUID]
    ) -> None:
        rule = RULES.get(notification.topic)
        if rule is None:
            raise UnknownTopicError(f"no audit rule for topic {notification.topic!r}")
        if rule.type is None:
            return
        event: Any = mapper.to_domain_event(notification)
        owner = self._owner(writer, notification.topic, event)
        details = canonical_json(rule.details(event))
        digest = event_digest(notification.topic, notification.state)
        fields = (
            notification.id,
            owner.environment,
            event.timestamp.astimezone(UTC),
            rule.type,
            owner.username,
            event.actor,
            rule.outcome,
            event.ip,
            event.user_agent,
        )
        # Hashed before the entry is made, not replaced after: _replace cost a
        # microsecond of every entry.
        content = entry_content(*fields, details, digest)
        hashed = link(writer.chain_key, writer.last_hash(owner.environment), content)
        writer.append(ChainedEntry(*fields, details.decode(), digest, hashed))

    @staticmethod
    def _owner(writer: AuditWriter, topic: str, event: Any) -> Owner:
        if topic == Environment.Created.TOPIC:
            owner = Owner(event.slug, None)
            writer.add_owner(event.originator_id, owner)
            return owner
        if topic == UserCredential.Created.TOPIC:
            owner = Owner(event.environment, event.username)
            writer.add_owner(event.originator_id, owner)
            return owner
        if topic == ServiceCredential.Created.TOPIC:
            # The environment's own entry: a service, not a user, is concerned.
            owner = Owner(event.environment, None)
            writer.add_owner(event.originator_id, owner)
            return owner
        if topic == FederatedLogin.Created.TOPIC:
            owner = Owner(event.environment, None)
            writer.add_owner(event.originator_id, owner)
            return owner
        if topic == RejectedCallback.Created.TOPIC:
            return Owner(event.environment, None)
        if topic == UnknownUserLogin.Created.TOPIC:
            # One aggregate per attempt: nothing later refers to it.
            return Owner(event.environment, event.username)
        found = writer.owner(event.originator_id)
        if found is None:
            raise LookupError(f"no environment or user created with id {event.originator_id}")
        return found


def verify_chain(view: AuditView, environment: str, page: int = 1000) -> ChainReport:
    """Recompute the environment's chain; name the first entry whose stored hash differs.

    Rows are read page by page, so the whole log is never in memory. A tail cut
    off the table shows as the chain head's position being absent.
    """
    head = view.chain_head(environment)
    previous, checked, last, after = GENESIS, 0, 0, 0
    beyond_head: int | None = None
    while True:
        # Read past the head too: every write moves the head in the same
        # transaction, so a row beyond it was put there past the service.
        rows = view.chained(environment, after, 2**62, page)
        for entry, event, stored in rows:
            checked += 1
            if stored != _recomputed(view.chain_key, previous, entry, event):
                return ChainReport(environment, checked, entry.position)
            if head is not None and beyond_head is None and entry.position > head[0]:
                beyond_head = entry.position
            previous, last = stored, entry.position
        if len(rows) < page:
            break
        after = last
    if head is None:
        broken = last if checked else None
    elif beyond_head is not None:
        broken = beyond_head
    else:
        broken = None if (last, previous) == head else head[0]
    return ChainReport(environment, checked, broken)


def _recomputed(key: bytes, previous: str, entry: AuditEntry, event: str) -> str | None:
    try:
        return chain_hash(key, previous, entry, event)
    except NotCanonicalError:
        return None  # details the projection cannot have written: changed in the table


def export(view: AuditView, query: AuditQuery, page: int = 1000) -> Iterator[AuditEntry]:
    """Every matching entry, fetched by keyset pages of ``page`` rows."""
    after = 0
    while True:
        rows = view.entries(query, after, page)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].position
