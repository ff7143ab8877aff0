"""The operators' commands: ``aero-auth project``, ``rebuild`` and ``verify-audit``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner, Result

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.cli.main import app as cli
from interfaces.settings import Settings
from projections.api import AuditQuery
from projections.live import LiveReadModels
from tests.conftest import DatabaseUnderTest
from tests.projections.helpers import make_environment, toggle_groups
from tests.support import PASSWORD, caught_up, cli_env, live_read_models, raw_sql

runner = CliRunner()


def run(settings: Settings, *args: str) -> Result:
    return runner.invoke(cli, list(args), env=cli_env(settings), catch_exceptions=False)


@pytest.fixture
def history(app: AeroAuth, clock: FixedClock) -> AeroAuth:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD, ["finance"])
    toggle_groups(app, clock, "acme", "bob", 30)
    return app


@pytest.fixture
def live(history: AeroAuth, settings: Settings) -> Iterator[LiveReadModels]:
    models = live_read_models(history, settings, poll_interval=0.05)
    models.start()
    try:
        caught_up(history, models)
        yield models
    finally:
        models.close()


def audit_rows(live: LiveReadModels) -> list[tuple[int, str]]:
    return [(e.position, e.type) for e in live.export_audit(AuditQuery("acme"))]


def test_rebuild_replaces_a_view_with_one_built_from_position_zero(
    live: LiveReadModels, settings: Settings
) -> None:
    before = audit_rows(live)

    result = run(settings, "rebuild", "audit")

    assert result.exit_code == 0, result.output
    position = max(p for p, _ in before)
    assert f"rebuilt the audit view up to position {position}" in result.stdout
    assert audit_rows(live) == before


def test_rebuild_refuses_a_view_that_does_not_exist(settings: Settings) -> None:
    result = runner.invoke(cli, ["rebuild", "sessions"], env=cli_env(settings))

    assert result.exit_code == 2


def test_verify_audit_says_an_untouched_chain_is_intact(
    live: LiveReadModels, settings: Settings
) -> None:
    result = run(settings, "verify-audit", "acme")

    assert result.exit_code == 0, result.output
    assert "hash chain intact" in result.stdout


def test_verify_audit_names_the_first_tampered_entry(
    live: LiveReadModels, settings: Settings, database: DatabaseUnderTest
) -> None:
    position = audit_rows(live)[3][0]
    # The live table set is "a" until a rebuild switches to "b".
    raw_sql(
        database, live, "UPDATE audit_v2_a SET ip = '198.51.100.9' WHERE position = ?", position
    )

    result = run(settings, "verify-audit", "acme")

    assert result.exit_code == 1
    assert f"hash chain broken at position {position}" in result.stderr


def test_the_project_worker_keeps_the_views_up_to_date_until_sigterm(
    history: AeroAuth, clock: FixedClock, settings: Settings
) -> None:
    env = {**os.environ, **cli_env(settings)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "interfaces.cli.main", "project"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        toggle_groups(history, clock, "acme", "bob", 5)
        target = history.recorder.max_notification_id() or 0
        reader = live_read_models(history, settings, process=False)
        reader.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not reader.wait_for(target, timeout=0.5):
                assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert reader.wait_for(target, timeout=0.1), reader.problems()
            entries = list(reader.export_audit(AuditQuery("acme")))
        finally:
            reader.close()
        assert entries[-1].position == target
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)

    assert worker.returncode == 0, stderr.decode()
