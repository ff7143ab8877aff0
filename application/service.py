"""The AeroAuth application: commands as verbs, load -> decide -> save.

Decisions come from the aggregates alone, never from a read model. Commands
that load an aggregate retry on a version conflict by reloading and deciding
again, which is also how two concurrent submissions of one valid code end:
the second reload sees the first one's accepted time step and records a replay.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
)
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    PersistenceError,
    RecordConflictError,
    Recording,
    Transcoding,
)

from application.clock import Clock, SystemClock
from application.passwords import Argon2Hasher, check_strength
from application.secretbox import SecretBox
from domain import recovery
from domain.credential import (
    DONE,
    REGISTRATION,
    SNAPSHOT_INTERVAL,
    TWO_FACTOR,
    UnknownUserLogin,
    UserCredential,
)
from domain.environment import Environment
from domain.errors import (
    EnvironmentExistsError,
    EnvironmentNotFoundError,
    GroupsManagedByProviderError,
    InvalidChallengeError,
    InvalidCodeError,
    InvalidCredentialsError,
    PasswordLoginDisabledError,
    TwoFactorNotRegisteredError,
    UserExistsError,
    UserNotFoundError,
)
from domain.origin import acting_as
from domain.rules import (
    environment_id,
    user_id,
    valid_groups,
    valid_roles,
    valid_slug,
    valid_username,
)
from domain.throttle import CODE_THROTTLE, PASSWORD_THROTTLE, Throttle
from domain.totp import is_well_formed, matching_step, provisioning_uri, random_secret

logger = logging.getLogger("aero_auth.application")

# The notification position of the last save in this context (request or
# thread): the HTTP layer waits for the read models to reach it before it
# answers an admin write, so reads reflect writes (API.md).
last_saved_position: ContextVar[int | None] = ContextVar("last_saved_position", default=None)

P = ParamSpec("P")
R = TypeVar("R")

AUTHENTICATED = "authenticated"
TWO_FACTOR_REQUIRED = "two_factor_required"
TWO_FACTOR_REGISTRATION_REQUIRED = "two_factor_registration_required"
_STATUS = {
    DONE: AUTHENTICATED,
    TWO_FACTOR: TWO_FACTOR_REQUIRED,
    REGISTRATION: TWO_FACTOR_REGISTRATION_REQUIRED,
}


class FrozensetAsList(Transcoding):
    """Groups, roles and code hashes are frozensets; JSON has only lists."""

    type = frozenset
    name = "frozenset"

    def encode(self, obj: frozenset[Any]) -> list[Any]:
        return sorted(obj)

    def decode(self, data: list[Any]) -> frozenset[Any]:
        return frozenset(data)


@dataclass(frozen=True)
class SecurityPolicy:
    """The throttling and lifetimes of SECURITY.md; each is a setting."""

    password_throttle: Throttle = PASSWORD_THROTTLE
    code_throttle: Throttle = CODE_THROTTLE
    login_ttl: timedelta = timedelta(minutes=5)
    conflict_retries: int = 10


@dataclass(frozen=True)
class LoginStep:
    """What the password step leads to; ``challenge_id`` goes into the login token."""

    status: str
    user: UserCredential
    challenge_id: str | None
    expires_at: datetime | None


@dataclass(frozen=True)
class Registration:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class LoginCompleted:
    user: UserCredential
    recovery_codes: list[str] | None = field(default=None)


def challenge_key(challenge_id: str) -> str:
    """What events keep of a login challenge: its SHA-256, never the value in the token.

    The store may hold no token (SECURITY.md 15). A challenge carries 128 random
    bits, so its unsalted hash cannot be reversed or looked up.
    """
    return hashlib.sha256(challenge_id.encode()).hexdigest()


def retry_on_conflict(method: Callable[P, R]) -> Callable[P, R]:
    """Reload and decide again when another writer saved the aggregate first."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        app = args[0]
        assert isinstance(app, AeroAuth)
        for _ in range(app.security.conflict_retries):
            try:
                return method(*args, **kwargs)
            except RecordConflictError:
                continue
        return method(*args, **kwargs)

    return wrapper


