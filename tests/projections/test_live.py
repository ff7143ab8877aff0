"""The live read models: waiting, readiness, stopping on a bad event, rebuilding
while serving.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any
from uuid import uuid4

from eventsourcing.persistence import StoredEvent

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.cli.views import check_audit_chain, run_rebuild
from interfaces.composition import build_views
from interfaces.settings import Settings
from projections.api import AuditQuery
from projections.live import LiveReadModels
from projections.sql import sql
from projections.store import ViewStore
from tests.projections.helpers import eventually, make_environment, toggle_groups
from tests.support import PASSWORD, caught_up, live_read_models


def rows(view: ViewStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the live slot, table by table, in key order."""
    [slot] = view.query(sql("SELECT active FROM {t}", t=view.pointer_table))
    found = {}
    for suffix in view.tables:
        table = view.table(slot["active"], suffix)
        found[suffix] = sorted(
            tuple(r) if isinstance(r, sqlite3.Row) else tuple(r.values())
            for r in view.query(sql("SELECT * FROM {t}", t=table))
        )
    return found


def active_slot(view: ViewStore) -> str:
    return str(view.query(sql("SELECT active FROM {t}", t=view.pointer_table))[0]["active"])


def some_history(app: AeroAuth, clock: FixedClock) -> None:
    make_environment(app)
    make_environment(app, "other")
    app.create_user("acme", "bob", PASSWORD, groups=["finance"])
    app.set_policy("acme", True, ["finance"])
    toggle_groups(app, clock, "acme", "bob", 25)
    app.change_roles("acme", "bob", ["auditor"])


def test_wait_for_is_bounded_and_readiness_follows_the_views(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    make_environment(app)
    position = caught_up(app, read_models)
    assert read_models.is_ready()
    assert read_models.problems() == []
    assert read_models.positions() == {"audit": position, "directory": position}

    started = time.monotonic()
    assert not read_models.wait_for(position + 1000, timeout=0.3)
    assert time.monotonic() - started >= 0.3  # it waited, then gave up: it returned at all


def test_an_event_a_view_cannot_process_stops_it_at_that_position(
    app: AeroAuth, read_models: LiveReadModels, settings: Settings
) -> None:
    make_environment(app)
    before = caught_up(app, read_models)
    ids = app.recorder.insert_events([StoredEvent(uuid4(), 1, "aero:Unheard.Of", b"{}")])
    assert ids is not None
    [bad] = ids
    app.change_roles("acme", "alice", ["admin"])

    assert not read_models.wait_for(app.recorder.max_notification_id() or 0, timeout=10)
    eventually(lambda: len(read_models.problems()) == 2)
    assert read_models.positions() == {"audit": before, "directory": before}
    problems = read_models.problems()
    assert all(f"position {bad} (aero:Unheard.Of)" in p for p in problems), problems
    assert not read_models.is_ready()

    # A restart meets the same event again: it is never skipped.
    again = live_read_models(app, settings, poll_interval=0.05)
    again.start()
    try:
        assert not again.wait_for(bad, timeout=10)
        eventually(lambda: len(again.problems()) == 2)
        assert all(f"position {bad}" in p for p in again.problems())
    finally:
        again.close()


def test_a_rebuilt_view_equals_the_live_view_row_for_row(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock, settings: Settings
) -> None:
    some_history(app, clock)
    position = caught_up(app, read_models)
    views = read_models.views.all()
    live = {name: rows(view) for name, view in views.items()}
    assert len(live["audit"][""]) == position > 30

    progress: list[tuple[int, int]] = []
    for name, view in views.items():
        assert active_slot(view) == "a"
        rebuilt = read_models.rebuild(name, lambda done, last: progress.append((done, last)))
        assert rebuilt == position
        assert active_slot(view) == "b"
        assert rows(view) == live[name]
    assert progress[-1] == (position, position)
    assert read_models.verify_audit_chain("acme").intact

    # The old slot is gone; the next rebuild, from another process's views, goes back to it.
    audit = read_models.views.audit
    assert not audit.exists("audit_v2_a")
    assert audit.exists("audit_v2_b")
    assert run_rebuild(app, build_views(settings), "audit") == position
    assert active_slot(audit) == "a"
    assert rows(audit) == live["audit"]
    checked = check_audit_chain(build_views(settings), "acme")
    assert checked == read_models.verify_audit_chain("acme")
    assert checked.intact


def test_the_live_view_serves_and_keeps_up_while_a_rebuild_runs(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    some_history(app, clock)
    caught_up(app, read_models)
    served: list[int] = []

    def meanwhile(done: int, last: int) -> None:
        served.append(len(read_models.history("acme", "bob")))
        if len(served) == 2:
            app.change_groups("acme", "bob", ["board"])
            app.create_user("acme", "carol", PASSWORD, groups=["finance"])

    read_models.rebuild("audit", meanwhile, batch_size=10)
    read_models.rebuild("directory", meanwhile, batch_size=10)
    position = caught_up(app, read_models)
    assert len(served) > 4 and min(served) > 25

    audit = [e.position for e in read_models.export_audit(AuditQuery("acme"))]
    audit += [e.position for e in read_models.export_audit(AuditQuery("other"))]
    assert sorted(audit) == [n.id for n in app.recorder.select_notifications(0, 10_000)]
    assert max(audit) == position
    assert [u.username for u in read_models.list_users("acme", "required", 10, None).items] == [
        "carol"
    ]
    assert read_models.verify_audit_chain("acme").intact
