"""``aero-auth investigate verify``: the live views against a rebuild, row for row.

Each test records the scripted history into a store of its own, runs the
live views over it in-process (as the server does), and changes stored rows
with raw SQL, past the service, as an intruder with database access could.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.cli.investigate import investigate_app
from interfaces.settings import Settings
from projections.live import LiveReadModels
from projections.verify import verify_views
from tests.conftest import DatabaseUnderTest
from tests.investigate.script import ENV, OTHER_ENV, record_history
from tests.support import cli_env, live_read_models, raw_sql

runner = CliRunner()


@pytest.fixture
def live(app: AeroAuth, clock: FixedClock, settings: Settings) -> Iterator[LiveReadModels]:
    """The scripted history with its live views, kept up to date in this process."""
    record_history(app, clock)
    models = live_read_models(app, settings, poll_interval=0.05)
    models.start()
    try:
        position = app.recorder.max_notification_id() or 0
        assert models.wait_for(position, timeout=10), models.problems()
        yield models
    finally:
        models.close()


def run(settings: Settings, *args: str) -> Result:
    return runner.invoke(investigate_app, list(args), env=cli_env(settings), catch_exceptions=False)


def verify_json(settings: Settings) -> tuple[int, dict[str, Any]]:
    result = run(settings, "verify", "--json")
    return result.exit_code, json.loads(result.stdout)


def audit_position(live: LiveReadModels, kind: str, username: str) -> int:
    [row] = live.views.audit.query(
        "SELECT position FROM audit_v1 WHERE environment = ? AND type = ? AND username = ?",
        (ENV, kind, username),
    )
    return int(row["position"])


def state_of(app: AeroAuth, live: LiveReadModels) -> dict[str, Any]:
    """Everything a command could have changed: the last event, and each view's rows."""
    state: dict[str, Any] = {"last": app.recorder.max_notification_id()}
    for name, view in live.views.all().items():
        with view.snapshot() as snapshot:
            state[name] = (
                snapshot.active,
                snapshot.position,
                {suffix: list(snapshot.rows(suffix)) for suffix in view.tables},
            )
    return state


# ----- a clean store -----


def test_verify_is_clean_on_an_untouched_store(
    app: AeroAuth, live: LiveReadModels, settings: Settings
) -> None:
    code, report = verify_json(settings)
    assert code == 0, report
    last = app.recorder.max_notification_id()
    assert report["clean"] is True
    assert report["positions"] == {"audit": last, "directory": last}
    assert (report["difference_count"], report["differences"]) == (0, [])
    assert [(c["environment"], c["intact"]) for c in report["chains"]] == [
        (ENV, True),
        (OTHER_ENV, True),
    ]
    assert sum(c["entries_checked"] for c in report["chains"]) == last


def test_verify_prints_tables_by_default(live: LiveReadModels, settings: Settings) -> None:
    result = run(settings, "verify")
    assert result.exit_code == 0, result.output
    assert "views equal to their rebuilds" in result.stdout
    assert "intact" in result.stdout


def test_verify_compares_at_the_live_position_while_the_views_move_on(
    app: AeroAuth, live: LiveReadModels, tmp_path: Path
) -> None:
    shifts = ["night", "day"]

    def busy_service(done: int, total: int) -> None:
        # The service changes dave's groups while the rebuild runs, and the live
        # views take it in: the second time after the rebuild's last look at them.
        if shifts:
            app.change_groups(ENV, "dave", [shifts.pop()])
            assert live.wait_for(app.recorder.max_notification_id() or 0, timeout=10)

    report = verify_views(app, live.views, tmp_path, progress=busy_service)
    assert report.clean, report.differences
    assert not shifts
    last = app.recorder.max_notification_id()
    assert report.positions == {"audit": last, "directory": last}


# ----- tampering -----


def test_verify_reports_a_tampered_directory_row(
    live: LiveReadModels, settings: Settings, database: DatabaseUnderTest
) -> None:
    raw_sql(
        database,
        live,
        "UPDATE user_directory_v1_a SET registered = ? "
        "WHERE environment = ? AND username_key = 'carol'",
        True,
        ENV,
    )
    code, report = verify_json(settings)
    assert code == 1
    assert report["clean"] is False
    assert report["differences"] == [
        {
            "view": "directory",
            "table": "user_directory_v1",
            "key": {"environment": ENV, "username_key": "carol"},
            "column": "registered",
            "live": True,
            "rebuilt": False,
        }
    ]
    assert all(c["intact"] for c in report["chains"])


def test_verify_reports_a_tampered_audit_row_and_the_broken_chain(
    live: LiveReadModels, settings: Settings, database: DatabaseUnderTest
) -> None:
    position = audit_position(live, "two_factor_reset", "bob")
    raw_sql(database, live, "UPDATE audit_v1_a SET actor = 'mallory' WHERE position = ?", position)

    code, report = verify_json(settings)
    assert code == 1
    assert report["differences"] == [
        {
            "view": "audit",
            "table": "audit_v1",
            "key": {"position": position},
            "column": "actor",
            "live": "mallory",
            "rebuilt": "alice",
        }
    ]
    broken = {c["environment"]: c["first_broken_position"] for c in report["chains"]}
    assert broken == {ENV: position, OTHER_ENV: None}

    result = run(settings, "verify")
    assert result.exit_code == 1
    assert "mallory" in result.stdout
    assert f"broken at position {position}" in result.stdout


def test_verify_reports_a_deleted_row(
    live: LiveReadModels, settings: Settings, database: DatabaseUnderTest
) -> None:
    raw_sql(database, live, "DELETE FROM user_directory_v1_a WHERE username_key = 'dave'")
    code, report = verify_json(settings)
    assert code == 1
    [difference] = report["differences"]
    assert (difference["key"], difference["column"], difference["live"]) == (
        {"environment": ENV, "username_key": "dave"},
        None,
        None,
    )
    assert difference["rebuilt"]["username"] == "dave"


# ----- read only -----


def test_neither_verify_nor_replay_changes_the_production_store(
    app: AeroAuth, live: LiveReadModels, settings: Settings, tmp_path: Path
) -> None:
    before = state_of(app, live)
    assert run(settings, "verify").exit_code == 0
    into = f"sqlite:///{tmp_path / 'case.db'}"
    assert run(settings, "replay", "--until", "2026-03-03T10:00:00Z", "--into", into).exit_code == 0
    assert state_of(app, live) == before


def test_verify_refuses_a_store_whose_views_were_never_built(
    app: AeroAuth, clock: FixedClock, settings: Settings, database: DatabaseUnderTest
) -> None:
    record_history(app, clock)
    result = run(settings, "verify")
    assert result.exit_code == 1
    assert "has not been built" in result.stderr
    if database.kind == "sqlite":
        assert database.sqlite_path is not None
        assert not list(database.sqlite_path.parent.glob("aero.*.db"))
