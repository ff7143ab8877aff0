"""An environment's OpenID Connect provider (Microsoft Entra ID or any other), and the
federated logins through it.

Users are linked to the provider's (``iss``, ``sub``) pair and to nothing else: an
``email`` or ``preferred_username`` can be changed by the user or by whoever runs
a tenant, so matching on them lets a stranger take over an account (the "nOAuth"
takeover). Each pair is its own aggregate, ``IdentityLink``, with an id derived
from the pair: "who has this subject" is then one load, decided from events, and
two users claiming one subject conflict in the store itself.

A login through the provider is a ``FederatedLogin`` aggregate whose id is derived
from its ``state``: every worker and host sees it in the event store, its first
callback ends it, and two callbacks racing with one state conflict on its version,
so exactly one of them goes on. The state, the nonce and the PKCE verifier are
secrets: the store keeps a hash of the first two and the verifier encrypted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from domain.base import AeroAggregate
from domain.errors import InvalidIdentityProviderError, InvalidInputError
from domain.rules import has_control_characters

PASSWORD_LOGIN = ("all", "admins", "none")
PROVISIONING = ("auto", "none")
TWO_FACTOR_MODES = ("aero", "provider", "amr")

# The actor of what a federated login changes on its own: users it creates, groups it sets.
PROVIDER_ACTOR = "identity-provider"

# A provisioned user has no local password: this is no argon2 hash, so no password
# verifies against it, and the password step refuses it as a wrong password.
NO_PASSWORD = ""

ENTRA_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
    }
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NAMESPACE = uuid5(NAMESPACE_URL, "https://aero-auth/ids/identity")


class IdentityProvider(NamedTuple):
    """An environment's provider as connected. A tuple of immutable values, so the
    environment's copies may share it (domain/base.py)."""

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
    discovered_at: datetime

    @property
    def entra_tenant(self) -> str | None:
        return entra_tenant(self.issuer)


