"""The audit log: one entry per event, chained per environment with SHA-256 (SECURITY.md 19).

Each entry stores ``hash = sha256(previous hash || canonical JSON of the
entry)``, the previous hash being that of the environment's entry before it
(32 zero bytes for the first). Changing, inserting or deleting a stored entry
breaks the chain at that entry or the next one, and ``verify_chain`` names it.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from domain.credential import UnknownUserLogin, UserCredential
from domain.environment import Environment
from domain.instants import rfc3339
from projections.api import AuditEntry, AuditQuery, ChainReport
from projections.store import ViewStore, Writer

SUCCESS = "success"
FAILURE = "failure"
GENESIS = "0" * 64


class UnknownTopicError(LookupError):
    """An event this version of the view does not know: never skipped silently."""


@dataclass(frozen=True)
class Rule:
    """How one kind of event reads in the audit log. ``details`` never copies a secret."""

    type: str
    outcome: str
    details: Callable[[Any], dict[str, Any]]


def _nothing(event: Any) -> dict[str, Any]:
    return {}


def _locked_until(event: Any) -> dict[str, Any]:
    return {"locked_until": rfc3339(event.locked_until)}


C = UserCredential
E = Environment

# Every event topic the domain records. A topic missing here stops the view.
RULES: dict[str, Rule] = {
    E.Created.TOPIC: Rule(
        "environment_created",
        SUCCESS,
        lambda e: {"display_name": e.display_name, "issuer": e.issuer},
    ),
    E.TwoFactorRequirementChanged.TOPIC: Rule(
        "two_factor_requirement_changed", SUCCESS, lambda e: {"require_2fa": e.require_2fa}
    ),
    E.GroupsSelected.TOPIC: Rule(
        "groups_selected", SUCCESS, lambda e: {"groups": sorted(e.groups)}
    ),
    C.Created.TOPIC: Rule(
        "user_created",
        SUCCESS,
        lambda e: {"groups": sorted(e.groups), "roles": sorted(e.roles)},
    ),
    C.PasswordChanged.TOPIC: Rule("password_changed", SUCCESS, _nothing),
    C.PasswordRehashed.TOPIC: Rule("password_rehashed", SUCCESS, _nothing),
    C.GroupsChanged.TOPIC: Rule("groups_changed", SUCCESS, lambda e: {"groups": sorted(e.groups)}),
    C.RolesChanged.TOPIC: Rule("roles_changed", SUCCESS, lambda e: {"roles": sorted(e.roles)}),
    C.PasswordStepSucceeded.TOPIC: Rule(
        "login_password_succeeded", SUCCESS, lambda e: {"next_step": e.next_step}
    ),
    C.PasswordStepFailed.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": e.reason}
    ),
    C.PasswordStepThrottled.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": "throttled", **_locked_until(e)}
    ),
    C.PasswordStepLocked.TOPIC: Rule("password_step_locked", FAILURE, _locked_until),
    C.RegistrationStarted.TOPIC: Rule("two_factor_registration_started", SUCCESS, _nothing),
    C.AuthenticatorRegistered.TOPIC: Rule("two_factor_registered", SUCCESS, _nothing),
    C.CodeAccepted.TOPIC: Rule("two_factor_succeeded", SUCCESS, lambda e: {"kind": "totp"}),
    C.CodeRejected.TOPIC: Rule(
        "two_factor_failed", FAILURE, lambda e: {"kind": e.kind, "reason": e.reason}
    ),
    C.CodeReplayed.TOPIC: Rule("two_factor_code_replayed", FAILURE, _nothing),
    C.CodeStepLocked.TOPIC: Rule("two_factor_locked", FAILURE, _locked_until),
    C.CodeStepThrottled.TOPIC: Rule(
        "two_factor_throttled", FAILURE, lambda e: {"reason": e.reason}
    ),
    C.AuthenticatorDisabled.TOPIC: Rule(
        "two_factor_disabled", FAILURE, lambda e: {"total_failures": e.total_failures}
    ),
    C.TwoFactorReset.TOPIC: Rule("two_factor_reset", SUCCESS, lambda e: {"reason": e.reason}),
    C.RecoveryCodesIssued.TOPIC: Rule(
        "recovery_codes_issued", SUCCESS, lambda e: {"count": len(e.code_hashes)}
    ),
    C.RecoveryCodeUsed.TOPIC: Rule(
        "recovery_code_used", SUCCESS, lambda e: {"remaining": e.remaining}
    ),
    C.LoginSucceeded.TOPIC: Rule("login_succeeded", SUCCESS, lambda e: {"method": e.method}),
    UnknownUserLogin.Created.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": "unknown_user"}
    ),
}

AUDIT_TYPES = tuple(sorted({rule.type for rule in RULES.values()}))


# ----- the hash chain -----


def canonical(entry: AuditEntry) -> bytes:
    """The entry's content as bytes that both databases and every rebuild reproduce exactly."""
    content = {
        "position": entry.position,
        "environment": entry.environment,
        "occurred_at": entry.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "type": entry.type,
        "username": entry.username,
        "actor": entry.actor,
        "outcome": entry.outcome,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "details": entry.details,
    }
    return canonical_json(content).encode()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(previous: str, entry: AuditEntry) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + canonical(entry)).hexdigest()


