"""``aero-auth keys rotate`` and ``keys status`` on both stores: the counts they print,
and their exit statuses (interfaces/cli/exits.py)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from application.clock import FixedClock
from application.service import AeroAuth
from domain.credential import UserCredential
from interfaces.cli.exits import CONFIGURATION, DONE, FINDING, USAGE
from interfaces.cli.main import app as cli
from interfaces.settings import Settings
from tests.application.helpers import bob_registered, events_since, position, types
from tests.support import cli_env

OLD = base64.b64encode(b"k" * 32).decode()  # the settings fixture's key, id k1
NEW = base64.b64encode(b"n" * 32).decode()
UNSET: dict[str, str | None] = {name: None for name in os.environ if name.startswith("AERO_")}


def keys(env: dict[str, str | None], *args: str) -> Result:
    return CliRunner().invoke(cli, ["keys", *args], env=env)


def configured(settings: Settings, secret_keys: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = {**UNSET, **cli_env(settings)}
    if secret_keys is not None:
        env["AERO_SECRET_KEYS"] = secret_keys
    return env


def only_line(text: str) -> str:
    [line] = text.strip().splitlines()
    return line


@pytest.fixture
def bob(app: AeroAuth, clock: FixedClock) -> AeroAuth:
    """acme: alice without an authenticator, bob registered under k1."""
    bob_registered(app, clock)
    return app


def test_rotate_then_status_then_the_old_key_can_go(bob: AeroAuth, settings: Settings) -> None:
    both = configured(settings, f"k2:{NEW},k1:{OLD}")
    only_new = configured(settings, f"k2:{NEW}")

    before = keys(both, "status")
    missing = keys(only_new, "status")
    assert before.exit_code == DONE, before.output
    assert before.stdout.splitlines() == [
        "k2\tcurrent\t0 stored secrets (0 registered, 0 pending registration)",
        "k1\tconfigured\t1 stored secret (1 registered, 0 pending registration); "
        "run `aero-auth keys rotate --all`",
    ]
    assert missing.exit_code == FINDING
    assert "k1\tNOT CONFIGURED\t1 stored secret" in missing.stdout
    assert "not configured: k1 (1 secret)" in only_line(missing.stderr)

    mark = position(bob)
    rotated = keys(both, "rotate", "acme")
    assert rotated.exit_code == DONE, rotated.output
    assert rotated.stdout.splitlines() == [
        "acme: 1 rotated to k2, 0 already under k2, 1 without an authenticator secret"
    ]
    assert types(events_since(bob, mark)) == [UserCredential.TwoFactorSecretReencrypted]
    [event] = events_since(bob, mark)
    assert (event.actor, event.user_agent) == ("operator", "aero-auth cli")

    again = keys(both, "rotate", "--all")
    assert again.exit_code == DONE, again.output
    assert again.stdout.splitlines() == [
        "acme: 0 rotated to k2, 1 already under k2, 1 without an authenticator secret",
        "nothing to rotate: every stored secret there is under the current key",
    ]
    assert position(bob) == mark + 1

    after = keys(both, "status")
    assert after.exit_code == DONE
    assert after.stdout.splitlines()[1] == (
        "k1\tconfigured\t0 stored secrets (0 registered, 0 pending registration); "
        "no stored secret needs it: it may be removed"
    )
    gone = keys(only_new, "status")
    assert gone.exit_code == DONE, gone.output
    assert gone.stdout.splitlines() == [
        "k2\tcurrent\t1 stored secret (1 registered, 0 pending registration)"
    ]


def test_a_secret_whose_key_is_not_configured_is_a_finding_and_stays(
    bob: AeroAuth, settings: Settings
) -> None:
    assert keys(configured(settings, f"k2:{NEW},k1:{OLD}"), "rotate", "acme").exit_code == DONE
    mark = position(bob)

    # Rotating "back" with only the old key configured: k2's secret cannot be read.
    result = keys(configured(settings, None), "rotate", "acme")

    assert result.exit_code == FINDING
    assert (
        "acme: 0 rotated to k1, 0 already under k1, 1 without an authenticator secret, "
        "1 not rotated" in result.stdout
    )
    assert "bob: not rotated: no key with id 'k2' to decrypt with" in result.stdout
    assert "1 user not rotated" in only_line(result.stderr)
    assert position(bob) == mark


def test_a_key_replaced_under_its_id_is_a_finding_of_status(
    bob: AeroAuth, settings: Settings
) -> None:
    result = keys(configured(settings, f"k1:{NEW}"), "status")

    assert result.exit_code == FINDING
    assert result.stdout.splitlines() == [
        "k1\tcurrent\t1 stored secret (1 registered, 0 pending registration); "
        "1 not decrypted by the configured key"
    ]
    assert "a key was replaced under its id" in only_line(result.stderr)


@pytest.mark.parametrize(
    "args", [[], ["acme", "--all"]], ids=["no environment", "environments and --all"]
)
def test_rotate_needs_environments_or_all_but_not_both(
    bob: AeroAuth, settings: Settings, args: list[str]
) -> None:
    result = keys(configured(settings, None), "rotate", *args)

    assert result.exit_code == USAGE
    assert "name the environments to rotate, or give --all" in only_line(result.stderr)


def test_an_unknown_environment_rotates_nothing_even_beside_a_known_one(
    bob: AeroAuth, settings: Settings
) -> None:
    mark = position(bob)

    result = keys(configured(settings, f"k2:{NEW},k1:{OLD}"), "rotate", "acme", "acmee")

    assert result.exit_code == FINDING
    assert "environment_not_found: no environment 'acmee'" in only_line(result.stderr)
    assert position(bob) == mark


def test_keys_commands_never_make_a_key(bob: AeroAuth, settings: Settings) -> None:
    env = configured(settings, None)
    env["AERO_SECRET_KEY"] = None  # nothing configured, and no secret.key in the data dir

    for args in (["status"], ["rotate", "--all"]):
        result = keys(env, *args)
        assert result.exit_code == CONFIGURATION, result.output
        assert "no TOTP secret key at" in only_line(result.stderr)
    assert not Path(settings.data_dir, "secret.key").exists()
