"""Token introspection (RFC 7662) for services holding an operator-issued credential:
active until a reset, a password change or a role change, and nothing leaks why not."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from httpx import Response
from typer.testing import CliRunner

from application.service_credentials import IssuedServiceCredential, ServiceCredentials
from interfaces.cli.main import app as cli
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest
from tests.http.conftest import ADMIN, ADMIN_PASSWORD, PASSWORD, Api, bearer, error_of


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    """The route over the application; tests/application covers the credentials on both stores."""
    return sqlite_database


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@pytest.fixture
def billing(acme: Api) -> IssuedServiceCredential:
    return ServiceCredentials(acme.application).create("acme", "billing")


def introspect(acme: Api, credential: IssuedServiceCredential, token: str, **form: str) -> Response:
    return acme.client.post(
        acme.url("/introspect"),
        data={"token": token, **form},
        headers=basic(credential.client_id, credential.client_secret),
    )


def test_a_live_access_token_is_active_with_its_facts(
    acme: Api, billing: IssuedServiceCredential
) -> None:
    acme.create_user("bob", roles=["auditor"])
    token = acme.access_token("bob")

    response = introspect(acme, billing, token, token_type_hint="access_token")

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body == {
        "active": True,
        "sub": str(acme.application.user("acme", "bob").id),
        "username": "bob",
        "env": "acme",
        "roles": ["auditor"],
        "iss": "aero-auth",
        "aud": "aero-auth:access",
        "iat": int(acme.clock.now().timestamp()),
        "nbf": int(acme.clock.now().timestamp()),
        "exp": int(acme.clock.now().timestamp()) + 3600,
        "token_type": "Bearer",
    }


def _reset(acme: Api) -> Response:
    return acme.client.post(
        acme.url("/users/bob/two-factor/reset"), json={"reason": "ticket 9"}, headers=acme.admin
    )


def _password(acme: Api) -> Response:
    return acme.client.put(
        acme.url("/users/bob/password"), json={"password": "a fresh passphrase"}, headers=acme.admin
    )


def _roles(acme: Api) -> Response:
    return acme.client.put(
        acme.url("/users/bob/roles"), json={"roles": ["auditor"]}, headers=acme.admin
    )


@pytest.mark.parametrize(
    "change", [_reset, _password, _roles], ids=["reset", "password change", "role change"]
)
def test_a_token_is_inactive_at_once_after_a_change_of_its_user(
    acme: Api, billing: IssuedServiceCredential, change: Callable[[Api], Response]
) -> None:
    acme.create_user("bob")
    acme.admin  # noqa: B018 (the admin logs in before bob, at the same instant)
    token = acme.access_token("bob")
    assert introspect(acme, billing, token).json()["active"] is True

    assert change(acme).status_code == 200
    # The same instant: only the order of events tells the token is older.
    assert introspect(acme, billing, token).json() == {"active": False}
    fresh = acme.access_token("bob", "a fresh passphrase" if change is _password else PASSWORD)
    assert introspect(acme, billing, fresh).json()["active"] is True


def test_after_a_role_change_the_api_still_accepts_the_token_with_the_current_roles(
    acme: Api, billing: IssuedServiceCredential
) -> None:
    acme.create_user("bob", roles=["admin"])
    token = bearer(acme.access_token("bob"))

    _roles(acme)

    assert acme.client.get(acme.url("/me"), headers=token).status_code == 200
    refused = acme.client.get(acme.url("/policy"), headers=token)
    assert (refused.status_code, error_of(refused)) == (403, "forbidden")


def test_anything_but_a_live_access_token_of_this_environment_is_just_inactive(
    acme: Api, billing: IssuedServiceCredential
) -> None:
    acme.env = "globex"
    assert acme.create_environment().status_code == 201
    foreign = acme.access_token(ADMIN, ADMIN_PASSWORD)
    acme.env = "acme"
    acme.create_user("carol", groups=["finance"])
    acme.set_policy(True, ["finance"])
    login_token = acme.login_token("carol", "two_factor_registration_required")
    expiring = acme.access_token(ADMIN, ADMIN_PASSWORD)
    head, payload, signature = expiring.split(".")

    answers = [
        introspect(acme, billing, token).json()
        for token in (foreign, login_token, f"{head}.{payload}x.{signature}", "garbage")
    ]
    acme.clock.advance(seconds=3600)
    answers.append(introspect(acme, billing, expiring).json())

    assert answers == [{"active": False}] * 5


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("billing", "not the secret"),
        basic("payroll", "not the secret"),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer something"},
    ],
    ids=["none", "wrong secret", "unknown name", "malformed", "bearer"],
)
def test_a_wrong_service_credential_is_401(
    acme: Api, billing: IssuedServiceCredential, headers: dict[str, str]
) -> None:
    token = acme.access_token(ADMIN, ADMIN_PASSWORD)

    response = acme.client.post(acme.url("/introspect"), data={"token": token}, headers=headers)

    assert (response.status_code, error_of(response)) == (401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")


def test_a_credential_works_only_in_its_own_environment(
    acme: Api, billing: IssuedServiceCredential
) -> None:
    acme.env = "globex"
    assert acme.create_environment().status_code == 201
    token = acme.access_token(ADMIN, ADMIN_PASSWORD)

    response = introspect(acme, billing, token)

    assert (response.status_code, error_of(response)) == (401, "invalid_client")


def test_a_revoked_credential_is_refused_at_once_and_a_new_secret_works(
    acme: Api, billing: IssuedServiceCredential
) -> None:
    credentials = ServiceCredentials(acme.application)
    token = acme.access_token(ADMIN, ADMIN_PASSWORD)

    credentials.revoke("acme", "billing")
    revoked = introspect(acme, billing, token)
    again = credentials.create("acme", "billing")

    assert (revoked.status_code, error_of(revoked)) == (401, "invalid_client")
    assert introspect(acme, billing, token).status_code == 401
    assert introspect(acme, again, token).json()["active"] is True


def test_json_bodies_are_accepted_and_checked_like_every_other(
    acme: Api, billing: IssuedServiceCredential
) -> None:
    token = acme.access_token(ADMIN, ADMIN_PASSWORD)
    auth = basic(billing.client_id, billing.client_secret)

    def post(content_type: str | None = None, **kwargs: Any) -> Response:
        headers = auth if content_type is None else {**auth, "Content-Type": content_type}
        return acme.client.post(acme.url("/introspect"), headers=headers, **kwargs)

    assert post(json={"token": token}).json()["active"] is True
    assert post(json={"token": token, "extra": 1}).status_code == 422
    assert post(data={"token_type_hint": "access_token"}).status_code == 422
    assert post(data={"token": token, "unknown": "ignored"}).json()["active"] is True
    plain = post("text/plain", content=token)
    assert (plain.status_code, error_of(plain)) == (415, "unsupported_media_type")


def test_the_operator_issues_lists_and_revokes_credentials_from_the_command_line(
    acme: Api, settings: Settings
) -> None:
    env = {
        "AERO_DATABASE_URL": settings.database_url,
        "AERO_DATA_DIR": str(settings.data_dir),
        "AERO_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
    }
    runner = CliRunner()
    token = acme.access_token(ADMIN, ADMIN_PASSWORD)

    created = runner.invoke(
        cli, ["service-credentials", "create", "--env", "acme", "--name", "billing"], env=env
    )
    assert created.exit_code == 0, created.output
    lines = dict(line.split(": ", 1) for line in created.stdout.splitlines() if ": " in line)
    issued = IssuedServiceCredential("acme", lines["client_id"], lines["client_secret"])
    assert introspect(acme, issued, token).json()["active"] is True
    listed = runner.invoke(cli, ["service-credentials", "list", "--env", "acme"], env=env)
    assert listed.stdout.split() == ["billing", "live"]

    revoked = runner.invoke(
        cli, ["service-credentials", "revoke", "--env", "acme", "--name", "billing"], env=env
    )
    assert revoked.exit_code == 0, revoked.output
    assert introspect(acme, issued, token).status_code == 401
    twice = runner.invoke(
        cli, ["service-credentials", "create", "--env", "nowhere", "--name", "x"], env=env
    )
    assert twice.exit_code == 1 and "environment_not_found" in twice.output


def test_openapi_describes_introspection_with_both_bodies_and_examples(acme: Api) -> None:
    schema = acme.client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/environments/{env}/introspect"]["post"]

    content = operation["requestBody"]["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
    assert all(body["schema"]["required"] == ["token"] for body in content.values())
    examples = operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert examples["inactive"]["value"] == {"active": False}
    assert {"401", "415", "422"} <= set(operation["responses"])
    assert operation["security"] == [{"ServiceCredential": []}]
    assert schema["components"]["securitySchemes"]["ServiceCredential"]["scheme"] == "basic"
