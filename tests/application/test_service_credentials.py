"""Service credentials in the event store: issued once, checked, revoked, issued again."""

from __future__ import annotations

import pytest

from application.service import AeroAuth
from application.service_credentials import ServiceCredentials
from domain.errors import EnvironmentNotFoundError, InvalidInputError
from domain.service_credential import (
    ServiceCredentialExistsError,
    ServiceCredentialNotFoundError,
)
from tests.application.helpers import ALICE, ALICE_PASSWORD, ISSUER


def make_environment(app: AeroAuth, slug: str = "acme") -> None:
    app.create_environment(slug, slug.title(), ISSUER, ALICE, ALICE_PASSWORD)


def test_a_credential_is_checked_revoked_and_issued_again(app: AeroAuth) -> None:
    make_environment(app)
    make_environment(app, "other")
    credentials = ServiceCredentials(app)

    first = credentials.create("acme", "billing")
    with pytest.raises(ServiceCredentialExistsError):
        credentials.create("acme", "billing")
    assert credentials.authenticate("acme", "billing", first.client_secret)
    assert not credentials.authenticate("acme", "billing", first.client_secret + "x")
    assert not credentials.authenticate("other", "billing", first.client_secret)
    assert not credentials.authenticate("acme", "payroll", first.client_secret)

    credentials.revoke("acme", "billing")
    assert not credentials.authenticate("acme", "billing", first.client_secret)
    with pytest.raises(ServiceCredentialNotFoundError):
        credentials.revoke("acme", "billing")
    assert credentials.names("acme") == [("billing", False)]

    second = credentials.create("acme", "billing")
    assert second.client_secret != first.client_secret
    assert credentials.authenticate("acme", "billing", second.client_secret)
    assert not credentials.authenticate("acme", "billing", first.client_secret)
    assert credentials.names("acme") == [("billing", True)]
    assert credentials.names("other") == []


def test_names_and_environments_are_checked(app: AeroAuth) -> None:
    make_environment(app)
    credentials = ServiceCredentials(app)

    with pytest.raises(EnvironmentNotFoundError):
        credentials.create("nowhere", "billing")
    for name in ("", "Billing", "a:b", "x" * 64):
        with pytest.raises(InvalidInputError):
            credentials.create("acme", name)


def test_the_store_holds_only_the_secrets_hash(app: AeroAuth) -> None:
    make_environment(app)

    issued = ServiceCredentials(app).create("acme", "billing")

    stored = b"".join(bytes(n.state) for n in app.recorder.select_notifications(1, 1000))
    assert issued.client_secret.encode() not in stored
