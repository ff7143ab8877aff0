"""``aero-auth investigate replay``: the read models as at an instant, in a new SQLite file.

The copy is read back with nothing but the standard library, as an
investigator would, and checked against History (an independent rebuild from
the same events) and against the events' own timestamps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from application.clock import FixedClock
from application.history import History
from application.service import AeroAuth
from domain.rules import user_id
from interfaces.cli.investigate import investigate_app
from projections.audit_chain import GENESIS
from projections.replay import instant, replay_until
from tests.conftest import PG_HOST, PG_PORT, PG_USER, DatabaseUnderTest
from tests.investigate.script import ENV, OTHER_ENV, Scripted, at

runner = CliRunner()


def replay(scripted: Scripted, until: str, into: Path | str, *extra: str) -> Result:
    target = into if isinstance(into, str) else f"sqlite:///{into}"
    return runner.invoke(
        investigate_app,
        ["replay", "--until", until, "--into", target, *extra],
        env=scripted.cli_env(),
        catch_exceptions=False,
    )


def copy_at(scripted: Scripted, until: str, tmp_path: Path) -> Path:
    path = tmp_path / f"case-{until.replace(':', '')}.db"
    result = replay(scripted, until, path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["file"] == str(path)
    return path


def table(path: Path, statement: str, *params: Any) -> list[dict[str, Any]]:
    """Rows read with the standard library's sqlite3 only, as an investigator would."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(statement, params)]
    finally:
        conn.close()


def event_times(app: AeroAuth) -> dict[int, datetime]:
    """Every event's position and its own timestamp, straight from the store."""
    notifications = app.recorder.select_notifications(start=None, limit=10_000)
    return {n.id: app.mapper.to_domain_event(n).timestamp for n in notifications}


def recompute_chain(rows: list[dict[str, Any]], key: bytes) -> str:
    """The offline check the command's help describes: hmac, hashlib and json only."""
    previous = GENESIS
    for row in rows:
        content = {
            name: row[name]
            for name in (
                "position",
                "environment",
                "occurred_at",
                "type",
                "username",
                "actor",
                "outcome",
                "ip",
                "user_agent",
            )
        }
        content["details"] = json.loads(row["details"])
        content["event"] = row["event"]
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        message = bytes.fromhex(previous) + text.encode()
        previous = hmac.new(key, message, hashlib.sha256).hexdigest()
        assert row["hash"] == previous, f"chain broken at position {row['position']}"
    return previous


# ----- what the copy holds -----


def test_a_replay_between_events_holds_the_read_models_of_that_instant(
    scripted: Scripted, tmp_path: Path
) -> None:
    # 09:55: after carol joined finance (09:50), before bob's reset (10:10).
    path = copy_at(scripted, "2026-03-03T09:55:00Z", tmp_path)

    users = table(
        path,
        "SELECT environment, username, groups, roles, required, rule, registered, locked_until "
        "FROM users ORDER BY environment, username",
    )
    assert users == [
        {"environment": ENV, "username": "alice", "groups": "[]",
         "roles": '["admin", "auditor"]', "required": 0, "rule": None, "registered": 0,
         "locked_until": None},
        {"environment": ENV, "username": "bob", "groups": '["finance"]', "roles": "[]",
         "required": 1, "rule": "group:finance", "registered": 1, "locked_until": None},
        {"environment": ENV, "username": "carol", "groups": '["finance", "sales"]',
         "roles": "[]", "required": 1, "rule": "group:finance", "registered": 0,
         "locked_until": None},
        {"environment": OTHER_ENV, "username": "bob", "groups": "[]",
         "roles": '["admin", "auditor"]', "required": 0, "rule": None, "registered": 0,
         "locked_until": None},
    ]  # fmt: skip
    assert table(path, "SELECT user_id FROM users WHERE username = 'carol'") == [
        {"user_id": str(user_id(ENV, "carol"))}
    ]
    assert table(path, "SELECT * FROM policies ORDER BY environment") == [
        {"environment": ENV, "require_2fa": 1, "groups": '["finance"]'},
        {"environment": OTHER_ENV, "require_2fa": 0, "groups": "[]"},
    ]

    # Exactly the events whose own timestamp is at or before the instant.
    times = event_times(scripted.app)
    expected = sorted(p for p, t in times.items() if t <= at("09:55:00"))
    entries = table(path, "SELECT * FROM audit_log ORDER BY position")
    assert [e["position"] for e in entries] == expected
    assert max(e["occurred_at"] for e in entries) == "2026-03-03T09:50:00.000000Z"
    bob = [e["type"] for e in entries if e["environment"] == ENV and e["username"] == "bob"]
    assert bob[0] == "user_created"
    assert "two_factor_registered" in bob
    assert "two_factor_reset" not in bob
    assert bob[-1] == "login_password_failed"

    [info] = table(path, "SELECT * FROM replay")
    assert info["until"] == "2026-03-03T09:55:00.000000Z"
    assert info["last_position"] == max(times)
    assert (info["events"], info["later_events"]) == (len(expected), len(times) - len(expected))
    if scripted.database.kind == "postgres":
        assert info["source"].startswith("postgresql://postgres@127.0.0.1:")
    else:
        assert info["source"] == f"sqlite:///{scripted.database.sqlite_path}"


