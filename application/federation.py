"""Commands for an environment's OpenID Connect provider: connect, link, and log in.

The callback (``finish_login``) is the one place a provider's answer turns into a
login step; the JSON API calls it, and a web page's redirect target can call it
the same way. Either the whole outcome is saved at once (the login ended, the
user created or linked, the groups synced, the login step), or only the failure
is recorded: nothing half-done.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, RecordConflictError

from application.login import LoginStep, challenge_key
from application.relying_party import RelyingParty
from application.service import AeroAuth
from domain.credential import DONE, UserCredential
from domain.environment import Environment
from domain.errors import (
    AeroError,
    IdentityInUseError,
    IdentityProviderNotFoundError,
    IdentityProviderUnavailableError,
    InvalidInputError,
    InvalidOidcResponseError,
    InvalidRedirectUriError,
    UserExistsError,
    UserNotFoundError,
    UserNotProvisionedError,
)
from domain.identity import (
    NO_PASSWORD,
    PROVIDER_ACTOR,
    FederatedLogin,
    IdentityLink,
    IdentityProvider,
    ProviderMetadata,
    ProviderSettings,
    RejectedCallback,
    federated_login_id,
    identity_link_id,
    new_connection_id,
    secret_hash,
    valid_settings,
)
from domain.origin import acting_as
from domain.rules import valid_groups, valid_username

# The state and the nonce: 256 random bits each. The PKCE verifier: 64 characters
# of the unreserved set, within RFC 7636 §4.1's 43-128.
STATE_TTL = timedelta(minutes=10)
_PROVIDER_ERROR = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class FederatedStart:
    authorization_url: str
    state: str
    expires_in: int


class _Outcome(Exception):
    """A failure decided after the provider answered: recorded on the login, then raised."""

    def __init__(self, reason: str, error: AeroError, subject: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.subject = subject


class FederatedLogins:
    """An environment's identity provider and the logins through it, over one AeroAuth."""

    def __init__(self, application: AeroAuth, relying_party: RelyingParty) -> None:
        self.app = application
        self.relying_party = relying_party

    # ----- the provider (admin) -----

    def identity_provider(self, slug: str) -> IdentityProvider:
        provider = self.app.environment(slug).identity_provider
        if provider is None:
            raise IdentityProviderNotFoundError(f"environment {slug!r} has no identity provider")
        return provider

    def connect(
        self, slug: str, settings: ProviderSettings, client_secret: str | None
    ) -> IdentityProvider:
        """Connect or change the provider, once its discovery document checks out.

        Nothing is stored unless the document is there and names this issuer; the
        client secret is encrypted with the environment's id as context.
        """
        environment = self.app.environment(slug)
        settings = valid_settings(settings)
        if client_secret is not None and not 1 <= len(client_secret) <= 1024:
            raise InvalidInputError("client_secret", "must be 1 to 1024 characters")
        if client_secret is None and environment.identity_provider is None:
            raise InvalidInputError("client_secret", "is required to connect a provider")
        metadata = self.relying_party.discover(settings.issuer)
        return self._store(slug, settings, metadata, client_secret)

    def _store(
        self,
        slug: str,
        settings: ProviderSettings,
        metadata: ProviderMetadata,
        client_secret: str | None,
    ) -> IdentityProvider:
        for _ in range(self.app.security.conflict_retries + 1):
            environment = self.app.environment(slug)
            current = environment.identity_provider
            if client_secret is not None:
                encrypted = self.app.secret_box.encrypt(client_secret, context=str(environment.id))
            elif current is not None:
                encrypted = current.encrypted_client_secret
            else:
                raise InvalidInputError("client_secret", "is required to connect a provider")
            environment.connect_identity_provider(
                settings, metadata, encrypted, new_connection_id(), self.app.clock.now()
            )
            try:
                self.app.save(environment)
            except RecordConflictError:
                continue
            assert environment.identity_provider is not None
            return environment.identity_provider
        raise RecordConflictError("the environment kept changing")  # pragma: no cover

    def disconnect(self, slug: str) -> None:
        """Password login is open to all again; links stay; pending logins end."""
        for _ in range(self.app.security.conflict_retries + 1):
            environment = self.app.environment(slug)
            if environment.identity_provider is None:
                raise IdentityProviderNotFoundError(
                    f"environment {slug!r} has no identity provider"
                )
            environment.disconnect_identity_provider(self.app.clock.now())
            try:
                self.app.save(environment)
            except RecordConflictError:
                continue
            return

    def client_secret(self, environment: Environment) -> str:
        provider = environment.identity_provider
        assert provider is not None
        return self.app.secret_box.decrypt(
            provider.encrypted_client_secret, context=str(environment.id)
        )

    # ----- links (admin) -----

    def link_identity(self, slug: str, username: str, subject: str) -> UserCredential:
        """Link a user to the provider's subject; 409 when another user has it."""
        if not isinstance(subject, str) or not 1 <= len(subject) <= 255:
            raise InvalidInputError("subject", "must be 1 to 255 characters")
        for _ in range(self.app.security.conflict_retries + 1):
            provider = self.identity_provider(slug)
            user = self.app.user(slug, username)
            now = self.app.clock.now()
            link = self._link(slug, provider.issuer, subject)
            if link is not None and link.username not in (None, user.username):
                raise IdentityInUseError("another user is linked to that subject")
            changed: list[Any] = []
            if (user.identity_issuer, user.identity_subject) != (provider.issuer, subject):
                changed += self._release(slug, user, now)
                if link is None:
                    link = IdentityLink.create(slug, provider.issuer, subject, user.username, now)
                else:
                    link.relink(user.username, now)
                user.link_identity(provider.issuer, subject, now)
                changed += [link, user]
            try:
                if changed:
                    self.app.save(*changed)
            except (RecordConflictError, IntegrityError):
                continue
            return user
        raise RecordConflictError("the user kept changing")  # pragma: no cover

    def unlink_identity(self, slug: str, username: str) -> UserCredential:
        for _ in range(self.app.security.conflict_retries + 1):
            self.identity_provider(slug)
            user = self.app.user(slug, username)
            changed = self._release(slug, user, self.app.clock.now())
            if not changed:
                return user
            user.unlink_identity(self.app.clock.now())
            try:
                self.app.save(*changed, user)
            except RecordConflictError:
                continue
            return user
        raise RecordConflictError("the user kept changing")  # pragma: no cover

    def _release(self, slug: str, user: UserCredential, now: datetime) -> list[Any]:
        """The link of the user's current subject, released (not yet saved)."""
        if user.identity_issuer is None or user.identity_subject is None:
            return []
        link = self._link(slug, user.identity_issuer, user.identity_subject)
        if link is None or link.username is None:
            return []
        link.release(now)
        return [link]

    def _link(self, slug: str, issuer: str, subject: str) -> IdentityLink | None:
        try:
            link: IdentityLink = self.app.repository.get(identity_link_id(slug, issuer, subject))
        except AggregateNotFoundError:
            return None
        return link

    # ----- login -----

    def start_login(self, slug: str, redirect_uri: str) -> FederatedStart:
        """The authorization request: a state good for 10 minutes, a nonce, PKCE S256."""
        provider = self.identity_provider(slug)
        if redirect_uri not in provider.redirect_uris:
            raise InvalidRedirectUriError("redirect_uri is not one of the provider's redirect_uris")
        now = self.app.clock.now()
        metadata = self.relying_party.metadata(provider, now)
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        login_id = federated_login_id(state)
        login = FederatedLogin.start(
            login_id,
            slug,
            provider.connection_id,
            secret_hash(nonce),
            self.app.secret_box.encrypt(verifier, context=str(login_id)),
            redirect_uri,
            now + STATE_TTL,
            now,
        )
        self.app.save(login)
        url = self.relying_party.authorization_url(
            metadata, provider.client_id, redirect_uri, state, nonce, verifier
        )
        return FederatedStart(url, state, int(STATE_TTL.total_seconds()))

    def finish_login(
        self,
        slug: str,
        state: str,
        code: str | None,
        iss: str | None = None,
        error: str | None = None,
    ) -> LoginStep:
        """The provider's answer, from the browser: the password step's three outcomes.

        The state is used up by this first callback, whatever the outcome. Raises
        InvalidOidcResponseError (401), UserNotProvisionedError (403),
        UserExistsError (409) or IdentityProviderUnavailableError (502).
        """
        now = self.app.clock.now()
        environment = self.app.environment(slug)
        provider = environment.identity_provider
        login = self._pending(slug, state)
        reason = (
            "unknown_state"
            if login is None
            else login.usable(slug, provider.connection_id if provider else None, now)
        )
        if reason is None and login is not None and not self._claimed(login, now):
            reason = "state_used"
        if reason is not None:
            if login is None or reason in ("unknown_state", "state_used"):
                # Not this environment's login, or one already ended: its own
                # stream is left alone, the attempt is recorded on its own.
                self.app.save(RejectedCallback.record(slug, reason, now))
            else:
                self._fail(login, reason, None)
            raise InvalidOidcResponseError(reason, "the state is unknown, used or expired")
        assert login is not None and provider is not None
        try:
            claims = self._claims(environment, provider, login, code, iss, error, now)
        except (InvalidOidcResponseError, IdentityProviderUnavailableError) as e:
            why = e.reason if isinstance(e, InvalidOidcResponseError) else "provider_unavailable"
            self._fail(login, why, None)
            raise
        try:
            return self._decide(slug, state, claims)
        except _Outcome as outcome:
            pending = self._pending(slug, state)
            if pending is not None and not pending.ended:
                self._fail(pending, outcome.reason, outcome.subject)
            raise outcome.error from None

    def _claimed(self, login: FederatedLogin, now: datetime) -> bool:
        """Whether this callback took the login; False when another callback had or has.

        Claimed and saved before the code is redeemed at the provider: a provider
        redeems a code once, so of two concurrent callbacks the second's exchange
        would fail, and its failure would end the login the first was completing.
        """
        try:
            login.claim(now)  # the login decides whether it can still be taken
        except ValueError:
            return False
        try:
            self.app.save(login)
        except (RecordConflictError, IntegrityError):
            return False
        return True

    def refuse_callback(self, slug: str, state: str, reason: str) -> None:
        """A callback its interface refused before using the provider's answer, such
        as a web page's state that this browser did not start (login CSRF).

        Recorded like any failed callback; a live login with that state ends, since
        its code has reached a browser it was not meant for.
        """
        now = self.app.clock.now()
        login = self._pending(slug, state)
        if login is not None and login.environment == slug and not login.ended:
            self._fail(login, reason, None)
        else:
            self.app.save(RejectedCallback.record(slug, reason, now))

    def _pending(self, slug: str, state: str) -> FederatedLogin | None:
        if not isinstance(state, str) or not 1 <= len(state) <= 512:
            return None
        try:
            login: FederatedLogin = self.app.repository.get(federated_login_id(state))
        except AggregateNotFoundError:
            return None
        return login

    def _fail(self, login: FederatedLogin, reason: str, subject: str | None) -> None:
        login.fail(reason, subject, self.app.clock.now())
        try:
            self.app.save(login)
        except RecordConflictError:
            # Another callback with this state was first: it recorded its own outcome.
            pass

    def _claims(
        self,
        environment: Environment,
        provider: IdentityProvider,
        login: FederatedLogin,
        code: str | None,
        iss: str | None,
        error: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        if error is not None:
            kind = error if _PROVIDER_ERROR.match(error) else "other"
            raise InvalidOidcResponseError(
                f"provider_error:{kind}", "the identity provider refused the login"
            )
        if iss is not None and iss != provider.issuer:
            # RFC 9207: an answer from another issuer (a mix-up attack).
            raise InvalidOidcResponseError("issuer_mismatch", "iss is not the provider's issuer")
        if not code or len(code) > 4096:
            raise InvalidOidcResponseError("no_code", "the callback carries no code")
        metadata = self.relying_party.metadata(provider, now)
        verifier = self.app.secret_box.decrypt(login.encrypted_verifier, context=str(login.id))
        id_token = self.relying_party.exchange_code(
            metadata,
            provider.client_id,
            self.client_secret(environment),
            code,
            login.redirect_uri,
            verifier,
        )
        return self.relying_party.verify_id_token(
            id_token, provider, metadata, login.nonce_hash, now
        )

    def _decide(self, slug: str, state: str, claims: dict[str, Any]) -> LoginStep:
        """Who logs in, and what comes next; saved at once, decided again on a conflict."""
        for _ in range(self.app.security.conflict_retries + 1):
            try:
                return self._decide_once(slug, state, claims)
            except (RecordConflictError, IntegrityError):
                continue
        raise RecordConflictError("the login kept conflicting")  # pragma: no cover

    def _decide_once(self, slug: str, state: str, claims: dict[str, Any]) -> LoginStep:
        now = self.app.clock.now()
        subject: str = claims["sub"]
        login = self._pending(slug, state)
        environment = self.app.environment(slug)
        provider = environment.identity_provider
        if login is None:
            raise InvalidOidcResponseError("unknown_state", "the state is unknown")
        reason = login.usable(slug, provider.connection_id if provider else None, now)
        if reason == "state_used":
            # Another callback with this state ended it meanwhile.
            raise InvalidOidcResponseError(reason, "the state was used")
        if reason is not None:
            raise _Outcome(reason, InvalidOidcResponseError(reason, "the login ended"), subject)
        assert provider is not None
        link = self._link(slug, provider.issuer, subject)
        changed: list[Any] = []
        if link is not None and link.username is not None:
            try:
                user = self.app.user(slug, link.username)
            except UserNotFoundError:  # pragma: no cover (users are never deleted)
                raise _Outcome(
                    "linked_user_missing", UserNotProvisionedError("no such user"), subject
                ) from None
        else:
            user, link = self._provision(slug, provider, link, subject, claims, now)
            changed.append(link)
        if provider.groups_claim is not None:
            groups = self._groups(claims.get(provider.groups_claim), subject)
            with acting_as(PROVIDER_ACTOR):
                user.change_groups(groups, now)
        with acting_as(user.username):
            required = environment.requiring_rule(user.groups) is not None
            amr = claims.get("amr")
            mfa = provider.two_factor == "provider" or (
                provider.two_factor == "amr" and isinstance(amr, list) and "mfa" in amr
            )
            # 128 random bits, as after a password (SECURITY.md 11).
            challenge_id = secrets.token_urlsafe(16)
            expires_at = now + self.app.security.login_ttl
            step = user.pass_federated_step(
                provider.issuer,
                subject,
                provider.two_factor,
                mfa,
                challenge_key(challenge_id),
                required,
                expires_at,
                now,
            )
            login.complete(user.username, now)
        self.app.save(login, *changed, user)
        if step == DONE:
            return LoginStep(step, user, challenge_id=None, expires_at=None)
        return LoginStep(step, user, challenge_id, expires_at)

    def _provision(
        self,
        slug: str,
        provider: IdentityProvider,
        link: IdentityLink | None,
        subject: str,
        claims: dict[str, Any],
        now: datetime,
    ) -> tuple[UserCredential, IdentityLink]:
        """A subject no user is linked to: a new user named by the username claim.

        Never an existing user found by name or email (nOAuth): a name taken is a
        409 until an admin links that user to this subject.
        """
        if provider.provisioning != "auto":
            raise _Outcome(
                "not_linked",
                UserNotProvisionedError("no user is linked to this identity; ask an admin"),
                subject,
            )
        try:
            username = valid_username(claims.get(provider.username_claim))  # type: ignore[arg-type]
        except InvalidInputError:
            raise _Outcome(
                "invalid_username_claim",
                UserNotProvisionedError(
                    f"the claim {provider.username_claim!r} is missing or not a valid username"
                ),
                subject,
            ) from None
        try:
            self.app.user(slug, username)
        except UserNotFoundError:
            pass
        else:
            raise _Outcome(
                "username_taken",
                UserExistsError(
                    f"a user named {username!r} exists; an admin can link it to this identity"
                ),
                subject,
            )
        with acting_as(PROVIDER_ACTOR):
            user = UserCredential.create(slug, username, NO_PASSWORD, (), (), now)
            if link is None:
                link = IdentityLink.create(slug, provider.issuer, subject, user.username, now)
            else:
                link.relink(user.username, now)
            user.link_identity(provider.issuer, subject, now)
        return user, link

    @staticmethod
    def _groups(value: Any, subject: str) -> frozenset[str]:
        """The groups claim's strings; a missing claim means no groups."""
        if value is None:
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
            raise _Outcome(
                "invalid_groups_claim",
                InvalidOidcResponseError("invalid_groups_claim", "the groups claim is not a list"),
                subject,
            )
        try:
            return valid_groups(value)
        except InvalidInputError:
            raise _Outcome(
                "invalid_groups_claim",
                InvalidOidcResponseError(
                    "invalid_groups_claim", "the groups claim holds a group that is not valid"
                ),
                subject,
            ) from None