class ProviderMetadata(NamedTuple):
    """What the provider's discovery document says, as the login uses it."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    signing_algorithms: frozenset[str]


class ProviderSettings(NamedTuple):
    """What an admin chooses when connecting (everything but the secret)."""

    issuer: str
    client_id: str
    display_name: str
    redirect_uris: frozenset[str]
    password_login: str
    provisioning: str
    username_claim: str
    groups_claim: str | None
    two_factor: str


# ----- rules -----


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def valid_provider_issuer(issuer: str) -> str:
    """https, or http on a loopback address (127.0.0.0/8, ::1); no query or fragment."""
    if not isinstance(issuer, str) or not 1 <= len(issuer) <= 512:
        raise InvalidIdentityProviderError("issuer must be a URL of at most 512 characters")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or not parts.hostname or has_control_characters(issuer):
        raise InvalidIdentityProviderError("issuer must be a URL without query or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return issuer
    raise InvalidIdentityProviderError(
        "issuer must be https, or http on a loopback address (127.0.0.0/8, ::1)"
    )


def valid_redirect_uris(uris: Iterable[str]) -> frozenset[str]:
    if isinstance(uris, str):
        raise InvalidInputError("redirect_uris", "must be a list of URLs, not one string")
    result = frozenset(uris)
    if not result:
        raise InvalidInputError("redirect_uris", "name at least one redirect URI")
    for uri in result:
        parts = urlsplit(uri) if isinstance(uri, str) else None
        if (
            parts is None
            or parts.scheme not in ("https", "http")
            or not parts.hostname
            or parts.fragment
            or len(uri) > 2048
            or has_control_characters(uri)
        ):
            raise InvalidInputError(
                "redirect_uris", "each must be an absolute http(s) URL without a fragment"
            )
    return result


def valid_choice(field: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidInputError(field, f"must be one of {', '.join(choices)}")
    return value


def valid_claim_name(field: str, value: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or has_control_characters(value):
        raise InvalidInputError(field, "must be a claim name of 1 to 64 characters")
    return value


def valid_settings(settings: ProviderSettings) -> ProviderSettings:
    display_name = unicodedata.normalize("NFC", settings.display_name).strip()
    if not 1 <= len(display_name) <= 64 or has_control_characters(display_name):
        raise InvalidInputError("display_name", "must be 1 to 64 characters")
    if not isinstance(settings.client_id, str) or not 1 <= len(settings.client_id) <= 256:
        raise InvalidInputError("client_id", "must be 1 to 256 characters")
    return settings._replace(
        issuer=valid_provider_issuer(settings.issuer),
        display_name=display_name,
        redirect_uris=valid_redirect_uris(settings.redirect_uris),
        password_login=valid_choice("password_login", settings.password_login, PASSWORD_LOGIN),
        provisioning=valid_choice("provisioning", settings.provisioning, PROVISIONING),
        username_claim=valid_claim_name("username_claim", settings.username_claim),
        groups_claim=None
        if settings.groups_claim is None
        else valid_claim_name("groups_claim", settings.groups_claim),
        two_factor=valid_choice("two_factor", settings.two_factor, TWO_FACTOR_MODES),
    )


def entra_tenant(issuer: str) -> str | None:
    """The tenant id of an Entra issuer (``https://login.microsoftonline.com/<tenant>/v2.0``).

    Entra signs every tenant's tokens with the same keys, so a token of another
    tenant carries a valid signature: only ``tid`` tells them apart. The sovereign
    clouds, and a provider at another address that takes the same issuer shape
    (``/<tenant GUID>/v2.0``), are held to the same rule.
    """
    parts = urlsplit(issuer)
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 2 or segments[1] != "v2.0":
        return None
    if (parts.hostname or "").lower() in ENTRA_HOSTS or _GUID.match(segments[0]):
        return segments[0]
    return None


def secret_hash(value: str) -> str:
    """What the store keeps of a state or a nonce: 256 random bits make it irreversible."""
    return hashlib.sha256(value.encode()).hexdigest()


def federated_login_id(state: str) -> UUID:
    return uuid5(_NAMESPACE, f"state/{secret_hash(state)}")


def identity_link_id(environment: str, issuer: str, subject: str) -> UUID:
    # A separator that no issuer URL holds keeps (iss, sub) pairs apart.
    return uuid5(_NAMESPACE, f"link/{environment}\n{issuer}\n{subject}")


# ----- aggregates -----


class IdentityLink(AeroAggregate):
    """Which user of an environment an (issuer, subject) pair logs in as, if any.

    Its events are the index behind the user's own ``IdentityLinked`` and
    ``IdentityUnlinked``, saved with them; the audit log records the user's.
    """

    TOPIC = "aero:IdentityLink"

    class Created(AeroAggregate.Created):
        TOPIC = "aero:IdentityLink.Created"
        environment: str
        issuer: str
        subject: str
        username: str

    class Relinked(AeroAggregate.Event):
        TOPIC = "aero:IdentityLink.Relinked"
        username: str

        def apply(self, link: IdentityLink) -> None:
            link.username = self.username

    class Released(AeroAggregate.Event):
        TOPIC = "aero:IdentityLink.Released"

        def apply(self, link: IdentityLink) -> None:
            link.username = None

    def __init__(self, environment: str, issuer: str, subject: str, username: str) -> None:
        self.environment = environment
        self.issuer = issuer
        self.subject = subject
        self.username: str | None = username

    @classmethod
    def create(
        cls, environment: str, issuer: str, subject: str, username: str, now: datetime
    ) -> IdentityLink:
        return cls._start(
            cls.Created,
            id=identity_link_id(environment, issuer, subject),
            now=now,
            environment=environment,
            issuer=issuer,
            subject=subject,
            username=username,
        )

    def relink(self, username: str, now: datetime) -> None:
        self._trigger(self.Relinked, now, username=username)

    def release(self, now: datetime) -> None:
        if self.username is not None:
            self._trigger(self.Released, now)


class FederatedLogin(AeroAggregate):
    """One authorization request to the provider, ended by its first callback."""

    TOPIC = "aero:FederatedLogin"

    class Created(AeroAggregate.Created):
        """The authorization request was made; the browser is on its way to the provider."""

        TOPIC = "aero:FederatedLogin.Created"
        environment: str
        connection_id: str
        nonce_hash: str
        encrypted_verifier: str
        redirect_uri: str
        expires_at: datetime

    class CallbackClaimed(AeroAggregate.Event):
        """A callback took this login before asking the provider anything.

        The state is single use: of two callbacks with the same state (a replay, or a
        browser's retry reaching another worker) one saves this event and goes on,
        and the other meets a conflict and is refused without redeeming the code, so
        it cannot fail the login the first is completing.
        """

        TOPIC = "aero:FederatedLogin.CallbackClaimed"

        def apply(self, login: FederatedLogin) -> None:
            login.claimed = True

    class Completed(AeroAggregate.Event):
        """The callback logged a user in; the user's own events say how."""

        TOPIC = "aero:FederatedLogin.Completed"
        username: str

        def apply(self, login: FederatedLogin) -> None:
            login.ended = True

    class Failed(AeroAggregate.Event):
        """The callback failed; ``subject`` once the ID token named one. Never a token."""

        TOPIC = "aero:FederatedLogin.Failed"
        reason: str
        subject: str | None

        def apply(self, login: FederatedLogin) -> None:
            login.ended = True

    claimed = False  # also for logins started before CallbackClaimed existed

    def __init__(
        self,
        environment: str,
        connection_id: str,
        nonce_hash: str,
        encrypted_verifier: str,
        redirect_uri: str,
        expires_at: datetime,
    ) -> None:
        self.environment = environment
        self.connection_id = connection_id
        self.nonce_hash = nonce_hash
        self.encrypted_verifier = encrypted_verifier
        self.redirect_uri = redirect_uri
        self.expires_at = expires_at
        self.ended = False

    @classmethod
    def start(
        cls,
        login_id: UUID,
        environment: str,
        connection_id: str,
        nonce_hash: str,
        encrypted_verifier: str,
        redirect_uri: str,
        expires_at: datetime,
        now: datetime,
    ) -> FederatedLogin:
        return cls._start(
            cls.Created,
            id=login_id,
            now=now,
            environment=environment,
            connection_id=connection_id,
            nonce_hash=nonce_hash,
            encrypted_verifier=encrypted_verifier,
            redirect_uri=redirect_uri,
            expires_at=expires_at,
        )

    def usable(self, environment: str, connection_id: str | None, now: datetime) -> str | None:
        """Why this login cannot go on, or None: ended, expired, or its provider gone."""
        if self.environment != environment:
            return "unknown_state"
        if self.ended:
            return "state_used"
        if now >= self.expires_at:
            return "state_expired"
        if connection_id != self.connection_id:
            return "provider_changed"
        return None

    def claim(self, now: datetime) -> None:
        """Take the login for this callback; a second claim is refused as ``state_used``."""
        if self.claimed or self.ended:
            raise ValueError("state_used")
        self._trigger(self.CallbackClaimed, now)

    def complete(self, username: str, now: datetime) -> None:
        self._trigger(self.Completed, now, username=username)

    def fail(self, reason: str, subject: str | None, now: datetime) -> None:
        self._trigger(self.Failed, now, reason=reason, subject=subject)


class RejectedCallback(AeroAggregate):
    """A callback whose state names no live login of this environment.

    One aggregate per attempt (a random id), like an unknown user's password step.
    """

    TOPIC = "aero:RejectedCallback"

    class Created(AeroAggregate.Created):
        TOPIC = "aero:RejectedCallback.Created"
        environment: str
        reason: str

    def __init__(self, environment: str, reason: str) -> None:
        self.environment = environment
        self.reason = reason

    @classmethod
    def record(cls, environment: str, reason: str, now: datetime) -> RejectedCallback:
        return cls._start(cls.Created, id=uuid4(), now=now, environment=environment, reason=reason)


def new_connection_id() -> str:
    return str(uuid4())
