"""The login flow: the password step, then a code, a recovery code, or registering an
authenticator, each bound to the challenge its password step opened (SECURITY.md 11).

Commands that load a credential retry on a version conflict by reloading and
deciding again, which is also how two concurrent submissions of one valid code
end: the second reload sees the first one's accepted time step and records a
replay.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from eventsourcing.persistence import RecordConflictError

from application.base import AeroApplication, PasswordCheck, retry_on_conflict
from domain import recovery
from domain.credential import DONE, REGISTRATION, TWO_FACTOR, NextStep, UserCredential
from domain.errors import (
    ConflictError,
    InvalidChallengeError,
    InvalidCodeError,
    InvalidCredentialsError,
    PasswordLoginDisabledError,
    UserNotFoundError,
)
from domain.origin import acting_as, running_command
from domain.rules import may_name_a_user, recorded_username
from domain.totp import is_well_formed, matching_step, provisioning_uri, random_secret
from domain.unknown_user import UnknownUserLogin

# What the password step leads to, in API.md's words.
LoginStatus = Literal["authenticated", "two_factor_required", "two_factor_registration_required"]
_STATUS: dict[NextStep, LoginStatus] = {
    DONE: "authenticated",
    TWO_FACTOR: "two_factor_required",
    REGISTRATION: "two_factor_registration_required",
}


@dataclass(frozen=True)
class LoginStep:
    """What the password step leads to. A challenge (``challenge_id``, ``expires_at``) is
    for ``next_step``, which the login token carries; both are None once authenticated."""

    next_step: NextStep
    user: UserCredential
    challenge_id: str | None
    expires_at: datetime | None

    @property
    def status(self) -> LoginStatus:
        return _STATUS[self.next_step]


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


class LoginFlow(AeroApplication):
    """The login commands of AeroAuth."""

    def start_login(self, slug: str, username: str, password: str) -> LoginStep:
        """The password step. Unknown user, wrong password and throttling look the same.

        The password is hashed once per request, whatever the contention: a retry
        after a version conflict reloads the user and decides again from that one
        verification. Otherwise parallel attempts for a user who exists would each
        hash several times, and their answer time would tell that the user exists.
        """
        # Until the user is found, the actor is what was typed, cut to the longest
        # name a user can have: an unauthenticated client decides this string.
        with acting_as(recorded_username(username)), running_command():
            now = self.clock.now()
            self.environment(slug)
            try:
                if not may_name_a_user(username):
                    # Too long to be anyone's name: no lookup, but the same answer and
                    # the same hash as for any unknown user (SECURITY.md 9).
                    raise UserNotFoundError("no such user")
                user = self._user(slug, username)
            except UserNotFoundError:
                self.hasher.verify_dummy(password)
                self.save(UnknownUserLogin.record(slug, recorded_username(username), now))
                raise InvalidCredentialsError() from None
            # The user as created is the actor, whatever case the username was typed in.
            with acting_as(user.username):
                check = self._check_password_hash(user, password)
                rehashed = None
                if check.matches and self.hasher.needs_rehash(check.password_hash):
                    rehashed = self.hasher.hash(password)
                try:
                    return self._pass_or_fail(slug, username, password, check, rehashed)
                except ConflictError:
                    # A failure at the password step, like any other (API.md).
                    raise InvalidCredentialsError() from None

    @retry_on_conflict
    def _pass_or_fail(
        self,
        slug: str,
        username: str,
        password: str,
        check: PasswordCheck,
        rehashed: str | None,
    ) -> LoginStep:
        now = self.clock.now()
        environment = self.environment(slug)
        user = self._user(slug, username)
        verified = self._decide_password_step(user, password, check, now)
        if not environment.password_login_allowed(user.roles):
            # The right password, refused by the provider's break-glass rule.
            user.refuse_password_login("password_login_disabled", now)
            self.save(user)
            raise PasswordLoginDisabledError(
                "this environment's users log in through its identity provider"
            )
        # The new hash is of the hash checked before; a password changed meanwhile
        # is rehashed at its next login instead.
        if rehashed is not None and verified == check:
            user.rehash_password(rehashed, now)
        required = environment.requiring_rule(user.groups) is not None
        # 128 random bits: the login token is bound to this challenge (SECURITY.md 11).
        challenge_id = secrets.token_urlsafe(16)
        expires_at = now + self.security.login_ttl
        step = user.pass_password_step(challenge_key(challenge_id), required, expires_at, now)
        self.save(user)
        if step == DONE:
            return LoginStep(step, user, challenge_id=None, expires_at=None)
        return LoginStep(step, user, challenge_id, expires_at)

    @retry_on_conflict
    def start_registration(self, slug: str, username: str, challenge_id: str) -> Registration:
        """A secret for the authenticator app; the same one again within the same login."""
        now = self.clock.now()
        challenge = challenge_key(challenge_id)
        environment = self.environment(slug)
        user = self._user(slug, username)
        with acting_as(user.username):
            user.check_challenge(challenge, REGISTRATION, now)
            started = user.registration_secret(challenge)
            if started is not None:
                secret = self._decrypt(user, started)
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
            started = user.registration_secret(challenge)
            if started is None:
                raise InvalidChallengeError("registration was not started in this login")
            step = self._matching_step(user, started, code, now)
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
            step = self._matching_step(user, user.secret, code, now)
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
        environment is not loaded as well (one query less per second step). An
        attempt while codes are refused unchecked is recorded, then refused.
        """
        now = self.clock.now()
        user = self._user(slug, username)
        with acting_as(user.username):
            user.check_challenge(challenge, step, now)
            refusal = user.refuse_code(now)
            if refusal is not None:
                self.save(user)
                raise refusal
            yield user, now

    def _matching_step(
        self, user: UserCredential, encrypted_secret: str, code: str, now: datetime
    ) -> int:
        """The time step ``code`` matches; else the failure is recorded and raised."""
        if not is_well_formed(code):
            step = None
            reason = "malformed"
        else:
            step = matching_step(self._decrypt(user, encrypted_secret), code, now)
            reason = "wrong"
        if step is None:
            user.reject_code("totp", reason, self.security.code_throttle, now)
            self.save(user)
            raise InvalidCodeError("the code is not valid")
        return step

    def _encrypt(self, user: UserCredential, secret: str) -> str:
        return self.secret_box.encrypt(secret, context=str(user.id))

    def _decrypt(self, user: UserCredential, encrypted: str) -> str:
        return self.secret_box.decrypt(encrypted, context=str(user.id))
