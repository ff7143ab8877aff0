"""The aero-auth command line: creating an environment with a prompted password."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from interfaces.cli.main import app
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest
from tests.http.conftest import ADMIN_PASSWORD, Api


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    return sqlite_database


def _env(settings: Settings) -> dict[str, str]:
    return {
        "AERO_DATABASE_URL": settings.database_url,
        "AERO_DATA_DIR": str(settings.data_dir),
        "AERO_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "AERO_OPERATOR_TOKEN": "",
    }


def _create(settings: Settings, password_input: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["environments", "create", "acme", "--display-name", "Acme", "--admin", "alice"],
        input=password_input,
        env=_env(settings),
    )
    return result.exit_code, result.output


def test_the_operator_creates_an_environment_from_the_command_line(
    settings: Settings, api: Api
) -> None:
    code, output = _create(settings, f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n")

    assert code == 0, output
    assert "created environment acme" in output
    assert ADMIN_PASSWORD not in output
    assert api.login("alice", ADMIN_PASSWORD).json()["status"] == "authenticated"
    again, output = _create(settings, f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n")
    assert again == 1 and "environment_exists" in output


def test_the_command_line_refuses_weak_or_mistyped_passwords(settings: Settings) -> None:
    weak, output = _create(settings, "password\npassword\n")
    mistyped, _ = _create(settings, f"{ADMIN_PASSWORD}\nsomething else\n")

    assert weak == 1 and "weak_password" in output
    assert mistyped != 0
