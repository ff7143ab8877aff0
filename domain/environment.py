"""The Environment aggregate: one customer environment and its 2FA policy."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from domain.base import AeroAggregate
from domain.errors import InvalidInputError
from domain.rules import (
    environment_id,
    requiring_rule,
    valid_display_name,
    valid_groups,
    valid_issuer,
    valid_slug,
)


class Environment(AeroAggregate):
    TOPIC = "aero:Environment"

    class Created(AeroAggregate.Created):
        TOPIC = "aero:Environment.Created"
        slug: str
        display_name: str
        issuer: str

    class TwoFactorRequirementChanged(AeroAggregate.Event):
        TOPIC = "aero:Environment.TwoFactorRequirementChanged"
        require_2fa: bool

        def apply(self, environment: Environment) -> None:
            environment.require_2fa = self.require_2fa
            environment.policy_changed_by = self.actor
            environment.policy_changed_at = self.timestamp

    class GroupsSelected(AeroAggregate.Event):
        TOPIC = "aero:Environment.GroupsSelected"
        groups: frozenset[str]

        def apply(self, environment: Environment) -> None:
            environment.selected_groups = frozenset(self.groups)
            environment.policy_changed_by = self.actor
            environment.policy_changed_at = self.timestamp

    def __init__(
        self, slug: str, display_name: str, issuer: str, actor: str | None, timestamp: datetime
    ) -> None:
        self.slug = slug
        self.display_name = display_name
        self.issuer = issuer
        self.require_2fa = False
        self.selected_groups: frozenset[str] = frozenset()
        self.policy_changed_by = actor
        self.policy_changed_at = timestamp

    @classmethod
    def create(cls, slug: str, display_name: str, issuer: str, now: datetime) -> Environment:
        slug = valid_slug(slug)
        return cls._start(
            cls.Created,
            id=environment_id(slug),
            now=now,
            slug=slug,
            display_name=valid_display_name(display_name),
            issuer=valid_issuer(issuer),
        )

    def set_policy(self, require_2fa: bool, groups: Iterable[str], now: datetime) -> None:
        """Record only what changed: the checkbox and the group list are separate settings."""
        if not isinstance(require_2fa, bool):
            # "yes" != False would otherwise be recorded as a change to "yes".
            raise InvalidInputError("require_2fa", "must be true or false")
        groups = valid_groups(groups)
        if require_2fa != self.require_2fa:
            self._trigger(self.TwoFactorRequirementChanged, now, require_2fa=require_2fa)
        if groups != self.selected_groups:
            self._trigger(self.GroupsSelected, now, groups=groups)

    def requiring_rule(self, user_groups: frozenset[str]) -> str | None:
        return requiring_rule(self.require_2fa, self.selected_groups, user_groups)
