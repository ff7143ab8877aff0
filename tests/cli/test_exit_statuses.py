"""Every command but ``serve`` and ``environments create`` refuses a store that does not
exist, and a mistyped environment is a finding: the exit statuses of interfaces/cli/exits.py,
one line on stderr, and no file created."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from application.service import AeroAuth
from interfaces.cli.exits import CONFIGURATION, FINDING, USAGE
from interfaces.cli.main import app as cli
from interfaces.composition import prepare_first_start
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest

runner = CliRunner()
ADMIN_PASSWORD = "correct horse battery"


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def commands_naming(env: str, into: Path) -> list[list[str]]:
    """Every command that reads an environment, with that environment."""
    return [
        ["verify-audit", env],
        ["investigate", "timeline", env, "alice"],
        ["investigate", "state", env, "alice", "--at", now()],
        ["investigate", "required", env, "alice", "--at", now()],
        ["investigate", "policy", env, "--at", now()],
        ["investigate", "who-was-required", env, "--at", now()],
        ["keys", "rotate", env],
    ]


def commands_on_a_store(into: Path) -> list[list[str]]:
    """Every command that reads or writes an existing store, none of which may create one."""
    return [
        *commands_naming("acme", into),
        ["rebuild", "audit"],
        ["project"],
        ["investigate", "verify"],
        ["investigate", "replay", "--until", now(), "--into", f"sqlite:///{into}"],
        ["keys", "status"],
    ]


COMMANDS = [" ".join(c[:2]) for c in commands_on_a_store(Path("case.db"))]


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def invoke(args: list[str], env: Mapping[str, str | None]) -> Result:
    return runner.invoke(cli, args, env=dict(env))


def assert_one_line(result: Result, status: int, words: str) -> None:
    assert result.exit_code == status, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0], lines[0]
    assert "Traceback" not in result.output


UNSET: dict[str, str | None] = {name: None for name in os.environ if name.startswith("AERO_")}


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=COMMANDS)
def test_a_command_run_where_there_is_no_store_says_so_and_creates_nothing(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)  # the default store, var/aero.db, is relative to here
    args = commands_on_a_store(tmp_path / "case.db")[index]

    result = invoke(args, UNSET)

    assert_one_line(result, CONFIGURATION, "no event store at")
    assert files_under(folder) == set()
    assert not (tmp_path / "case.db").exists()


def test_a_missing_postgresql_event_store_is_refused_too() -> None:
    result = invoke(
        ["verify-audit", "acme"],
        {**UNSET, "AERO_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
    )
    assert_one_line(result, CONFIGURATION, "cannot reach PostgreSQL at")


@pytest.fixture
def real_store(app: AeroAuth, settings: Settings) -> dict[str, str | None]:
    """A store with environment acme and its built views, as a running service leaves it."""
    prepare_first_start(settings)  # the keys a first start makes
    app.create_environment("acme", "Acme", "BizzStream Aero", "alice", ADMIN_PASSWORD)
    assert settings.secret_key is not None
    env: dict[str, str | None] = {
        **UNSET,
        "AERO_DATABASE_URL": settings.database_url,
        "AERO_DATA_DIR": str(settings.data_dir),
        "AERO_SECRET_KEY": settings.secret_key.get_secret_value(),
    }
    for view in ("audit", "directory"):
        assert invoke(["rebuild", view], env).exit_code == 0
    assert invoke(["verify-audit", "acme"], env).exit_code == 0
    return env


NAMING = [" ".join(c[:2]) for c in commands_naming("x", Path("case.db"))]


@pytest.mark.parametrize("index", range(len(NAMING)), ids=NAMING)
def test_a_mistyped_environment_is_a_finding_not_an_empty_success(
    index: int, real_store: dict[str, str | None], tmp_path: Path, database: DatabaseUnderTest
) -> None:
    before = files_under(tmp_path)
    args = commands_naming("acmee", tmp_path / "case.db")[index]

    result = invoke(args, real_store)

    assert_one_line(result, FINDING, "acmee")
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("AERO_SECRET_KEY", "not base64!", "AERO_SECRET_KEY is not base64 (expected"),
        ("AERO_DATABASE_URL", "mysql://root@localhost/aero", "sqlite:/// or postgresql://"),
        ("AERO_TRUSTED_PROXIES", '["10.0.0.300"]', "AERO_TRUSTED_PROXIES"),
        ("AERO_TRUSTED_PROXIES", "10.0.0.0/8", "AERO_TRUSTED_PROXIES cannot be parsed"),
        ("AERO_CODE_MAX_FAILURES", "many", "AERO_CODE_MAX_FAILURES"),
    ],
)
def test_a_configuration_error_is_one_line_and_status_3(
    variable: str, value: str, words: str, real_store: dict[str, str | None], tmp_path: Path
) -> None:
    before = files_under(tmp_path)
    for args in (
        ["verify-audit", "acme"],
        ["investigate", "verify"],
        ["environments", "create", "beta", "--display-name", "B", "--admin", "bo"],
    ):
        if variable == "AERO_SECRET_KEY" and args[0] != "environments":
            continue  # reading commands never decrypt a secret: they need no key
        result = invoke(args, {**real_store, variable: value})
        assert_one_line(result, CONFIGURATION, words)
    assert files_under(tmp_path) == before


def test_environments_create_checks_everything_before_the_password(
    real_store: dict[str, str | None],
) -> None:
    create = ["environments", "create"]
    # No input: asking for the password would fail differently.
    exists = invoke([*create, "acme", "--display-name", "A", "--admin", "al"], real_store)
    bad_slug = invoke([*create, "Acme", "--display-name", "A", "--admin", "al"], real_store)
    bad_issuer = invoke(
        [*create, "beta", "--display-name", "B", "--admin", "al", "--issuer", "a:b"], real_store
    )

    assert_one_line(exists, FINDING, "environment_exists")
    assert_one_line(bad_slug, USAGE, "slug")
    assert_one_line(bad_issuer, USAGE, "issuer")
    assert "Password" not in exists.output + bad_slug.output + bad_issuer.output


def test_environments_create_reads_the_password_from_stdin(
    real_store: dict[str, str | None],
) -> None:
    args = ["environments", "create", "beta", "--display-name", "B", "--admin", "bo"]
    result = runner.invoke(
        cli, [*args, "--password-stdin"], input=f"{ADMIN_PASSWORD}\n", env=real_store
    )
    assert result.exit_code == 0, result.output
    assert "created environment beta" in result.stdout
    assert invoke(["verify-audit", "beta"], real_store).exit_code == 0


def test_version_and_help_name_the_exit_statuses() -> None:
    version = invoke(["--version"], UNSET)
    helped = invoke(["--help"], UNSET)
    assert version.exit_code == 0 and version.stdout.startswith("aero-auth ")
    assert "3 configuration" in helped.stdout
    assert "Settings" in invoke(["serve", "--help"], UNSET).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["service-credentials", "create", "--env", "acme", "--name", "billing"],
        ["rebuild", "audit"],
        ["project"],
    ],
    ids=["service-credentials", "rebuild", "project"],
)
def test_commands_on_a_store_never_make_a_totp_key_of_their_own(
    args: list[str], real_store: dict[str, str | None], settings: Settings
) -> None:
    # The store's secrets were encrypted under the configured key; a key made now, beside
    # them, could read none of them, and the next start would take it for the store's.
    before = files_under(settings.data_dir)

    result = invoke(args, {**real_store, "AERO_SECRET_KEY": None})

    assert_one_line(result, CONFIGURATION, "no TOTP secret key at")
    assert files_under(settings.data_dir) == before
    assert not (settings.data_dir / "secret.key").exists()
