"""``aero-auth investigate`` against the scripted history, configured as the server is.

The CLI builds its own application with the system clock from AERO_ variables,
so these tests pass it the scripted store's settings as environment variables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from domain.instants import rfc3339
from interfaces.cli.investigate import investigate_app
from interfaces.cli.investigation import parse_instant
from tests.investigate.script import ENV, Scripted

runner = CliRunner()


def run(scripted: Scripted, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(
        investigate_app, list(args), env=env or scripted.cli_env(), catch_exceptions=False
    )


def run_json(scripted: Scripted, *args: str) -> Any:
    result = run(scripted, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_refused(result: Result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


# ----- answers -----


def test_policy_prints_the_policy_of_an_instant_as_json(scripted: Scripted) -> None:
    assert run_json(scripted, "policy", ENV, "--at", "2026-03-03T09:30:00Z") == {
        "require_2fa": True,
        "groups": ["finance"],
        "changed_by": "alice",
        "changed_at": "2026-03-03T09:30:00Z",
        "environment": ENV,
        "at": "2026-03-03T09:30:00Z",
    }


def test_policy_accepts_an_offset_and_converts_it_to_utc(scripted: Scripted) -> None:
    data = run_json(scripted, "policy", ENV, "--at", "2026-03-03T10:20:00+01:00")
    assert (data["require_2fa"], data["groups"], data["at"]) == (True, [], "2026-03-03T09:20:00Z")


def test_required_answers_with_the_rule_that_applied(scripted: Scripted) -> None:
    data = run_json(scripted, "required", ENV, "bob", "--at", "2026-03-03T09:40:00Z")
    assert list(data)[:3] == ["required", "rule", "registered"]
    assert (data["required"], data["rule"], data["registered"]) == (True, "group:finance", True)
    assert data["groups"] == ["finance"]
    assert data["policy_groups"] == ["finance"]


def test_required_after_the_policy_was_switched_off(scripted: Scripted) -> None:
    data = run_json(scripted, "required", ENV, "carol", "--at", "2026-03-03T10:20:00Z")
    assert (data["required"], data["rule"], data["registered"]) == (False, None, False)


def test_who_was_required_lists_only_the_required_users(scripted: Scripted) -> None:
    assert run_json(scripted, "who-was-required", ENV, "--at", "2026-03-03T09:55:00Z") == [
        {"username": "bob", "required": True, "rule": "group:finance", "registered": True},
        {"username": "carol", "required": True, "rule": "group:finance", "registered": False},
    ]


def test_who_was_required_with_all_lists_everyone_existing_then(scripted: Scripted) -> None:
    rows = run_json(scripted, "who-was-required", ENV, "--at", "2026-03-03T10:30:00Z", "--all")
    assert [(r["username"], r["required"]) for r in rows] == [
        ("alice", False),
        ("bob", False),
        ("carol", False),
        ("dave", False),
    ]


def test_who_was_required_prints_a_table_by_default(scripted: Scripted) -> None:
    result = run(scripted, "who-was-required", ENV, "--at", "2026-03-03T09:20:00Z")
    assert result.exit_code == 0, result.output
    assert "3 users required to use 2FA" in result.stdout
    for name in ("alice", "bob", "carol"):
        assert name in result.stdout


def test_state_shows_the_credential_without_secrets(scripted: Scripted) -> None:
    data = run_json(scripted, "state", ENV, "bob", "--at", "2026-03-03T09:45:00Z")
    assert data["groups"] == ["finance"]
    assert (data["registered"], data["required"], data["rule"]) == (True, True, "group:finance")
    assert data["recovery_codes_left"] == 10
    assert data["password_failures"] == 1
    assert data["last_login_at"] == "2026-03-03T09:40:00Z"
    text = json.dumps(data)
    assert scripted.bob_secret not in text
    assert "$argon2" not in text
    assert not {"password_hash", "secret", "pending_secret", "challenge_id"} & set(data)


def test_state_after_the_reset(scripted: Scripted) -> None:
    data = run_json(scripted, "state", ENV, "bob", "--at", "2026-03-03T10:10:00Z")
    assert (data["registered"], data["recovery_codes_left"]) == (False, 0)
    assert data["sessions_valid_after"] == "2026-03-03T10:10:00Z"


def test_state_prints_a_table_by_default(scripted: Scripted) -> None:
    result = run(scripted, "state", ENV, "carol", "--at", "2026-03-03T09:50:00Z")
    assert result.exit_code == 0, result.output
    assert "carol in acme" in result.stdout
    assert "finance, sales" in result.stdout


def test_timeline_lists_events_between_since_and_until(scripted: Scripted) -> None:
    entries = run_json(
        scripted,
        "timeline",
        ENV,
        "bob",
        "--since",
        "2026-03-03T09:45:00Z",
        "--until",
        "2026-03-03T10:10:00.000001Z",
    )
    assert [(e["type"], e["outcome"], e["actor"]) for e in entries] == [
        ("login_password_failed", "failure", "bob"),
        ("two_factor_reset", "success", "alice"),
    ]
    assert entries[1]["occurred_at"] == "2026-03-03T10:10:00Z"
    assert entries[1]["details"] == {"reason": "lost phone, ticket 4711"}
    assert entries[0]["ip"] == "203.0.113.9"


def test_timeline_prints_a_table_by_default(scripted: Scripted) -> None:
    wide: dict[str, str | None] = {**scripted.cli_env(), "COLUMNS": "200"}
    result = run(scripted, "timeline", ENV, "bob", "--with-policy", env=wide)
    assert result.exit_code == 0, result.output
    for kind in ("user_created", "two_factor_registered", "two_factor_reset", "groups_selected"):
        assert kind in result.stdout


# ----- refusals: one line on stderr, 2 for bad input, 1 for not found -----


@pytest.mark.parametrize(
    "args",
    [
        ("policy", ENV, "--at", "yesterday"),
        ("policy", ENV, "--at", "2026-03-03"),
        ("required", ENV, "bob", "--at", "2026-03-03T25:00:00Z"),
        ("state", ENV, "bob", "--at", "2026-03-03T10:00:00"),
        ("timeline", ENV, "bob", "--since", "03/03/2026"),
    ],
)
def test_a_malformed_instant_is_bad_input(scripted: Scripted, args: tuple[str, ...]) -> None:
    assert_refused(run(scripted, *args), 2, "RFC 3339")


def test_an_instant_in_the_future_is_bad_input(scripted: Scripted) -> None:
    result = run(scripted, "required", ENV, "bob", "--at", "2999-01-01T00:00:00Z")
    assert_refused(result, 2, "is in the future")


def test_an_instant_before_the_user_existed_is_not_found(scripted: Scripted) -> None:
    result = run(scripted, "state", ENV, "dave", "--at", "2026-03-03T10:00:00Z")
    assert_refused(result, 1, "did not exist at 2026-03-03T10:00:00Z")


def test_an_instant_before_the_environment_existed_is_not_found(scripted: Scripted) -> None:
    result = run(scripted, "policy", ENV, "--at", "2026-03-03T08:00:00Z")
    assert_refused(result, 1, "environment 'acme' did not exist")


def test_an_unknown_environment_is_not_found(scripted: Scripted) -> None:
    result = run(scripted, "who-was-required", "initech", "--at", "2026-03-03T10:00:00Z")
    assert_refused(result, 1, "no environment 'initech'")


def test_an_unknown_user_is_not_found(scripted: Scripted) -> None:
    assert_refused(run(scripted, "timeline", ENV, "zoe"), 1, "no user 'zoe'")


def test_a_missing_sqlite_store_is_refused_not_created(scripted: Scripted, tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        **scripted.cli_env(),
        "AERO_DATABASE_URL": f"sqlite:///{tmp_path}/missing.db",
    }
    result = run(scripted, "policy", ENV, "--at", "2026-03-03T10:00:00Z", env=env)
    assert_refused(result, 3, "no event store at")  # configuration: exits.py


def test_the_cli_writes_nothing_and_needs_no_totp_key(scripted: Scripted, tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        **scripted.cli_env(),
        "AERO_SECRET_KEY": None,
        "AERO_DATA_DIR": str(tmp_path / "data"),
    }
    before = scripted.app.recorder.max_notification_id()
    for args in (
        ("policy", ENV, "--at", "2026-03-03T10:00:00Z"),
        ("required", ENV, "bob", "--at", "2026-03-03T10:00:00Z"),
        ("who-was-required", ENV, "--at", "2026-03-03T10:00:00Z"),
        ("state", ENV, "bob", "--at", "2026-03-03T10:00:00Z"),
        ("timeline", ENV, "bob"),
    ):
        assert run(scripted, *args, env=env).exit_code == 0
    assert scripted.app.recorder.max_notification_id() == before
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-03T10:00:00Z", "2026-03-03T10:00:00Z"),
        ("2026-03-03t10:00:00z", "2026-03-03T10:00:00Z"),
        ("2026-03-03 10:00:00Z", "2026-03-03T10:00:00Z"),
        ("2026-03-03T15:30:00+05:30", "2026-03-03T10:00:00Z"),
        ("2026-03-03T05:00:00.25-05:00", "2026-03-03T10:00:00.250000Z"),
    ],
)
def test_instants_are_rfc_3339_with_any_offset_in_utc(text: str, expected: str) -> None:
    assert rfc3339(parse_instant(text)) == expected
