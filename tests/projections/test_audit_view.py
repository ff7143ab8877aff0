"""The audit view: filters, pages, the export, and rebuilding it."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.errors import (
    InvalidCredentialsError,
)
from domain.origin import Origin, originating
from projections.api import AuditQuery, InvalidCursorError
from projections.audit_store import OwnerCache, SqlAuditView
from projections.dialects import SQLiteDialect
from projections.export import csv_lines, jsonl_lines
from projections.live import LiveReadModels
from projections.queries import encode_cursor
from projections.store import ViewStore
from tests.projections.helpers import (
    AWKWARD,
    entries,
    make_environment,
    toggle_groups,
)
from tests.support import (
    AUDIT_EXPORT_COLUMNS,
    PASSWORD,
    caught_up,
)


def test_filters_combine_by_user_type_outcome_and_time(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    make_environment(app, "other")
    start = clock.now()
    app.create_user("acme", "Bob", PASSWORD)
    clock.advance(hours=1)
    with pytest.raises(InvalidCredentialsError):
        app.start_login("acme", "bob", "not the password")
    clock.advance(hours=1)
    app.change_roles("acme", "bob", ["auditor"])
    app.change_roles("acme", "alice", ["admin"])
    caught_up(app, read_models)

    assert [e.type for e in entries(read_models, username="BOB")] == [
        "user_created",
        "login_password_failed",
        "roles_changed",
    ]
    assert [e.username for e in entries(read_models, types=("roles_changed",))] == [
        "Bob",
        "alice",
    ]
    assert [e.type for e in entries(read_models, types=("user_created", "roles_changed"))] == [
        "user_created",
        "user_created",
        "roles_changed",
        "roles_changed",
    ]
    assert [e.type for e in entries(read_models, outcome="failure")] == ["login_password_failed"]
    hour = timedelta(hours=1)
    one_hour = entries(read_models, since=start + hour, until=start + 2 * hour)
    assert [e.type for e in one_hour] == ["login_password_failed"]
    assert len(entries(read_models, since=start, until=start)) == 0
    assert len(entries(read_models, since=start + timedelta(hours=2))) == 2
    assert [e.environment for e in read_models.export_audit(AuditQuery("other"))] == [
        "other",
        "other",
    ]
    assert entries(read_models, username="bob", types=("roles_changed",), outcome="failure") == []

    assert [e.type for e in read_models.history("acme", "bob")] == [
        "user_created",
        "login_password_failed",
        "roles_changed",
    ]


def test_pages_run_oldest_first_and_meet_the_export(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 40)
    caught_up(app, read_models)

    pages, cursor = [], None
    while True:
        page = read_models.audit(AuditQuery("acme", username="bob"), 7, cursor)
        pages.append(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [len(p) for p in pages] == [7] * 5 + [6]
    paged = [e for p in pages for e in p]
    assert paged == entries(read_models, username="bob")
    assert [e.position for e in paged] == sorted({e.position for e in paged})

    view = read_models.views.audit
    assert isinstance(view, SqlAuditView)
    from projections.audit import export

    assert list(export(view, AuditQuery("acme"), page=3)) == entries(read_models)

    for bad in ["", "garbage!", "eyJrIjoiYXVkaXQiLCJhIjoiMSJ9"]:
        with pytest.raises(InvalidCursorError):
            read_models.audit(AuditQuery("acme"), 7, bad)
    for huge in [2**63, 10**40, -1]:
        forged = encode_cursor("audit", huge)
        with pytest.raises(InvalidCursorError):
            read_models.audit(AuditQuery("acme"), 7, forged)
    with pytest.raises(ValueError, match="limit"):
        read_models.audit(AuditQuery("acme"), 0, None)


def test_exports_as_csv_and_json_lines(app: AeroAuth, read_models: LiveReadModels) -> None:
    with originating(Origin(actor="=cmd|' /C calc'!A0", ip="203.0.113.7", user_agent='a "b", c')):
        make_environment(app)
    caught_up(app, read_models)
    found = entries(read_models)

    lines = list(jsonl_lines(iter(found)))
    assert [json.loads(line)["type"] for line in lines] == [e.type for e in found]
    first = json.loads(lines[0])
    assert first == {
        "position": found[0].position,
        "occurred_at": "2026-11-28T10:00:10Z",
        "type": "environment_created",
        "username": None,
        "actor": "=cmd|' /C calc'!A0",
        "outcome": "success",
        "ip": "203.0.113.7",
        "user_agent": 'a "b", c',
        "details": {"display_name": "Acme", "issuer": "BizzStream Aero"},
    }

    rows = list(csv.reader(io.StringIO("".join(csv_lines(iter(found))))))
    assert rows[0] == AUDIT_EXPORT_COLUMNS
    assert len(rows) == len(found) + 1
    # A cell a spreadsheet would run as a formula is defused (OWASP CSV injection).
    assert rows[1][4] == "'=cmd|' /C calc'!A0"
    assert rows[1][7] == 'a "b", c'
    assert json.loads(rows[1][8]) == found[0].details


# ----- rebuilding -----


def slot_rows(view: ViewStore) -> dict[str, list[dict[str, Any]]]:
    with view.snapshot() as snapshot:
        return {suffix: list(snapshot.rows(suffix)) for suffix in view.tables}


def slot_indexes(view: ViewStore, slot: str) -> set[str]:
    """The slot's index names, without the slot's letter."""
    if isinstance(view.dialect, SQLiteDialect):
        statement = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
        rows = view.query(statement, (view.table(slot),))
        names = {row["name"] for row in rows if not row["name"].startswith("sqlite_autoindex")}
    else:
        rows = view.query(
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = ? AND indexname <> ?",
            (view.table(slot), f"{view.table(slot)}_pkey"),
        )
        names = {row["name"] for row in rows}
    return {name.replace(view.table(slot), view.base + "_*", 1) for name in names}


def test_a_rebuild_fills_the_spare_slot_before_it_indexes_it(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 5)
    caught_up(app, read_models)
    view = read_models.views.audit
    live = slot_rows(view)
    indexes = slot_indexes(view, "a")
    assert len(indexes) == 5

    spare = view.prepare_rebuild()
    assert spare == "b"
    assert slot_indexes(view, spare) == set()
    view.index_slot(spare)
    assert slot_indexes(view, spare) == indexes
    with pytest.raises(ValueError, match="live"):
        view.index_slot("a")
    view.drop_slot(spare)

    read_models.rebuild("audit")
    assert slot_indexes(view, "b") == indexes
    assert slot_rows(view) == live


def test_awkward_text_is_stored_and_chained_alike_live_and_rebuilt(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    origin = Origin(actor=AWKWARD, ip="2001:db8::1", user_agent=AWKWARD[::-1])
    with originating(origin):
        make_environment(app)
        app.create_user("acme", "Zoë", PASSWORD, groups=["équipe", 'a"b'])
        app.reset_two_factor("acme", "zoë", AWKWARD)
    caught_up(app, read_models)
    view = read_models.views.audit
    found = entries(read_models)
    assert {(e.actor, e.ip, e.user_agent) for e in found} == {
        (origin.actor, origin.ip, origin.user_agent)
    }
    assert found[-1].details == {"reason": AWKWARD}
    assert found[-2].details == {"groups": ['a"b', "équipe"], "roles": []}
    assert read_models.verify_audit_chain("acme").intact
    live = slot_rows(view)

    read_models.rebuild("audit")
    assert slot_rows(view) == live
    assert read_models.verify_audit_chain("acme").intact


def test_a_rebuild_with_more_users_than_the_owner_cache_holds_is_the_same(
    app: AeroAuth, read_models: LiveReadModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_environment(app)
    for name in ("bob", "carol", "dave"):
        app.create_user("acme", name, PASSWORD)
        app.change_roles("acme", name, ["auditor"])
    caught_up(app, read_models)
    view = read_models.views.audit
    live = slot_rows(view)

    monkeypatch.setattr(OwnerCache, "limit", 2)
    read_models.rebuild("audit", batch_size=3)
    assert slot_rows(view) == live
    assert read_models.verify_audit_chain("acme").intact
