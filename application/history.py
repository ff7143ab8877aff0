"""Point-in-time answers rebuilt from the event store alone, for investigations.

"Was bob required to use 2FA at 10:05, and why?" is answered from the events
of bob's credential and of his environment as they stood at that instant,
never from a read model: a read model shows only the present, and a bug in
one would otherwise be repeated in the answer that is meant to check it.

``History`` never writes: it reads single events and rebuilds aggregates at a
version, and the repository takes snapshots only when an application saves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from application.service import AeroAuth
from application.timeline import TimelineEntry, describe
from domain.base import AeroAggregate
from domain.credential import UserCredential
from domain.environment import Environment
from domain.errors import (
    EnvironmentNotFoundError,
    InvalidTimestampError,
    UserNotFoundError,
)
from domain.instants import rfc3339
from domain.rules import environment_id, requiring_rule, user_id

CREATED_TOPIC = UserCredential.Created.TOPIC
_PAGE = 500


@dataclass(frozen=True)
class PolicyAnswer:
    """An environment's 2FA policy as it stood at ``at``."""

    environment: str
    at: datetime
    require_2fa: bool
    groups: tuple[str, ...]
    changed_by: str | None
    changed_at: datetime
    version: int


@dataclass(frozen=True)
class RequirementAnswer:
    """Whether a user had to use 2FA at ``at``, and the policy and groups that decided it."""

    environment: str
    username: str
    at: datetime
    required: bool
    rule: str | None
    registered: bool
    disabled: bool
    groups: tuple[str, ...]
    policy_require_2fa: bool
    policy_groups: tuple[str, ...]
    policy_changed_by: str | None
    policy_changed_at: datetime
    user_version: int
    environment_version: int


@dataclass(frozen=True)
class IdentityProviderAnswer:
    """Whether an environment had an identity provider at ``at``, and its settings then."""

    environment: str
    at: datetime
    connected: bool
    issuer: str | None = None
    client_id: str | None = None
    display_name: str | None = None
    redirect_uris: tuple[str, ...] = ()
    password_login: str | None = None
    provisioning: str | None = None
    username_claim: str | None = None
    groups_claim: str | None = None
    two_factor: str | None = None
    since: datetime | None = None
    environment_version: int = 0


# The login steps of a timeline: how a user logged in.
LOGIN_TYPES = frozenset(
    {
        "login_password_succeeded",
        "login_password_failed",
        "login_federated_succeeded",
        "two_factor_succeeded",
        "two_factor_failed",
        "two_factor_registered",
        "recovery_code_used",
        "login_succeeded",
    }
)


class _Absent(Exception):
    """The aggregate has no event at or before the instant asked about."""

    def __init__(self, created_at: datetime | None) -> None:
        super().__init__()
        self.created_at = created_at  # None: it never existed at all

    def explain(self, what: str, at: datetime) -> str:
        if self.created_at is None:
            return f"no {what}"
        return (
            f"{what} did not exist at {rfc3339(at)}: it was created at {rfc3339(self.created_at)}"
        )


