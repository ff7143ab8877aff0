"""The UserCredential aggregate: one user's password, groups, roles and authenticator.

Every change and every authentication attempt is an event. A failed check is
itself an event, and the lockout rules count those events, so throttling
survives restarts and holds across all API processes.

Longer than the other modules, on purpose: one aggregate, its 26 events nested
in it (the library's style), and the commands that decide between them read
best together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final, Literal

from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import register_topic

from domain.base import AeroAggregate
from domain.errors import (
    InvalidChallengeError,
    TooManyAttemptsError,
    TwoFactorDisabledError,
)
from domain.rules import user_id, valid_groups, valid_reason, valid_roles, valid_username
from domain.throttle import Throttle

# What a login needs after the password; a challenge is for one of the last two.
NextStep = Literal["done", "two_factor", "registration"]
DONE: Final = "done"
TWO_FACTOR: Final = "two_factor"
REGISTRATION: Final = "registration"


# A login appends about three events, so a user is snapshotted every seven logins
# or so, and a load replays ten events on average after its snapshot. Every 100
# events, the average load replayed 50: 2.76 against 1.98 ms of CPU per login,
# hash aside, once users have a history (docs/benchmarks.md, change 14).
SNAPSHOT_INTERVAL = 20

# Which of a credential's encrypted TOTP secrets an event concerns: the registered
# authenticator's, or the one of a registration started and not yet confirmed.
REGISTERED: Final = "registered"
PENDING: Final = "pending"

# What re-encrypting a credential's secrets under the current key found.
REENCRYPTED: Final = "reencrypted"
ALREADY_CURRENT: Final = "already_current"
NONE_STORED: Final = "none_stored"
Reencryption = Literal["reencrypted", "already_current", "none_stored"]


def secret_key_id(encrypted_secret: str) -> str:
    """The id of the key an encrypted secret was made with: its text up to the first '.'.

    The application encrypts (application/secretbox.py) and puts the key id in
    front, so that the credential can tell which key each of its secrets needs
    without being able to decrypt any.
    """
    return encrypted_secret.partition(".")[0]


class UserCredential(AeroAggregate):
    TOPIC = "aero:UserCredential"

    # Snapshots taken before identities existed restore no such attributes.
    identity_issuer: str | None = None
    identity_subject: str | None = None

    class Created(AeroAggregate.Created):
        TOPIC = "aero:UserCredential.Created"
        environment: str
        username: str
        password_hash: str
        groups: frozenset[str]
        roles: frozenset[str]

    class PasswordChanged(AeroAggregate.Event):
        """A new password, set by an admin or by the user: ends pending logins and sessions."""

        TOPIC = "aero:UserCredential.PasswordChanged"
        password_hash: str

        def apply(self, user: UserCredential) -> None:
            user.password_hash = self.password_hash
            user.password_failures = 0
            user.password_locked_until = None
            user.end_sessions(self.timestamp, self.originator_version)

    class PasswordRehashed(AeroAggregate.Event):
        """Same password, hashed with the currently configured argon2 parameters."""

        TOPIC = "aero:UserCredential.PasswordRehashed"
        password_hash: str

        def apply(self, user: UserCredential) -> None:
            user.password_hash = self.password_hash

    class GroupsChanged(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.GroupsChanged"
        groups: frozenset[str]

        def apply(self, user: UserCredential) -> None:
            user.groups = frozenset(self.groups)

    class RolesChanged(AeroAggregate.Event):
        """New roles: access tokens stay usable here, checked against the current roles,
        but their ``roles`` claim is stale, so introspection calls them inactive."""

        TOPIC = "aero:UserCredential.RolesChanged"
        roles: frozenset[str]

        def apply(self, user: UserCredential) -> None:
            user.roles = frozenset(self.roles)
            user.claims_changed_version = self.originator_version

    class PasswordStepSucceeded(AeroAggregate.Event):
        """The password was right; ``next_step`` says what the login needs next."""

        TOPIC = "aero:UserCredential.PasswordStepSucceeded"
        challenge_id: str
        next_step: str
        expires_at: datetime

        def apply(self, user: UserCredential) -> None:
            user.password_failures = 0
            user.password_lockouts = 0
            user.password_locked_until = None
            user.challenge_id = self.challenge_id
            user.challenge_step = self.next_step
            user.challenge_expires_at = self.expires_at

    class PasswordStepFailed(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.PasswordStepFailed"
        reason: str

        def apply(self, user: UserCredential) -> None:
            user.password_failures += 1

    class PasswordStepLocked(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.PasswordStepLocked"
        locked_until: datetime

        def apply(self, user: UserCredential) -> None:
            user.password_failures = 0
            user.password_lockouts += 1
            user.password_locked_until = self.locked_until

    class PasswordStepThrottled(AeroAggregate.Event):
        """A password attempt refused unchecked while the password step was locked."""

        TOPIC = "aero:UserCredential.PasswordStepThrottled"
        locked_until: datetime

    class RegistrationStarted(AeroAggregate.Event):
        """A new secret for this login's registration, encrypted (AES-GCM) by the application."""

        TOPIC = "aero:UserCredential.RegistrationStarted"
        challenge_id: str
        encrypted_secret: str

        def apply(self, user: UserCredential) -> None:
            user.pending_secret = self.encrypted_secret
            user.pending_challenge_id = self.challenge_id

    class AuthenticatorRegistered(AeroAggregate.Event):
        """The user confirmed the new secret with a code from the app (two-step enrolment)."""

        TOPIC = "aero:UserCredential.AuthenticatorRegistered"
        time_step: int

        def apply(self, user: UserCredential) -> None:
            user.secret = user.pending_secret
            user.pending_secret = None
            user.pending_challenge_id = None
            user.last_used_step = self.time_step
            user.reset_code_counters()
            user.total_code_failures = 0
            user.disabled = False

    class CodeAccepted(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.CodeAccepted"
        time_step: int

        def apply(self, user: UserCredential) -> None:
            user.last_used_step = self.time_step
            user.reset_code_counters()

    class CodeRejected(AeroAggregate.Event):
        """A wrong or malformed code; ``kind`` is totp or recovery, both count the same."""

        TOPIC = "aero:UserCredential.CodeRejected"
        kind: str
        reason: str

        def apply(self, user: UserCredential) -> None:
            user.count_code_failure()

    class CodeReplayed(AeroAggregate.Event):
        """A right code for a time step at or before the last one accepted (RFC 6238 §5.2)."""

        TOPIC = "aero:UserCredential.CodeReplayed"
        time_step: int

        def apply(self, user: UserCredential) -> None:
            user.count_code_failure()

    class CodeStepLocked(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.CodeStepLocked"
        locked_until: datetime

        def apply(self, user: UserCredential) -> None:
            user.code_failures = 0
            user.code_lockouts += 1
            user.code_locked_until = self.locked_until

    class CodeStepThrottled(AeroAggregate.Event):
        """A code attempt refused unchecked: the step is locked or the authenticator disabled."""

        TOPIC = "aero:UserCredential.CodeStepThrottled"
        reason: str

    class AuthenticatorDisabled(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.AuthenticatorDisabled"
        total_failures: int

        def apply(self, user: UserCredential) -> None:
            user.disabled = True

    class TwoFactorReset(AeroAggregate.Event):
        """An admin's reset: secret and recovery codes dead, pending logins and sessions ended."""

        TOPIC = "aero:UserCredential.TwoFactorReset"
        reason: str

        def apply(self, user: UserCredential) -> None:
            user.secret = None
            user.pending_secret = None
            user.pending_challenge_id = None
            user.last_used_step = None
            user.recovery_codes = frozenset()
            user.reset_code_counters()
            user.total_code_failures = 0
            user.disabled = False
            user.end_sessions(self.timestamp, self.originator_version)

    class TwoFactorSecretReencrypted(AeroAggregate.Event):
        """A stored secret re-encrypted under the current key (a key rotation): the same
        TOTP secret, so the user's authenticator app keeps working.

        ``stage`` says which secret (``registered`` or ``pending``); the event carries
        the new ciphertext and both key ids, never the plaintext. The events that
        stored the old ciphertext stay as they were.
        """

        TOPIC = "aero:UserCredential.TwoFactorSecretReencrypted"
        stage: str
        encrypted_secret: str
        previous_key_id: str
        key_id: str

        def apply(self, user: UserCredential) -> None:
            if self.stage == PENDING:
                user.pending_secret = self.encrypted_secret
            else:
                user.secret = self.encrypted_secret

    class RecoveryCodesIssued(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.RecoveryCodesIssued"
        code_hashes: frozenset[str]

        def apply(self, user: UserCredential) -> None:
            user.recovery_codes = frozenset(self.code_hashes)

    class RecoveryCodeUsed(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.RecoveryCodeUsed"
        code_hash: str
        remaining: int

        def apply(self, user: UserCredential) -> None:
            user.recovery_codes = user.recovery_codes - {self.code_hash}
            user.reset_code_counters()

    class LoginSucceeded(AeroAggregate.Event):
        """The login is complete; ``method`` says how the last step was passed."""

        TOPIC = "aero:UserCredential.LoginSucceeded"
        method: str

        def apply(self, user: UserCredential) -> None:
            user.challenge_id = None
            user.challenge_step = None
            user.challenge_expires_at = None
            user.last_login_at = self.timestamp
            user.last_login_version = self.originator_version

    class PasswordLoginRefused(AeroAggregate.Event):
        """The right password, refused by the provider's ``password_login`` rule.

        The password was right, so it counts toward no lockout.
        """

        TOPIC = "aero:UserCredential.PasswordLoginRefused"
        reason: str

    class IdentityLinked(AeroAggregate.Event):
        """The user logs in through the provider as this (issuer, subject) pair."""

        TOPIC = "aero:UserCredential.IdentityLinked"
        issuer: str
        subject: str

        def apply(self, user: UserCredential) -> None:
            user.identity_issuer = self.issuer
            user.identity_subject = self.subject

    class IdentityUnlinked(AeroAggregate.Event):
        TOPIC = "aero:UserCredential.IdentityUnlinked"
        issuer: str
        subject: str

        def apply(self, user: UserCredential) -> None:
            user.identity_issuer = None
            user.identity_subject = None

    class FederatedStepSucceeded(AeroAggregate.Event):
        """The provider's login step, as ``PasswordStepSucceeded`` is the password's.

        ``mfa`` says whether the provider's login met a required second factor
        (``two_factor`` mode ``provider``, or ``amr`` holding ``mfa``).
        """

        TOPIC = "aero:UserCredential.FederatedStepSucceeded"
        issuer: str
        subject: str
        two_factor: str
        mfa: bool
        challenge_id: str
        next_step: str
        expires_at: datetime

        def apply(self, user: UserCredential) -> None:
            user.challenge_id = self.challenge_id
            user.challenge_step = self.next_step
            user.challenge_expires_at = self.expires_at

    class Snapshot(LibrarySnapshot):
        """Taken every ``SNAPSHOT_INTERVAL`` events: a user with years of logins
        loads like a new one."""

        TOPIC = "aero:UserCredential.Snapshot"

    # Sessions are ordered by the record's version, never by time (see session_valid).
    # Class defaults, because snapshots taken before these existed lack them; 0 is
    # safe there: every token that carries a version comes from a later login.
    sessions_ended_version: int = 0
    claims_changed_version: int = 0
    last_login_version: int | None = None

    def __init__(
        self,
        environment: str,
        username: str,
        password_hash: str,
        groups: frozenset[str],
        roles: frozenset[str],
    ) -> None:
        self.environment = environment
        self.username = username
        self.password_hash = password_hash
        self.groups = frozenset(groups)
        self.roles = frozenset(roles)
        self.password_failures = 0
        self.password_lockouts = 0
        self.password_locked_until: datetime | None = None
        self.challenge_id: str | None = None
        self.challenge_step: str | None = None
        self.challenge_expires_at: datetime | None = None
        self.pending_secret: str | None = None
        self.pending_challenge_id: str | None = None
        self.secret: str | None = None
        self.last_used_step: int | None = None
        self.code_failures = 0
        self.code_lockouts = 0
        self.code_locked_until: datetime | None = None
        self.total_code_failures = 0
        self.disabled = False
        self.recovery_codes: frozenset[str] = frozenset()
        self.sessions_valid_after: datetime | None = None
        self.last_login_at: datetime | None = None
        self.identity_issuer: str | None = None
        self.identity_subject: str | None = None

    # ----- state helpers used by event bodies -----

    def end_sessions(self, at: datetime, version: int) -> None:
        self.challenge_id = None
        self.challenge_step = None
        self.challenge_expires_at = None
        self.sessions_valid_after = at
        self.sessions_ended_version = version
        self.claims_changed_version = version

    def reset_code_counters(self) -> None:
        self.code_failures = 0
        self.code_lockouts = 0
        self.code_locked_until = None

    def count_code_failure(self) -> None:
        self.code_failures += 1
        self.total_code_failures += 1

    # ----- queries -----

    @property
    def registered(self) -> bool:
        return self.secret is not None

    def code_step_locked_until(self, now: datetime) -> datetime | None:
        if self.code_locked_until is not None and now < self.code_locked_until:
            return self.code_locked_until
        return None

    def password_step_locked_until(self, now: datetime) -> datetime | None:
        if self.password_locked_until is not None and now < self.password_locked_until:
            return self.password_locked_until
        return None

    def next_step(self, required: bool) -> NextStep:
        """After the password: a registered user is always asked for a code (API.md)."""
        if self.registered:
            return TWO_FACTOR
        return REGISTRATION if required else DONE

    def session_valid(self, login_version: int) -> bool:
        """Whether the login at ``login_version`` came after the last reset or password change.

        Versions, not times: event times are ``max(now, previous event)``, so a reset
        right after a login (or on a host whose clock is behind) can carry the login's
        own timestamp, while versions are strictly ordered by the store itself.
        """
        return login_version > self.sessions_ended_version

    def claims_current(self, login_version: int) -> bool:
        """The session is valid and what its token says (the roles) is still true."""
        return self.session_valid(login_version) and login_version > self.claims_changed_version

    def check_challenge(self, challenge_id: str, step: str, now: datetime) -> None:
        """Single use, latest only, for this step, not expired (SECURITY.md 11)."""
        if (
            self.challenge_id is None
            or challenge_id != self.challenge_id
            or self.challenge_step != step
            or self.challenge_expires_at is None
            or now >= self.challenge_expires_at
        ):
            raise InvalidChallengeError("the login token is not valid for this step")

    def stored_secrets(self) -> dict[str, str]:
        """The encrypted secrets the credential holds now, by stage (registered, pending)."""
        held = {REGISTERED: self.secret, PENDING: self.pending_secret}
        return {stage: secret for stage, secret in held.items() if secret is not None}

    @classmethod
    def secrets_only(cls) -> UserCredential:
        """A credential with nothing but its (so far no) encrypted secrets.

        The events of ``SECRET_TOPICS``, applied to it with their own ``apply``,
        leave it holding the secrets the user holds now: what the start's key
        check and ``aero-auth keys status`` need of every user, without loading
        each user. Nothing else of the credential is meaningful on it.
        """
        holder = object.__new__(cls)
        holder.secret = None
        holder.pending_secret = None
        holder.pending_challenge_id = None
        return holder

    def registration_secret(self, challenge_id: str) -> str | None:
        """The encrypted secret of the registration this login started, if it started one."""
        if self.pending_challenge_id != challenge_id:
            return None
        return self.pending_secret

    # ----- commands -----

    @classmethod
    def create(
        cls,
        environment: str,
        username: str,
        password_hash: str,
        groups: Iterable[str],
        roles: Iterable[str],
        now: datetime,
    ) -> UserCredential:
        username = valid_username(username)
        return cls._start(
            cls.Created,
            id=user_id(environment, username),
            now=now,
            environment=environment,
            username=username,
            password_hash=password_hash,
            groups=valid_groups(groups),
            roles=valid_roles(roles),
        )

    def change_password(self, password_hash: str, now: datetime) -> None:
        self._trigger(self.PasswordChanged, now, password_hash=password_hash)

    def rehash_password(self, password_hash: str, now: datetime) -> None:
        self._trigger(self.PasswordRehashed, now, password_hash=password_hash)

    def change_groups(self, groups: Iterable[str], now: datetime) -> None:
        groups = valid_groups(groups)
        if groups != self.groups:
            self._trigger(self.GroupsChanged, now, groups=groups)

    def change_roles(self, roles: Iterable[str], now: datetime) -> None:
        roles = valid_roles(roles)
        if roles != self.roles:
            self._trigger(self.RolesChanged, now, roles=roles)

    def pass_password_step(
        self, challenge_id: str, required: bool, expires_at: datetime, now: datetime
    ) -> NextStep:
        step = self.next_step(required)
        self._trigger(
            self.PasswordStepSucceeded,
            now,
            challenge_id=challenge_id,
            next_step=step,
            expires_at=expires_at,
        )
        if step == DONE:
            self._trigger(self.LoginSucceeded, now, method="password")
        return step

    def fail_password_step(self, throttle: Throttle, now: datetime) -> None:
        self._trigger(self.PasswordStepFailed, now, reason="wrong_password")
        if self.password_failures >= throttle.max_failures:
            until = throttle.lock_until(now, self.password_lockouts)
            self._trigger(self.PasswordStepLocked, now, locked_until=until)

    def throttle_password_step(self, now: datetime) -> None:
        locked_until = self.password_step_locked_until(now)
        assert locked_until is not None
        self._trigger(self.PasswordStepThrottled, now, locked_until=locked_until)

    def start_registration(self, challenge_id: str, encrypted_secret: str, now: datetime) -> None:
        """For a challenge the caller checked (``check_challenge``) for REGISTRATION."""
        self._trigger(
            self.RegistrationStarted,
            now,
            challenge_id=challenge_id,
            encrypted_secret=encrypted_secret,
        )

    def refuse_code(self, now: datetime) -> TwoFactorDisabledError | TooManyAttemptsError | None:
        """While codes are refused unchecked, record the attempt as refused and return
        the error that says why, for the caller to raise once it saved the event;
        None while the code step is open."""
        if self.disabled:
            self._trigger(self.CodeStepThrottled, now, reason="disabled")
            return TwoFactorDisabledError()
        locked_until = self.code_step_locked_until(now)
        if locked_until is not None:
            self._trigger(self.CodeStepThrottled, now, reason="locked")
            return TooManyAttemptsError(locked_until, now)
        return None

    def register_authenticator(self, challenge_id: str, time_step: int, now: datetime) -> None:
        """Confirm the secret of this login's registration, which the caller took from
        ``registration_secret`` and matched a code of at ``time_step``."""
        assert self.registration_secret(challenge_id) is not None
        self._trigger(self.AuthenticatorRegistered, now, time_step=time_step)

    def accept_code(self, time_step: int, now: datetime) -> None:
        self._trigger(self.CodeAccepted, now, time_step=time_step)

    def is_replay(self, time_step: int) -> bool:
        return self.last_used_step is not None and time_step <= self.last_used_step

    def reject_code(self, kind: str, reason: str, throttle: Throttle, now: datetime) -> None:
        self._trigger(self.CodeRejected, now, kind=kind, reason=reason)
        self._after_code_failure(throttle, now)

    def record_replay(self, time_step: int, throttle: Throttle, now: datetime) -> None:
        self._trigger(self.CodeReplayed, now, time_step=time_step)
        self._after_code_failure(throttle, now)

    def _after_code_failure(self, throttle: Throttle, now: datetime) -> None:
        if self.code_failures >= throttle.max_failures:
            until = throttle.lock_until(now, self.code_lockouts)
            self._trigger(self.CodeStepLocked, now, locked_until=until)
        # Only an enrolled authenticator can be disabled; before that the user
        # has nothing to disable, and the lockout alone slows guessing.
        if (
            throttle.disable_after is not None
            and self.registered
            and not self.disabled
            and self.total_code_failures >= throttle.disable_after
        ):
            self._trigger(self.AuthenticatorDisabled, now, total_failures=self.total_code_failures)

    def issue_recovery_codes(self, code_hashes: Iterable[str], now: datetime) -> None:
        self._trigger(self.RecoveryCodesIssued, now, code_hashes=frozenset(code_hashes))

    def use_recovery_code(self, code_hash: str, now: datetime) -> None:
        self._trigger(
            self.RecoveryCodeUsed,
            now,
            code_hash=code_hash,
            remaining=len(self.recovery_codes) - 1,
        )

    def complete_login(self, method: str, now: datetime) -> None:
        self._trigger(self.LoginSucceeded, now, method=method)

    def reset_two_factor(self, reason: str, now: datetime) -> None:
        self._trigger(self.TwoFactorReset, now, reason=valid_reason(reason))

    def reencrypt_secrets(
        self, key_id: str, reencrypt: Callable[[str], str], now: datetime
    ) -> Reencryption:
        """Bring every stored secret under the key ``key_id``, one event per secret that
        is under another key; ``reencrypt`` (the application's, which holds the keys)
        turns an old ciphertext into one under ``key_id``.

        Idempotent: secrets already under ``key_id`` are left alone, and a credential
        without a secret records nothing.
        """
        held = self.stored_secrets()
        if not held:
            return NONE_STORED
        stale = {stage: s for stage, s in held.items() if secret_key_id(s) != key_id}
        if not stale:
            return ALREADY_CURRENT
        for stage, old in stale.items():
            new = reencrypt(old)
            if secret_key_id(new) != key_id:
                raise ValueError(f"the re-encrypted secret is not under key {key_id!r}")
            self._trigger(
                self.TwoFactorSecretReencrypted,
                now,
                stage=stage,
                encrypted_secret=new,
                previous_key_id=secret_key_id(old),
                key_id=key_id,
            )
        return REENCRYPTED

    # ----- the identity provider -----

    @property
    def has_password(self) -> bool:
        """False for a user the provider created: such a user has no local password."""
        return self.password_hash != ""

    def refuse_password_login(self, reason: str, now: datetime) -> None:
        self._trigger(self.PasswordLoginRefused, now, reason=reason)

    def link_identity(self, issuer: str, subject: str, now: datetime) -> None:
        if (self.identity_issuer, self.identity_subject) == (issuer, subject):
            return
        self.unlink_identity(now)
        self._trigger(self.IdentityLinked, now, issuer=issuer, subject=subject)

    def unlink_identity(self, now: datetime) -> None:
        if self.identity_issuer is not None and self.identity_subject is not None:
            self._trigger(
                self.IdentityUnlinked,
                now,
                issuer=self.identity_issuer,
                subject=self.identity_subject,
            )

    def pass_federated_step(
        self,
        issuer: str,
        subject: str,
        two_factor: str,
        mfa: bool,
        challenge_id: str,
        required: bool,
        expires_at: datetime,
        now: datetime,
    ) -> NextStep:
        """After the provider's login: as after a password, unless the provider met
        the second factor, which ends the login even for a registered user."""
        step = DONE if mfa else self.next_step(required)
        self._trigger(
            self.FederatedStepSucceeded,
            now,
            issuer=issuer,
            subject=subject,
            two_factor=two_factor,
            mfa=mfa,
            challenge_id=challenge_id,
            next_step=step,
            expires_at=expires_at,
        )
        if step == DONE:
            self._trigger(self.LoginSucceeded, now, method="federated")
        return step


# The events whose ``apply`` changes which encrypted secrets a credential holds
# (tests/unit/test_user_credential.py checks that no other event does).
SECRET_TOPICS: Final = (
    UserCredential.RegistrationStarted.TOPIC,
    UserCredential.AuthenticatorRegistered.TOPIC,
    UserCredential.TwoFactorSecretReencrypted.TOPIC,
    UserCredential.TwoFactorReset.TOPIC,
)

# Snapshots are resolved by topic when loaded, before any code has named the
# class in this process, so the stable topic is registered at import.
register_topic(UserCredential.Snapshot.TOPIC, UserCredential.Snapshot)
