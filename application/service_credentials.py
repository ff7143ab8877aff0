"""Service credentials: issued by the operator, used by other services to introspect tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.service import AeroAuth
from domain.service_credential import (
    ServiceCredential,
    ServiceCredentialExistsError,
    ServiceCredentialNotFoundError,
    secret_hash,
    service_credential_id,
    valid_name,
)

_TOPICS = (
    ServiceCredential.Created.TOPIC,
    ServiceCredential.SecretIssued.TOPIC,
    ServiceCredential.Revoked.TOPIC,
)


@dataclass(frozen=True)
class IssuedServiceCredential:
    """What the operator hands to the calling service; the secret is shown this once."""

    environment: str
    client_id: str
    client_secret: str


class ServiceCredentials:
    """Commands on service credentials, over the one application and its event store."""

    def __init__(self, application: AeroAuth) -> None:
        self.application = application

    def create(self, environment: str, name: str) -> IssuedServiceCredential:
        """A new credential, or a new secret for a revoked one of that name."""
        app = self.application
        app.environment(environment)
        name = valid_name(name)
        # 256 bits from a CSPRNG: only its SHA-256 is stored.
        secret = secrets.token_urlsafe(32)
        hashed = secret_hash(secret)
        try:
            existing: ServiceCredential = app.repository.get(
                service_credential_id(environment, name)
            )
        except AggregateNotFoundError:
            try:
                app.save(ServiceCredential.create(environment, name, hashed, app.clock.now()))
            except IntegrityError:
                raise ServiceCredentialExistsError(f"service credential {name!r} exists") from None
        else:
            existing.reissue(hashed, app.clock.now())
            app.save(existing)
        return IssuedServiceCredential(environment, name, secret)

    def revoke(self, environment: str, name: str) -> None:
        """The secret stops working at once, in every server process."""
        app = self.application
        credential = self._get(environment, name)
        credential.revoke(app.clock.now())
        app.save(credential)

    def authenticate(self, environment: str, client_id: str, client_secret: str) -> bool:
        """Whether this is a live credential of ``environment`` with this secret."""
        try:
            credential = self._get(environment, client_id)
        except ServiceCredentialNotFoundError:
            return False
        return credential.environment == environment and credential.accepts(client_secret)

    def names(self, environment: str) -> list[tuple[str, bool]]:
        """Every credential of ``environment`` ever created, with whether it is live, by name."""
        self.application.environment(environment)
        recorder = self.application.recorder
        live: dict[str, bool] = {}
        start = 1
        while True:
            page = recorder.select_notifications(start, 1000, topics=_TOPICS)
            for notification in page:
                event = self.application.mapper.to_domain_event(notification)
                credential = self._get_by_id(event.originator_id)
                if credential is not None and credential.environment == environment:
                    live[credential.name] = not credential.revoked
            if len(page) < 1000:
                break
            start = page[-1].id + 1
        return sorted(live.items())

    def _get(self, environment: str, name: str) -> ServiceCredential:
        credential = self._get_by_id(service_credential_id(environment, name))
        if credential is None:
            raise ServiceCredentialNotFoundError(f"no service credential {name!r}")
        return credential

    def _get_by_id(self, credential_id: UUID) -> ServiceCredential | None:
        try:
            credential: ServiceCredential = self.application.repository.get(credential_id)
        except AggregateNotFoundError:
            return None
        return credential
