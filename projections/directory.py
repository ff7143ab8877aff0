"""The user directory: who must use 2FA, who has registered, whose code step is locked.

``required`` follows the policy of API.md through ``domain.rules.requiring_rule``,
recomputed for every user of an environment when its policy changes and for
one user when their groups change.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from domain.credential import UserCredential
from domain.environment import Environment
from domain.rules import requiring_rule
from projections.api import Compliance, UserRow
from projections.audit_rules import RULES, UnknownTopicError
from projections.store import ViewStore, Writer

C = UserCredential
E = Environment


@dataclass(frozen=True)
class Policy:
    environment_id: UUID
    environment: str
    require_2fa: bool
    groups: frozenset[str]

    def rule(self, user_groups: tuple[str, ...]) -> str | None:
        return requiring_rule(self.require_2fa, self.groups, frozenset(user_groups))


class DirectoryWriter(Writer):
    @abstractmethod
    def policy(self, environment_id: UUID) -> Policy | None: ...

    @abstractmethod
    def policy_of(self, environment: str) -> Policy | None: ...

    @abstractmethod
    def put_policy(self, policy: Policy) -> None: ...

    @abstractmethod
    def user(self, user_id: UUID) -> UserRow | None: ...

    @abstractmethod
    def put_user(self, user_id: UUID, row: UserRow) -> None: ...

    @abstractmethod
    def users(self, environment: str) -> list[tuple[UUID, UserRow]]: ...


class DirectoryView(ViewStore):
    """The user directory's query and update interface, whatever the database."""

    name = "directory"
    # v2 added ``disabled``: a new version fills its own tables from position 0.
    base = "user_directory_v2"
    # On SQLite in a file of its own (aero.directory-v2.db): the older version's
    # file, projector lease and library tracking table stay the older release's.
    file_stem = "directory-v2"

    @abstractmethod
    def writer(self, tx: Any, slot: str) -> DirectoryWriter: ...

    @abstractmethod
    def users(
        self, environment: str, two_factor: str, after: str | None, limit: int
    ) -> list[UserRow]:
        """Users passing the filter, ordered by username key, keys above ``after``."""

    @abstractmethod
    def user(self, environment: str, username: str) -> UserRow | None: ...

    @abstractmethod
    def compliance(self, environment: str) -> Compliance: ...


class DirectoryProjection:
    view = "directory"

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[DirectoryWriter, Any], None]] = {
            E.Created.TOPIC: self._environment_created,
            E.TwoFactorRequirementChanged.TOPIC: self._requirement_changed,
            E.GroupsSelected.TOPIC: self._groups_selected,
            C.Created.TOPIC: self._user_created,
            C.GroupsChanged.TOPIC: self._groups_changed,
            C.RolesChanged.TOPIC: self._roles_changed,
            C.AuthenticatorRegistered.TOPIC: self._registered,
            C.TwoFactorReset.TOPIC: self._reset,
            C.CodeStepLocked.TOPIC: self._locked,
            C.AuthenticatorDisabled.TOPIC: self._disabled,
            C.CodeAccepted.TOPIC: self._unlocked,
            C.RecoveryCodeUsed.TOPIC: self._unlocked,
        }
        # Known events that change nothing here; decoding them would be wasted work.
        self._ignored = frozenset(RULES) - frozenset(self._handlers)

    def process(
        self, writer: DirectoryWriter, notification: Notification, mapper: Mapper[UUID]
    ) -> None:
        handler = self._handlers.get(notification.topic)
        if handler is not None:
            handler(writer, mapper.to_domain_event(notification))
        elif notification.topic not in self._ignored:
            raise UnknownTopicError(f"no directory rule for topic {notification.topic!r}")

    # ----- environments -----

    def _environment_created(self, writer: DirectoryWriter, event: Any) -> None:
        writer.put_policy(Policy(event.originator_id, event.slug, False, frozenset()))

    def _requirement_changed(self, writer: DirectoryWriter, event: Any) -> None:
        policy = replace(self._policy(writer, event), require_2fa=event.require_2fa)
        self._apply_policy(writer, policy)

    def _groups_selected(self, writer: DirectoryWriter, event: Any) -> None:
        policy = replace(self._policy(writer, event), groups=frozenset(event.groups))
        self._apply_policy(writer, policy)

    @staticmethod
    def _policy(writer: DirectoryWriter, event: Any) -> Policy:
        policy = writer.policy(event.originator_id)
        if policy is None:
            raise LookupError(f"no environment created with id {event.originator_id}")
        return policy

    @staticmethod
    def _apply_policy(writer: DirectoryWriter, policy: Policy) -> None:
        writer.put_policy(policy)
        for user_id, row in writer.users(policy.environment):
            rule = policy.rule(row.groups)
            if rule != row.rule:
                writer.put_user(user_id, replace(row, required=rule is not None, rule=rule))

    # ----- users -----

    def _user_created(self, writer: DirectoryWriter, event: Any) -> None:
        policy = writer.policy_of(event.environment)
        if policy is None:
            raise LookupError(f"user {event.username!r} of unknown environment")
        groups = tuple(sorted(event.groups))
        rule = policy.rule(groups)
        row = UserRow(
            environment=event.environment,
            username=event.username,
            groups=groups,
            roles=tuple(sorted(event.roles)),
            required=rule is not None,
            rule=rule,
            registered=False,
            locked_until=None,
        )
        writer.put_user(event.originator_id, row)

    def _groups_changed(self, writer: DirectoryWriter, event: Any) -> None:
        row = self._user(writer, event)
        policy = writer.policy_of(row.environment)
        assert policy is not None, "a user's environment exists"
        groups = tuple(sorted(event.groups))
        rule = policy.rule(groups)
        writer.put_user(
            event.originator_id, replace(row, groups=groups, required=rule is not None, rule=rule)
        )

    def _roles_changed(self, writer: DirectoryWriter, event: Any) -> None:
        row = self._user(writer, event)
        writer.put_user(event.originator_id, replace(row, roles=tuple(sorted(event.roles))))

    def _registered(self, writer: DirectoryWriter, event: Any) -> None:
        row = self._user(writer, event)
        writer.put_user(
            event.originator_id,
            replace(row, registered=True, locked_until=None, disabled=False),
        )

    def _reset(self, writer: DirectoryWriter, event: Any) -> None:
        row = self._user(writer, event)
        writer.put_user(
            event.originator_id,
            replace(row, registered=False, locked_until=None, disabled=False),
        )

    def _disabled(self, writer: DirectoryWriter, event: Any) -> None:
        row = self._user(writer, event)
        writer.put_user(event.originator_id, replace(row, disabled=True))

    def _locked(self, writer: DirectoryWriter, event: Any) -> None:
        row = self._user(writer, event)
        writer.put_user(event.originator_id, replace(row, locked_until=event.locked_until))

    def _unlocked(self, writer: DirectoryWriter, event: Any) -> None:
        row = self._user(writer, event)
        if row.locked_until is not None:
            writer.put_user(event.originator_id, replace(row, locked_until=None))

    @staticmethod
    def _user(writer: DirectoryWriter, event: Any) -> UserRow:
        row = writer.user(event.originator_id)
        if row is None:
            raise LookupError(f"no user created with id {event.originator_id}")
        return row