class History:
    """Read-only, point-in-time questions about environments and users of one app."""

    def __init__(self, app: AeroAuth) -> None:
        self._app = app

    # ----- instants -----

    def _instant(self, at: datetime, name: str = "at", *, future_ok: bool = False) -> datetime:
        """An aware instant in UTC; API.md refuses instants in the future."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidTimestampError(
                f"{name} must carry a UTC offset, e.g. 2026-03-03T10:00:00Z"
            )
        at = at.astimezone(UTC)
        now = self._app.clock.now()
        if not future_ok and at > now:
            raise InvalidTimestampError(
                f"{name} {rfc3339(at)} is in the future (now {rfc3339(now)})"
            )
        return at

    # ----- finding the version that stood at an instant -----

    def _event(self, aggregate_id: UUID, version: int) -> AeroAggregate.Event:
        """One event by its version: a single primary-key lookup."""
        for event in self._app.events.get(aggregate_id, gt=version - 1, lte=version):
            assert isinstance(event, AeroAggregate.Event)
            return event
        raise LookupError(f"{aggregate_id} has no version {version}")

    def _last(self, aggregate_id: UUID) -> AeroAggregate.Event | None:
        for event in self._app.events.get(aggregate_id, desc=True, limit=1):
            assert isinstance(event, AeroAggregate.Event)
            return event
        return None

    def _last_version_where(self, aggregate_id: UUID, before: Callable[[datetime], bool]) -> int:
        """The highest version whose timestamp satisfies ``before`` (0 if none).

        ``before`` must hold for a prefix of the versions (``ts <= T`` or ``ts < T``).

        Why this needs no index on timestamps: the timestamp lives inside each
        event's payload, but within one aggregate version order is timestamp
        order. Each event is stamped by the application clock, it can be
        stored only after every lower version, and a writer that loses the race
        for a version retries with a fresh clock reading. Versions are the
        second half of the stored events' primary key (originator_id,
        originator_version) on SQLite and PostgreSQL alike, so each probe below
        is one index lookup and the search costs about log2(versions) of them:
        14 for 10,000 events, never the whole history.

        (Nearly: commands read the clock just before loading the aggregate, so
        a command that loads a version stored after its clock reading stores an
        earlier timestamp than that version's, by microseconds; servers whose
        clocks disagree add their skew. An instant inside such a gap gets the
        state of one of the versions around it.)
        """
        last = self._last(aggregate_id)
        if last is None:
            raise _Absent(None)
        if before(last.timestamp):
            return last.originator_version
        first = self._event(aggregate_id, 1)
        if not before(first.timestamp):
            return 0
        low, high = 1, last.originator_version  # before(low) and not before(high)
        while high - low > 1:
            middle = (low + high) // 2
            if before(self._event(aggregate_id, middle).timestamp):
                low = middle
            else:
                high = middle
        return low

    def _version_at(self, aggregate_id: UUID, at: datetime) -> int:
        version = self._last_version_where(aggregate_id, lambda ts: ts <= at)
        if version == 0:
            raise _Absent(self._event(aggregate_id, 1).timestamp)
        return version

    def _rebuild(self, aggregate_id: UUID, version: int) -> Any:
        # Starts from the nearest snapshot at or below ``version`` (every
        # SNAPSHOT_INTERVAL events for credentials), so few events are replayed.
        return self._app.repository.get(aggregate_id, version=version)

    # ----- environments -----

    def _environment(self, slug: str, at: datetime) -> Environment:
        try:
            version = self._version_at(environment_id(slug), at)
        except _Absent as absent:
            raise EnvironmentNotFoundError(absent.explain(f"environment {slug!r}", at)) from None
        environment = self._rebuild(environment_id(slug), version)
        assert isinstance(environment, Environment)
        return environment

    def environment_at(self, slug: str, at: datetime) -> Environment:
        """The environment as it stood after every change at or before ``at``."""
        return self._environment(slug, self._instant(at))

    def policy_at(self, slug: str, at: datetime) -> PolicyAnswer:
        """The 2FA policy at ``at``, and who last changed it and when."""
        at = self._instant(at)
        environment = self._environment(slug, at)
        return PolicyAnswer(
            environment=environment.slug,
            at=at,
            require_2fa=environment.require_2fa,
            groups=tuple(sorted(environment.selected_groups)),
            changed_by=environment.policy_changed_by,
            changed_at=environment.policy_changed_at,
            version=environment.version,
        )

    def identity_provider_at(self, slug: str, at: datetime) -> IdentityProviderAnswer:
        """The environment's identity provider at ``at``, or that it had none."""
        at = self._instant(at)
        environment = self._environment(slug, at)
        provider = environment.identity_provider
        if provider is None:
            return IdentityProviderAnswer(
                environment.slug, at, False, environment_version=environment.version
            )
        return IdentityProviderAnswer(
            environment=environment.slug,
            at=at,
            connected=True,
            issuer=provider.issuer,
            client_id=provider.client_id,
            display_name=provider.display_name,
            redirect_uris=tuple(sorted(provider.redirect_uris)),
            password_login=provider.password_login,
            provisioning=provider.provisioning,
            username_claim=provider.username_claim,
            groups_claim=provider.groups_claim,
            two_factor=provider.two_factor,
            since=provider.discovered_at,
            environment_version=environment.version,
        )

    # ----- users -----

    def _user_by_id(self, uid: UUID, what: str, at: datetime) -> UserCredential:
        try:
            version = self._version_at(uid, at)
        except _Absent as absent:
            raise UserNotFoundError(absent.explain(what, at)) from None
        user = self._rebuild(uid, version)
        assert isinstance(user, UserCredential)
        return user

    def _user(self, slug: str, username: str, at: datetime) -> UserCredential:
        return self._user_by_id(
            user_id(slug, username), f"user {username!r} in environment {slug!r}", at
        )

    def user_at(self, slug: str, username: str, at: datetime) -> UserCredential:
        """The credential as it stood at ``at``; the environment must have existed then."""
        at = self._instant(at)
        self._environment(slug, at)
        return self._user(slug, username, at)

    def required_at(self, slug: str, username: str, at: datetime) -> RequirementAnswer:
        """Whether 2FA was required of the user at ``at``, from that instant's policy and groups."""
        at = self._instant(at)
        environment = self._environment(slug, at)
        return self._requirement(environment, self._user(slug, username, at), at)

    @staticmethod
    def _requirement(
        environment: Environment, user: UserCredential, at: datetime
    ) -> RequirementAnswer:
        rule = requiring_rule(environment.require_2fa, environment.selected_groups, user.groups)
        return RequirementAnswer(
            environment=environment.slug,
            username=user.username,
            at=at,
            required=rule is not None,
            rule=rule,
            registered=user.registered,
            disabled=user.disabled,
            groups=tuple(sorted(user.groups)),
            policy_require_2fa=environment.require_2fa,
            policy_groups=tuple(sorted(environment.selected_groups)),
            policy_changed_by=environment.policy_changed_by,
            policy_changed_at=environment.policy_changed_at,
            user_version=user.version,
            environment_version=environment.version,
        )

    def _created_users(self, slug: str, at: datetime) -> Iterator[UUID]:
        """Ids of the environment's users created at or before ``at``, from Created events.

        Only Created notifications are selected; their payload names the environment.
        """
        start: int | None = None
        while True:
            page = self._app.recorder.select_notifications(
                start, _PAGE, topics=[CREATED_TOPIC], inclusive_of_start=False
            )
            for notification in page:
                event = self._app.mapper.to_domain_event(notification)
                if (
                    isinstance(event, UserCredential.Created)
                    and event.environment == slug
                    and event.timestamp <= at
                ):
                    yield event.originator_id
            if len(page) < _PAGE:
                return
            start = page[-1].id

    def who_was_required(
        self,
        slug: str,
        at: datetime,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[RequirementAnswer]:
        """Every user of the environment who existed at ``at``, required or not, by username.

        ``progress(done, total)`` is called as each user is rebuilt.
        """
        at = self._instant(at)
        environment = self._environment(slug, at)
        ids = list(self._created_users(slug, at))
        answers = []
        for done, uid in enumerate(ids, start=1):
            user = self._user_by_id(uid, f"user {uid} in environment {slug!r}", at)
            answers.append(self._requirement(environment, user, at))
            if progress is not None:
                progress(done, len(ids))
        return sorted(answers, key=lambda a: (a.username.casefold(), a.username))

    # ----- timelines -----

    def _between(
        self, aggregate_id: UUID, since: datetime | None, until: datetime | None
    ) -> Iterator[AeroAggregate.Event]:
        """The aggregate's events with since <= timestamp < until, found by version bounds."""
        first = 0 if since is None else self._last_version_where(aggregate_id, lambda t: t < since)
        last = (
            None if until is None else self._last_version_where(aggregate_id, lambda t: t < until)
        )
        if last is not None and last <= first:
            return
        for event in self._app.events.get(aggregate_id, gt=first, lte=last):
            assert isinstance(event, AeroAggregate.Event)
            yield event

    def timeline(
        self,
        slug: str,
        username: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        include_policy: bool = False,
    ) -> list[TimelineEntry]:
        """The user's events with since <= occurred_at < until, oldest first.

        With ``include_policy`` the environment's events of the same period are
        merged in, so a changed requirement shows next to the logins it affected.
        """
        since = None if since is None else self._instant(since, "since", future_ok=True)
        until = None if until is None else self._instant(until, "until", future_ok=True)
        if since is not None and until is not None and since > until:
            raise InvalidTimestampError("since must not be later than until")
        env_uuid, uid = environment_id(slug), user_id(slug, username)
        if self._last(env_uuid) is None:
            raise EnvironmentNotFoundError(f"no environment {slug!r}")
        if self._last(uid) is None:
            raise UserNotFoundError(f"no user {username!r} in environment {slug!r}")
        env_events = list(self._between(env_uuid, since, until)) if include_policy else []
        user_events = list(self._between(uid, since, until))
        entries = [describe(e, "environment") for e in env_events]
        entries += [describe(e, "user") for e in user_events]
        # Stable: at one instant the environment's events come first, then the user's.
        return sorted(entries, key=lambda entry: entry.occurred_at)
