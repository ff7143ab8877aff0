"""Investigations see the provider: whether an environment had one at an instant
(``?at=`` and ``aero-auth investigate identity-provider``), and how a user logged in
(``investigate logins``)."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from domain.instants import rfc3339
from interfaces.cli.main import app as cli
from interfaces.settings import Settings
from tests.http.conftest import error_of
from tests.oidc.conftest import Federation
from tests.oidc.harness import CLIENT_SECRET


def investigate(settings: Settings, *args: str) -> Any:
    assert settings.secret_key is not None
    env = {
        "AERO_DATABASE_URL": settings.database_url,
        "AERO_DATA_DIR": str(settings.data_dir),
        "AERO_SECRET_KEY": settings.secret_key.get_secret_value(),
    }
    result = CliRunner().invoke(
        cli, ["investigate", *args, "--json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert CLIENT_SECRET not in result.output
    return json.loads(result.stdout)


def test_at_an_instant_the_environment_had_a_provider_or_none(
    federation: Federation, settings: Settings
) -> None:
    api, clock = federation.api, federation.api.clock
    before = rfc3339(clock.now())
    assert federation.connect().status_code == 200
    connected = rfc3339(clock.now())
    subject = federation.provider.account("carol-sub", preferred_username="carol")
    assert federation.login(subject).status_code == 200
    logged_in = rfc3339(clock.now())
    assert api.client.delete(api.url("/identity-provider"), headers=api.admin).status_code == 204
    after = rfc3339(clock.now())

    def at(instant: str) -> Any:
        return api.client.get(
            api.url("/identity-provider"), params={"at": instant}, headers=api.admin
        )

    assert (at(before).status_code, error_of(at(before))) == (404, "identity_provider_not_found")
    then = at(connected)
    assert then.status_code == 200
    assert then.json()["issuer"] == federation.provider.issuer
    assert then.json()["client_secret_set"] is True
    assert at(after).status_code == 404
    carol_then = api.client.get(
        api.url("/users/carol"), params={"at": logged_in}, headers=api.admin
    )
    assert carol_then.json()["identity"]["subject"] == "carol-sub"

    assert investigate(settings, "identity-provider", "acme", "--at", before)["connected"] is False
    answer = investigate(settings, "identity-provider", "acme", "--at", connected)
    assert (answer["connected"], answer["issuer"], answer["two_factor"]) == (
        True,
        federation.provider.issuer,
        "aero",
    )
    assert investigate(settings, "identity-provider", "acme", "--at", after)["connected"] is False


def test_investigate_logins_tells_how_a_user_logged_in(
    connected: Federation, settings: Settings
) -> None:
    api = connected.api
    api.create_user("bob", roles=["admin"])
    api.login("bob")
    connected.api.client.put(
        api.url("/users/bob/identity"), json={"subject": "bob-sub"}, headers=api.admin
    )
    connected.provider.account("bob-sub", preferred_username="robert")
    connected.login("bob-sub")

    entries = investigate(settings, "logins", "acme", "bob")

    steps = [(e["type"], e["details"].get("method"), e["details"].get("subject")) for e in entries]
    assert steps == [
        ("login_password_succeeded", None, None),
        ("login_succeeded", "password", None),
        ("login_federated_succeeded", None, "bob-sub"),
        ("login_succeeded", "federated", None),
    ]
    assert all(e["user_agent"] for e in entries)
    state = investigate(settings, "state", "acme", "bob", "--at", rfc3339(api.clock.now()))
    assert state["identity_subject"] == "bob-sub"