# ----- the view's interface -----


@dataclass(frozen=True)
class Owner:
    """Whose aggregate an event belongs to: later events carry only the aggregate's id."""

    environment: str
    username: str | None


class AuditWriter(Writer):
    @abstractmethod
    def owner(self, originator_id: UUID) -> Owner | None: ...

    @abstractmethod
    def add_owner(self, originator_id: UUID, owner: Owner) -> None: ...

    @abstractmethod
    def last_hash(self, environment: str) -> str:
        """The hash of the environment's latest entry, GENESIS before the first."""

    @abstractmethod
    def append(self, entry: AuditEntry, hash: str) -> None: ...


class AuditView(ViewStore):
    """The audit log's query and update interface, whatever the database."""

    name = "audit"
    base = "audit_v1"

    @abstractmethod
    def writer(self, tx: Any, slot: str) -> AuditWriter: ...

    @abstractmethod
    def entries(self, query: AuditQuery, after: int, limit: int) -> list[AuditEntry]:
        """Entries matching ``query`` with positions above ``after``, oldest first."""

    @abstractmethod
    def chained(
        self, environment: str, after: int, upto: int, limit: int
    ) -> list[tuple[AuditEntry, str]]:
        """The environment's entries in (after, upto] with their stored hashes."""

    @abstractmethod
    def chain_head(self, environment: str) -> tuple[int, str] | None:
        """Position and hash of the environment's latest entry, as last written."""


# ----- the projection -----


class AuditProjection:
    """Turns each event into one entry of its environment's chain."""

    view = "audit"

    def process(
        self, writer: AuditWriter, notification: Notification, mapper: Mapper[UUID]
    ) -> None:
        rule = RULES.get(notification.topic)
        if rule is None:
            raise UnknownTopicError(f"no audit rule for topic {notification.topic!r}")
        event: Any = mapper.to_domain_event(notification)
        owner = self._owner(writer, notification.topic, event)
        entry = AuditEntry(
            position=notification.id,
            occurred_at=event.timestamp.astimezone(UTC),
            type=rule.type,
            environment=owner.environment,
            username=owner.username,
            actor=event.actor,
            outcome=rule.outcome,
            ip=event.ip,
            user_agent=event.user_agent,
            details=rule.details(event),
        )
        writer.append(entry, chain_hash(writer.last_hash(owner.environment), entry))

    @staticmethod
    def _owner(writer: AuditWriter, topic: str, event: Any) -> Owner:
        if topic == E.Created.TOPIC:
            owner = Owner(event.slug, None)
            writer.add_owner(event.originator_id, owner)
            return owner
        if topic == C.Created.TOPIC:
            owner = Owner(event.environment, event.username)
            writer.add_owner(event.originator_id, owner)
            return owner
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
        for entry, stored in rows:
            checked += 1
            if stored != chain_hash(previous, entry):
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


def export(view: AuditView, query: AuditQuery, page: int = 1000) -> Iterator[AuditEntry]:
    """Every matching entry, fetched by keyset pages of ``page`` rows."""
    after = 0
    while True:
        rows = view.entries(query, after, page)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].position