def apply_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` without its per-event ``isinstance``
    against a runtime Protocol: on Python 3.11 each such check walks the
    protocol's attributes, and costs more than applying the event."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class AeroRepository(Repository[UUID]):
    """The library's repository, loading with :func:`apply_events` unless told otherwise."""

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = None,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        return super().get(
            aggregate_id,
            version=version,
            projector_func=projector_func or apply_events,
            fastforward_skipping=fastforward_skipping,
            deepcopy_from_cache=deepcopy_from_cache,
        )


class AeroAuth(Application[UUID]):
    """Environments, their 2FA policy, and the credentials of their users."""

    name = "AeroAuth"
    snapshotting_intervals = {UserCredential: SNAPSHOT_INTERVAL}
    snapshotting_projectors = {UserCredential: apply_events}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock | None = None,
        hasher: Argon2Hasher | None = None,
        secret_box: SecretBox | None = None,
        security: SecurityPolicy | None = None,
    ) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        self.hasher = hasher or Argon2Hasher()
        if secret_box is None:
            raise ValueError("AeroAuth needs a SecretBox: keys come from configuration")
        self.secret_box = secret_box
        self.security = security or SecurityPolicy()

    def construct_repository(self) -> Repository[UUID]:
        # The library's repository as the library configures it (cache, fast-forward,
        # copies), with aero-auth's default way of applying events.
        library = super().construct_repository()
        repository = AeroRepository(
            library.event_store,
            snapshot_store=library.snapshot_store,
            fastforward=library.fastforward,
            fastforward_skipping=library.fastforward_skipping,
            deepcopy_from_cache=library.deepcopy_from_cache,
        )
        repository.cache = library.cache
        return repository

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        # Taken after the events committed, and only to load faster: a login that
        # succeeded (its code now used up) must not answer 500 because its
        # snapshot could not be written. The next save at an interval tries again.
        try:
            super()._take_snapshots(processing_event)
        except PersistenceError as e:
            logger.warning("snapshot not written, events saved: %s: %s", type(e).__name__, e)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if recordings:
            last_saved_position.set(recordings[-1].notification.id)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(FrozensetAsList())

    # ----- loading -----

    def environment(self, slug: str) -> Environment:
        try:
            environment: Environment = self.repository.get(environment_id(slug))
        except AggregateNotFoundError:
            raise EnvironmentNotFoundError(f"no environment {slug!r}") from None
        return environment

    def user(self, slug: str, username: str) -> UserCredential:
        self.environment(slug)
        return self._user(slug, username)

    def _user(self, slug: str, username: str) -> UserCredential:
        try:
            user: UserCredential = self.repository.get(user_id(slug, username))
        except AggregateNotFoundError:
            raise UserNotFoundError(f"no user {username!r} in environment {slug!r}") from None
        return user

    def user_by_id(self, user_uuid: UUID) -> UserCredential:
        try:
            user: UserCredential = self.repository.get(user_uuid)
        except AggregateNotFoundError:
            raise UserNotFoundError("no such user") from None
        return user

    def requiring_rule(self, user: UserCredential) -> str | None:
        return self.environment(user.environment).requiring_rule(user.groups)

    # ----- environments and policy -----

    def create_environment(
        self,
        slug: str,
        display_name: str,
        issuer: str,
        admin_username: str,
        admin_password: str,
    ) -> Environment:
        """Create an environment and its first user, with roles admin and auditor, atomically."""
        now = self.clock.now()
        slug = valid_slug(slug)
        admin_username = valid_username(admin_username)
        environment = Environment.create(slug, display_name, issuer, now)
        password = check_strength(admin_password, admin_username)
        admin = UserCredential.create(
            slug, admin_username, self.hasher.hash(password), (), ("admin", "auditor"), now
        )
        try:
            self.save(environment, admin)
        except IntegrityError:
            raise EnvironmentExistsError(f"environment {slug!r} exists") from None
        return environment

    @retry_on_conflict
    def set_policy(self, slug: str, require_2fa: bool, groups: Iterable[str]) -> Environment:
        """The "Require 2FA" checkbox and the "Require 2FA for groups" list."""
        environment = self.environment(slug)
        environment.set_policy(require_2fa, groups, self.clock.now())
        self.save(environment)
        return environment

    # ----- users (admin) -----

    def create_user(
        self,
        slug: str,
        username: str,
        password: str,
        groups: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> UserCredential:
        now = self.clock.now()
        self.environment(slug)
        username = valid_username(username)
        # Validate everything before the expensive hash.
        groups, roles = valid_groups(groups), valid_roles(roles)
        password = check_strength(password, username)
        user = UserCredential.create(
            slug, username, self.hasher.hash(password), groups, roles, now
        )
        try:
            self.save(user)
        except IntegrityError:
            raise UserExistsError(f"user {username!r} exists in {slug!r}") from None
        return user

    @retry_on_conflict
    def change_groups(self, slug: str, username: str, groups: Iterable[str]) -> UserCredential:
        if self.environment(slug).groups_managed_by_provider:
            raise GroupsManagedByProviderError(
                "the identity provider sets the groups at every login (groups_claim)"
            )
        user = self.user(slug, username)
        user.change_groups(groups, self.clock.now())
        self.save(user)
        return user

    @retry_on_conflict
    def change_roles(self, slug: str, username: str, roles: Iterable[str]) -> UserCredential:
        user = self.user(slug, username)
        user.change_roles(roles, self.clock.now())
        self.save(user)
        return user

    def change_password(self, slug: str, username: str, password: str) -> UserCredential:
        """An admin sets a new password: pending logins and sessions end."""
        user = self.user(slug, username)
        password_hash = self.hasher.hash(check_strength(password, user.username))
        return self._set_password_hash(slug, username, password_hash)

    @retry_on_conflict
    def _set_password_hash(self, slug: str, username: str, password_hash: str) -> UserCredential:
        user = self.user(slug, username)
        user.change_password(password_hash, self.clock.now())
        self.save(user)
        return user

    @retry_on_conflict
    def reset_two_factor(self, slug: str, username: str, reason: str) -> UserCredential:
        """Forget the authenticator and recovery codes; the next login registers again."""
        user = self.user(slug, username)
        user.reset_two_factor(reason, self.clock.now())
        self.save(user)
        return user

    # ----- self service -----

    def change_own_password(
        self, slug: str, username: str, current_password: str, new_password: str
    ) -> UserCredential:
        """The user proves the current password; a wrong one counts like a failed login."""
        user = self.user(slug, username)
        if not user.has_password:
            raise PasswordLoginDisabledError("this user logs in through the identity provider")
        with acting_as(user.username):
            self._check_password(slug, username, current_password)
            password_hash = self.hasher.hash(check_strength(new_password, user.username))
            return self._set_password_hash(slug, username, password_hash)

    @retry_on_conflict
    def _check_password(self, slug: str, username: str, password: str) -> None:
        now = self.clock.now()
        self._verify_password(self._user(slug, username), password, now)

    def _verify_password(self, user: UserCredential, password: str, now: datetime) -> None:
        """Record a failed or throttled attempt and raise; a locked step costs a hash too."""
        if user.password_step_locked_until(now) is not None:
            self.hasher.verify_dummy(password)
            user.throttle_password_step(now)
        elif not user.has_password:
            # Provisioned by the identity provider: refused as a wrong password, in
            # the time a wrong password takes.
            self.hasher.verify_dummy(password)
            user.fail_password_step(self.security.password_throttle, now)
        elif not self.hasher.verify(user.password_hash, password):
            user.fail_password_step(self.security.password_throttle, now)
        else:
            return
        self.save(user)
        raise InvalidCredentialsError()

    @retry_on_conflict
    def regenerate_recovery_codes(self, slug: str, username: str) -> list[str]:
        """A new set of ten codes, shown once; the previous set stops working."""
        user = self.user(slug, username)
        if not user.registered:
            raise TwoFactorNotRegisteredError(
                "register an authenticator before asking for recovery codes"
            )
        with acting_as(user.username):
            codes = recovery.generate_codes()
            user.issue_recovery_codes(
                [recovery.hash_code(c) for c in codes], self.clock.now()
            )
            self.save(user)
        return codes

    # ----- login -----

    def start_login(self, slug: str, username: str, password: str) -> LoginStep:
        """The password step. Unknown user, wrong password and throttling look the same."""
        with acting_as(username):
            return self._start_login(slug, username, password)

    @retry_on_conflict
    def _start_login(self, slug: str, username: str, password: str) -> LoginStep:
        now = self.clock.now()
        # Loaded once per attempt: it answers both "does it exist" and the policy.
        environment = self.environment(slug)
        try:
            user = self._user(slug, username)
        except UserNotFoundError:
            self.hasher.verify_dummy(password)
            self.save(UnknownUserLogin.record(slug, username[:64], now))
            raise InvalidCredentialsError() from None
        # The user as created is the actor, whatever case the username was typed in.
        with acting_as(user.username):
            self._verify_password(user, password, now)
            if not environment.password_login_allowed(user.roles):
                # The right password, refused by the provider's break-glass rule.
                user.refuse_password_login("password_login_disabled", now)
                self.save(user)
                raise PasswordLoginDisabledError(
                    "this environment's users log in through its identity provider"
                )
            if self.hasher.needs_rehash(user.password_hash):
                user.rehash_password(self.hasher.hash(password), now)
            required = environment.requiring_rule(user.groups) is not None
            # 128 random bits: the login token is bound to this challenge (SECURITY.md 11).
            challenge_id = secrets.token_urlsafe(16)
            expires_at = now + self.security.login_ttl
            step = user.pass_password_step(
                challenge_key(challenge_id), required, expires_at, now
            )
            self.save(user)
        done = step == DONE
        return LoginStep(
            status=_STATUS[step],
            user=user,
            challenge_id=None if done else challenge_id,
            expires_at=None if done else expires_at,
        )

    @retry_on_conflict
    def start_registration(self, slug: str, username: str, challenge_id: str) -> Registration:
        """A secret for the authenticator app; the same one again within the same login."""
        now = self.clock.now()
        challenge = challenge_key(challenge_id)
        environment = self.environment(slug)
        user = self._user(slug, username)
        with acting_as(user.username):
            user.check_challenge(challenge, REGISTRATION, now)
            if user.pending_secret is not None and user.pending_challenge_id == challenge:
                secret = self._decrypt(user, user.pending_secret)
            else:
                secret = random_secret()
                user.start_registration(challenge, self._encrypt(user, secret), now)
                self.save(user)
        return Registration(
            secret=secret,
            otpauth_uri=provisioning_uri(secret, user.username, environment.issuer),
        )

    @retry_on_conflict
    def confirm_registration(
        self, slug: str, username: str, challenge_id: str, code: str
    ) -> LoginCompleted:
        """The first code from the app proves the scan worked; then ten recovery codes."""
        challenge = challenge_key(challenge_id)
        with self._second_step(slug, username, challenge, REGISTRATION) as (user, now):
            if user.pending_secret is None or user.pending_challenge_id != challenge:
                raise InvalidChallengeError("registration was not started in this login")
            step = self._matching_step(user, user.pending_secret, code, "totp", now)
            user.register_authenticator(challenge, step, now)
            codes = recovery.generate_codes()
            user.issue_recovery_codes([recovery.hash_code(c) for c in codes], now)
            user.complete_login("registration", now)
            self.save(user)
        return LoginCompleted(user=user, recovery_codes=codes)

    @retry_on_conflict
    def verify_code(self, slug: str, username: str, challenge_id: str, code: str) -> LoginCompleted:
        """The code step: strict form, +-1 step, each time step accepted once."""
        with self._second_step(slug, username, challenge_key(challenge_id), TWO_FACTOR) as (
            user,
            now,
        ):
            assert user.secret is not None
            step = self._matching_step(user, user.secret, code, "totp", now)
            if user.is_replay(step):
                user.record_replay(step, self.security.code_throttle, now)
                self.save(user)
                raise InvalidCodeError("this code was already used; wait for the next one")
            user.accept_code(step, now)
            user.complete_login("totp", now)
            try:
                self.save(user)
            except RecordConflictError:
                # Another submission saved first. If it accepted this time step, this
                # one is a replay and is recorded as one (SECURITY.md 5); else retry.
                if self._record_lost_race(slug, username, step):
                    raise InvalidCodeError(
                        "this code was already used; wait for the next one"
                    ) from None
                raise
        return LoginCompleted(user=user)

    @retry_on_conflict
    def _record_lost_race(self, slug: str, username: str, step: int) -> bool:
        user = self._user(slug, username)
        if not user.is_replay(step):
            return False
        user.record_replay(step, self.security.code_throttle, self.clock.now())
        self.save(user)
        return True

    @retry_on_conflict
    def use_recovery_code(
        self, slug: str, username: str, challenge_id: str, recovery_code: str
    ) -> LoginCompleted:
        """A recovery code instead of the app's code; each works once."""
        with self._second_step(slug, username, challenge_key(challenge_id), TWO_FACTOR) as (
            user,
            now,
        ):
            matched = None
            if recovery.normalize(recovery_code) is None:
                reason = "malformed"
            else:
                matched = recovery.matching_hash(recovery_code, user.recovery_codes)
                reason = "wrong"
            if matched is None:
                user.reject_code("recovery", reason, self.security.code_throttle, now)
                self.save(user)
                raise InvalidCodeError("the recovery code is not valid")
            user.use_recovery_code(matched, now)
            user.complete_login("recovery", now)
            self.save(user)
        return LoginCompleted(user=user)

    # ----- helpers -----

    @contextmanager
    def _second_step(
        self, slug: str, username: str, challenge: str, step: str
    ) -> Iterator[tuple[UserCredential, datetime]]:
        """The user of a live challenge for ``step``, acting as that user, code step open.

        The challenge binds the environment: a user found means it exists, so the
        environment is not loaded as well (one query less per second step).
        """
        now = self.clock.now()
        user = self._user(slug, username)
        with acting_as(user.username):
            user.check_challenge(challenge, step, now)
            self._refuse_if_closed(user, now)
            yield user, now

    def _refuse_if_closed(self, user: UserCredential, now: datetime) -> None:
        if user.code_refusal(now) is not None:
            user.refuse_code(now)
            self.save(user)
            user.check_code_step_open(now)

    def _matching_step(
        self, user: UserCredential, encrypted_secret: str, code: str, kind: str, now: datetime
    ) -> int:
        if not is_well_formed(code):
            step = None
            reason = "malformed"
        else:
            step = matching_step(self._decrypt(user, encrypted_secret), code, now)
            reason = "wrong"
        if step is None:
            user.reject_code(kind, reason, self.security.code_throttle, now)
            self.save(user)
            raise InvalidCodeError("the code is not valid")
        return step

    def _encrypt(self, user: UserCredential, secret: str) -> str:
        return self.secret_box.encrypt(secret, context=str(user.id))

    def _decrypt(self, user: UserCredential, encrypted: str) -> str:
        return self.secret_box.decrypt(encrypted, context=str(user.id))
