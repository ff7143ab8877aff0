"""``aero-auth investigate verify``: the live views against a rebuild, row for row.

Each test records the scripted history into a store of its own, runs the
live views over it in-process (as the server does), and changes stored rows
with raw SQL, past the service, as an intruder with database access could.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
import pytest
from typer.testing import CliRunner, Result

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.cli.investigate import investigate_app
from interfaces.settings import Settings
from projections.audit_chain import GENESIS, canonical
from projections.live import LiveReadModels
from projections.verify import verify_views
from tests.conftest import PG_HOST, PG_PORT, PG_USER, DatabaseUnderTest
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
        "SELECT position FROM audit_v2 WHERE environment = ? AND type = ? AND username = ?",
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
        "UPDATE user_directory_v2_a SET registered = ? "
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
            "table": "user_directory_v2",
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
    raw_sql(database, live, "UPDATE audit_v2_a SET actor = 'mallory' WHERE position = ?", position)

    code, report = verify_json(settings)
    assert code == 1
    assert report["differences"] == [
        {
            "view": "audit",
            "table": "audit_v2",
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
    raw_sql(database, live, "DELETE FROM user_directory_v2_a WHERE username_key = 'dave'")
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


# ----- the keyed chain: an intruder without the audit key -----


def edit_stored_event(database: DatabaseUnderTest, needle: bytes, change: bytes) -> int:
    """Edit, in place and past the service, the last stored event holding ``needle``:
    its bytes ``needle`` become ``change``. Its notification id."""
    if database.kind == "sqlite":
        assert database.sqlite_path is not None
        with sqlite3.connect(database.sqlite_path) as conn:
            rows = conn.execute("SELECT rowid, state FROM stored_events ORDER BY rowid").fetchall()
            position, state = [row for row in rows if needle in row[1]][-1]
            conn.execute(
                "UPDATE stored_events SET state = ? WHERE rowid = ?",
                (state.replace(needle, change), position),
            )
        return int(position)
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database.pg_dbname
    ) as conn:
        [table] = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE '%events'"
            ).fetchall()
        ]
        name = psycopg.sql.Identifier(table)
        select = psycopg.sql.SQL("SELECT notification_id, state FROM {} ORDER BY 1")
        rows = conn.execute(select.format(name)).fetchall()
        position, state = [row for row in rows if needle in bytes(row[1])][-1]
        conn.execute(
            psycopg.sql.SQL("UPDATE {} SET state = %s WHERE notification_id = %s").format(name),
            (bytes(state).replace(needle, change), position),
        )
    return int(position)


def test_verify_notices_an_event_edited_in_place_that_no_audit_column_shows(
    app: AeroAuth, live: LiveReadModels, settings: Settings, database: DatabaseUnderTest
) -> None:
    # A password hash swapped in a stored event: the audit entry shows no hash,
    # but it records the event's digest, which the rebuild no longer reproduces.
    position = edit_stored_event(database, b"$argon2id$v=19$m=19456", b"$argon2id$v=19$m=19457")

    code, report = verify_json(settings)
    assert code == 1
    columns = {(d["key"].get("position"), d["column"]) for d in report["differences"]}
    assert (position, "event") in columns


def test_an_edited_row_rechained_without_the_audit_key_breaks_the_chain(
    live: LiveReadModels, settings: Settings, database: DatabaseUnderTest
) -> None:
    # The intruder edits a row and recomputes every later hash as an unkeyed
    # chain would be computed (SHA-256, no key): the keyed check still fails there.
    audit = live.views.audit
    position = audit_position(live, "two_factor_reset", "bob")
    rows = audit.chained(ENV, 0, 2**62, 10_000)
    previous = GENESIS
    for entry, event, stored in rows:
        if entry.position == position:
            entry = dataclasses.replace(entry, actor="mallory")
            raw_sql(
                database,
                live,
                "UPDATE audit_v2_a SET actor = 'mallory' WHERE position = ?",
                position,
            )
        if entry.position >= position:
            forged = hashlib.sha256(bytes.fromhex(previous) + canonical(entry, event)).hexdigest()
            raw_sql(
                database,
                live,
                "UPDATE audit_v2_a SET hash = ? WHERE position = ?",
                forged,
                entry.position,
            )
            stored = forged
        previous = stored
    raw_sql(
        database,
        live,
        "UPDATE audit_v2_a_chain SET hash = ? WHERE environment = ?",
        previous,
        ENV,
    )

    code, report = verify_json(settings)
    assert code == 1
    broken = {c["environment"]: c["first_broken_position"] for c in report["chains"]}
    assert broken[ENV] == position
