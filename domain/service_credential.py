"""The ServiceCredential aggregate: how another service proves itself to token introspection.

An operator issues one per calling service and environment (``billing`` in
``acme``); the secret is shown once and only its SHA-256 is stored. A secret
of 256 random bits needs no slow hash: nobody can guess or look up its
preimage, and introspection, called on every request of the caller, stays cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import AeroAggregate
from domain.errors import AeroError, InvalidInputError

# The name is the client id of HTTP Basic authentication (RFC 7617), which may
# not contain ":"; the same alphabet as slugs, plus dots and underscores.
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_NAMESPACE = uuid5(NAMESPACE_URL, "https://aero-auth/ids/service-credentials")


class ServiceCredentialExistsError(AeroError):
    code = "service_credential_exists"


class ServiceCredentialNotFoundError(AeroError):
    code = "service_credential_not_found"


def valid_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInputError(
            "name", "1-63 lowercase letters, digits, dots, dashes or underscores"
        )
    return name


def service_credential_id(environment: str, name: str) -> UUID:
    """Deterministic: a second credential of the same name cannot be created by accident."""
    return uuid5(_NAMESPACE, f"{environment}/{name}")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ServiceCredential(AeroAggregate):
    TOPIC = "aero:ServiceCredential"

    class Created(AeroAggregate.Created):
        TOPIC = "aero:ServiceCredential.Created"
        environment: str
        name: str
        secret_hash: str

    class SecretIssued(AeroAggregate.Event):
        """A new secret for a credential that was revoked: the name is in use again."""

        TOPIC = "aero:ServiceCredential.SecretIssued"
        name: str
        secret_hash: str

        def apply(self, credential: ServiceCredential) -> None:
            credential.secret_hash = self.secret_hash
            credential.revoked = False

    class Revoked(AeroAggregate.Event):
        """The secret stops working at once."""

        TOPIC = "aero:ServiceCredential.Revoked"
        name: str

        def apply(self, credential: ServiceCredential) -> None:
            credential.secret_hash = None
            credential.revoked = True

    def __init__(self, environment: str, name: str, secret_hash: str) -> None:
        self.environment = environment
        self.name = name
        self.secret_hash: str | None = secret_hash
        self.revoked = False

    @classmethod
    def create(
        cls, environment: str, name: str, hashed_secret: str, now: datetime
    ) -> ServiceCredential:
        name = valid_name(name)
        return cls._start(
            cls.Created,
            id=service_credential_id(environment, name),
            now=now,
            environment=environment,
            name=name,
            secret_hash=hashed_secret,
        )

    def reissue(self, hashed_secret: str, now: datetime) -> None:
        if not self.revoked:
            raise ServiceCredentialExistsError(
                f"service credential {self.name!r} exists; revoke it first"
            )
        self._trigger(self.SecretIssued, now, name=self.name, secret_hash=hashed_secret)

    def revoke(self, now: datetime) -> None:
        if self.revoked:
            raise ServiceCredentialNotFoundError(f"service credential {self.name!r} is revoked")
        self._trigger(self.Revoked, now, name=self.name)

    def accepts(self, secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(secret_hash(secret), self.secret_hash)