def test_the_copy_holds_intact_hash_chains_an_investigator_can_check_offline(
    scripted: Scripted, tmp_path: Path
) -> None:
    path = copy_at(scripted, "2026-03-03T10:15:00Z", tmp_path)
    chains = table(path, "SELECT * FROM audit_chain ORDER BY environment")
    key = base64.b64decode((scripted.settings.data_dir / "audit.key").read_text())
    assert [c["environment"] for c in chains] == [ENV, OTHER_ENV]
    for chain in chains:
        rows = table(
            path,
            "SELECT * FROM audit_log WHERE environment = ? ORDER BY position",
            chain["environment"],
        )
        assert recompute_chain(rows, key) == chain["last_hash"]
        assert (chain["entries"], chain["last_position"]) == (len(rows), rows[-1]["position"])


def test_an_earlier_replay_is_a_prefix_of_a_later_one(scripted: Scripted, tmp_path: Path) -> None:
    early = table(copy_at(scripted, "2026-03-03T09:40:00Z", tmp_path), "SELECT * FROM audit_log")
    late = table(copy_at(scripted, "2026-03-03T11:00:00Z", tmp_path), "SELECT * FROM audit_log")
    assert len(late) == len(event_times(scripted.app)) > len(early)
    assert late[: len(early)] == early  # hashes included: the chains agree entry for entry


def test_an_instant_equal_to_an_event_includes_it(scripted: Scripted, tmp_path: Path) -> None:
    path = copy_at(scripted, "2026-03-03T10:10:00Z", tmp_path)
    assert table(path, "SELECT registered FROM users WHERE environment = ? AND username = 'bob'",
                 ENV) == [{"registered": 0}]  # fmt: skip
    [last] = table(path, "SELECT * FROM audit_log ORDER BY position DESC LIMIT 1")
    assert (last["type"], last["actor"], last["occurred_at"]) == (
        "two_factor_reset",
        "alice",
        "2026-03-03T10:10:00.000000Z",
    )
    assert json.loads(last["details"]) == {"reason": "lost phone, ticket 4711"}


@pytest.mark.parametrize("hhmmss", ["09:10:00", "09:25:00", "10:15:00", "10:45:00"])
def test_the_copy_agrees_with_history_on_who_was_required(
    scripted: Scripted, tmp_path: Path, hhmmss: str
) -> None:
    path = copy_at(scripted, f"2026-03-03T{hhmmss}Z", tmp_path)
    history = History(scripted.app)
    for environment in (ENV, OTHER_ENV):
        expected = [
            {"username": a.username, "required": int(a.required), "rule": a.rule,
             "registered": int(a.registered)}
            for a in history.who_was_required(environment, at(hhmmss))
        ]  # fmt: skip
        found = table(
            path,
            "SELECT username, required, rule, registered FROM users WHERE environment = ? "
            "ORDER BY username",
            environment,
        )
        assert found == expected


def test_a_replay_before_the_first_event_is_an_empty_copy(
    scripted: Scripted, tmp_path: Path
) -> None:
    path = copy_at(scripted, "2026-03-03T08:00:00Z", tmp_path)
    assert table(path, "SELECT COUNT(*) AS n FROM users") == [{"n": 0}]
    assert table(path, "SELECT COUNT(*) AS n FROM audit_log") == [{"n": 0}]
    assert table(path, "SELECT events FROM replay") == [{"events": 0}]


