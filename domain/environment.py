"""The Environment aggregate: one customer environment and its 2FA policy."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from domain.base import AeroAggregate
from domain.errors import InvalidInputError
from domain.identity import IdentityProvider, ProviderMetadata, ProviderSettings
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

    class IdentityProviderConnected(AeroAggregate.Event):
        """An OpenID Connect provider now handles authentication; the client secret is
        encrypted (AES-GCM) by the application, as TOTP secrets are."""

        TOPIC = "aero:Environment.IdentityProviderConnected"
        connection_id: str
        issuer: str
        client_id: str
        encrypted_client_secret: str
        display_name: str
        redirect_uris: frozenset[str]
        password_login: str
        provisioning: str
        username_claim: str
        groups_claim: str | None
        two_factor: str
        authorization_endpoint: str
        token_endpoint: str
        jwks_uri: str
        signing_algorithms: frozenset[str]

        def apply(self, environment: Environment) -> None:
            environment.identity_provider = IdentityProvider(
                connection_id=self.connection_id,
                issuer=self.issuer,
                client_id=self.client_id,
                encrypted_client_secret=self.encrypted_client_secret,
                display_name=self.display_name,
                redirect_uris=frozenset(self.redirect_uris),
                password_login=self.password_login,
                provisioning=self.provisioning,
                username_claim=self.username_claim,
                groups_claim=self.groups_claim,
                two_factor=self.two_factor,
                authorization_endpoint=self.authorization_endpoint,
                token_endpoint=self.token_endpoint,
                jwks_uri=self.jwks_uri,
                signing_algorithms=frozenset(self.signing_algorithms),
                discovered_at=self.timestamp,
            )

    class IdentityProviderChanged(IdentityProviderConnected):
        """New settings for the connected provider. A new ``connection_id`` (another
        issuer, client or secret) ends the logins pending through the old one."""

        TOPIC = "aero:Environment.IdentityProviderChanged"

    class IdentityProviderDisconnected(AeroAggregate.Event):
        """Password login is open to all again; links stay, pending logins end."""

        TOPIC = "aero:Environment.IdentityProviderDisconnected"
        issuer: str

        def apply(self, environment: Environment) -> None:
            environment.identity_provider = None

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
        self.identity_provider: IdentityProvider | None = None

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

    # ----- the identity provider -----

    def connect_identity_provider(
        self,
        settings: ProviderSettings,
        metadata: ProviderMetadata,
        encrypted_client_secret: str,
        connection_id: str,
        now: datetime,
    ) -> None:
        """Connect or change the provider. ``settings`` are valid (domain.identity).

        ``connection_id`` is kept while the issuer, client and secret stay: pending
        logins then go on under the new settings.
        """
        current = self.identity_provider
        event: type[Environment.IdentityProviderConnected] = self.IdentityProviderConnected
        if current is not None:
            event = self.IdentityProviderChanged
            if (current.issuer, current.client_id, current.encrypted_client_secret) == (
                settings.issuer,
                settings.client_id,
                encrypted_client_secret,
            ):
                connection_id = current.connection_id
        self._trigger(
            event,
            now,
            connection_id=connection_id,
            encrypted_client_secret=encrypted_client_secret,
            issuer=settings.issuer,
            client_id=settings.client_id,
            display_name=settings.display_name,
            redirect_uris=frozenset(settings.redirect_uris),
            password_login=settings.password_login,
            provisioning=settings.provisioning,
            username_claim=settings.username_claim,
            groups_claim=settings.groups_claim,
            two_factor=settings.two_factor,
            authorization_endpoint=metadata.authorization_endpoint,
            token_endpoint=metadata.token_endpoint,
            jwks_uri=metadata.jwks_uri,
            signing_algorithms=frozenset(metadata.signing_algorithms),
        )

    def disconnect_identity_provider(self, now: datetime) -> None:
        assert self.identity_provider is not None
        self._trigger(self.IdentityProviderDisconnected, now, issuer=self.identity_provider.issuer)

    def password_login_allowed(self, roles: frozenset[str]) -> bool:
        """The break-glass rule: with a provider, who may still use a local password."""
        provider = self.identity_provider
        rule = "all" if provider is None else provider.password_login
        return rule == "all" or (rule == "admins" and "admin" in roles)

    @property
    def groups_managed_by_provider(self) -> bool:
        provider = self.identity_provider
        return provider is not None and provider.groups_claim is not None
