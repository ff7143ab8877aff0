"""AeroAuth, the application: commands as verbs, load -> decide -> save.

Decisions come from the aggregates alone, never from a read model. The
storage and loading it stands on are in application/base.py, the login flow
in application/login.py, the secrets' key rotation in application/secret_keys.py;
here are the environments, their policy, and the users' administration and self
service.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventsourcing.persistence import IntegrityError

from application.base import PasswordCheck, retry_on_conflict

# SecurityPolicy and last_saved_position are named here too: the composition
# root and the HTTP layer import them with AeroAuth.
from application.base import SecurityPolicy as SecurityPolicy
from application.base import last_saved_position as last_saved_position
from application.login import LoginFlow
from application.passwords import check_strength
from application.secret_keys import SecretKeyRotation
from domain import recovery
from domain.credential import UserCredential
from domain.environment import Environment
from domain.errors import (
    ConflictError,
    EnvironmentExistsError,
    GroupsManagedByProviderError,
    InvalidCredentialsError,
    PasswordLoginDisabledError,
    TwoFactorNotRegisteredError,
    UserExistsError,
)
from domain.origin import acting_as, running_command
from domain.rules import valid_groups, valid_roles, valid_slug, valid_username


class AeroAuth(LoginFlow, SecretKeyRotation):
    """Environments, their 2FA policy, and the credentials of their users; the login
    flow (application/login.py) and the TOTP secrets' key rotation
    (application/secret_keys.py) are its too."""

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
        with running_command():
            return self._create_environment(
                slug, display_name, issuer, admin_username, admin_password
            )

    def _create_environment(
        self,
        slug: str,
        display_name: str,
        issuer: str,
        admin_username: str,
        admin_password: str,
    ) -> Environment:
        now = self.clock.now()
        slug = valid_slug(slug)
        admin_username = valid_username(admin_username)
        environment = Environment.create(slug, display_name, issuer, now)
        password = check_strength(
            admin_password, admin_username, environment.slug, environment.issuer
        )
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
        """A new user; 409 (UserExistsError) for a name the environment already has."""
        with running_command():
            return self._create_user(slug, username, password, groups, roles)

    def _create_user(
        self,
        slug: str,
        username: str,
        password: str,
        groups: Iterable[str],
        roles: Iterable[str],
    ) -> UserCredential:
        now = self.clock.now()
        environment = self.environment(slug)
        username = valid_username(username)
        # Validate everything before the expensive hash.
        groups, roles = valid_groups(groups), valid_roles(roles)
        password = check_strength(password, username, environment.slug, environment.issuer)
        user = UserCredential.create(slug, username, self.hasher.hash(password), groups, roles, now)
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
        password_hash = self.hasher.hash(self._check_strength(user, password))
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
        with acting_as(user.username), running_command():
            check = self._check_password_hash(user, current_password)
            try:
                self._check_password(slug, username, current_password, check)
            except ConflictError:
                raise InvalidCredentialsError() from None
            password_hash = self.hasher.hash(self._check_strength(user, new_password))
            return self._set_password_hash(slug, username, password_hash)

    @retry_on_conflict
    def _check_password(
        self, slug: str, username: str, password: str, check: PasswordCheck
    ) -> None:
        now = self.clock.now()
        self._decide_password_step(self._user(slug, username), password, check, now)

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
            user.issue_recovery_codes([recovery.hash_code(c) for c in codes], self.clock.now())
            self.save(user)
        return codes

    def _check_strength(self, user: UserCredential, password: str) -> str:
        environment = self.environment(user.environment)
        return check_strength(password, user.username, environment.slug, environment.issuer)