# ----- refusals: one line on stderr, exit status 2, nothing written -----


def assert_refused(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_replay_refuses_an_existing_file(scripted: Scripted, tmp_path: Path) -> None:
    path = tmp_path / "case-4711.db"
    path.write_bytes(b"the investigator's earlier notes")
    assert_refused(replay(scripted, "2026-03-03T09:55:00Z", path), "already exists")
    assert path.read_bytes() == b"the investigator's earlier notes"
    assert [p.name for p in tmp_path.iterdir()] == ["case-4711.db"]


def test_replay_refuses_the_event_store_itself_as_its_target(scripted: Scripted) -> None:
    refusal = "already exists" if scripted.database.kind == "sqlite" else "a new SQLite file"
    result = replay(scripted, "2026-03-03T09:55:00Z", scripted.settings.database_url)
    assert_refused(result, refusal)


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("yesterday", "RFC 3339"),
        ("2026-03-03T09:55:00", "RFC 3339"),
        ("2999-01-01T00:00:00Z", "is in the future"),
    ],
)
def test_replay_refuses_a_malformed_or_future_instant(
    scripted: Scripted, tmp_path: Path, until: str, message: str
) -> None:
    assert_refused(replay(scripted, until, tmp_path / "case.db"), message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("into", "message"),
    [
        ("postgresql://postgres@127.0.0.1/aero", "must name a new SQLite file"),
        ("sqlite:///no/such/directory/case.db", "no directory"),
    ],
)
def test_replay_refuses_a_target_that_is_not_a_new_sqlite_file(
    scripted: Scripted, into: str, message: str
) -> None:
    assert_refused(replay(scripted, "2026-03-03T09:55:00Z", into), message)


def live_views_exist(database: DatabaseUnderTest) -> bool:
    if database.kind == "sqlite":
        assert database.sqlite_path is not None
        return any(database.sqlite_path.parent.glob("aero.*.db"))
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database.pg_dbname
    ) as conn:
        row = conn.execute("SELECT to_regclass('audit_v2_slot') IS NOT NULL").fetchone()
        return bool(row and row[0])


def test_replay_writes_nothing_to_the_store(scripted: Scripted, tmp_path: Path) -> None:
    """The scripted store never had views: a replay must not have made any."""
    before = scripted.app.recorder.max_notification_id()
    copy_at(scripted, "2026-03-03T10:15:00Z", tmp_path)
    assert scripted.app.recorder.max_notification_id() == before
    assert not live_views_exist(scripted.database)
    # Its scratch directory is gone: only the copy is left.
    assert [p.name for p in tmp_path.iterdir()] == ["case-2026-03-03T101500Z.db"]


# ----- timestamps out of commit order -----


def test_each_event_is_judged_by_its_own_timestamp_not_by_commit_order(
    app: AeroAuth, clock: FixedClock, tmp_path: Path
) -> None:
    clock.set(at("09:00:00"))
    app.create_environment("acme", "Acme", "BizzStream Aero", "alice", "correct horse battery")
    # A second server whose clock is a minute behind records after the first.
    clock.set(at("10:00:00"))
    app.create_user("acme", "bob", "my long secret phrase", groups=["finance"])
    clock.set(at("09:59:00"))
    app.create_user("acme", "carol", "she keeps the books")
    # Within one aggregate time never goes back: this is stamped 10:00, as bob's first.
    app.change_groups("acme", "bob", ["sales"])

    until = at("09:59:30")
    summary = replay_until(app, until, tmp_path / "case.db", "test", b"a" * 32)
    path = tmp_path / "case.db"
    # carol was committed after a later event, yet counts; bob did not exist yet.
    assert [u["username"] for u in table(path, "SELECT username FROM users ORDER BY 1")] == [
        "alice",
        "carol",
    ]
    assert summary.later_events == 2
    entries = table(path, "SELECT occurred_at, type, username FROM audit_log ORDER BY position")
    assert all(e["occurred_at"] <= instant(until) for e in entries)
    assert [(e["type"], e["username"]) for e in entries][-1] == ("user_created", "carol")
    assert (summary.events, summary.until) == (len(entries), until)
