"""The live read models: waiting, stopping on a bad event, rebuilding, leases, surviving SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from application.clock import FixedClock
from application.service import AeroAuth
from domain.base import AeroAggregate
from domain.credential import UserCredential
from domain.environment import Environment
from domain.identity import FederatedLogin, IdentityLink, RejectedCallback
from domain.service_credential import ServiceCredential
from domain.unknown_user import UnknownUserLogin
from interfaces.cli.views import check_audit_chain, run_rebuild
from interfaces.composition import build_views
from interfaces.settings import Settings
from projections import live as live_module
from projections import runner
from projections.api import AuditQuery
from projections.audit_rules import RULES
from projections.live import LiveReadModels
from projections.sql import sql
from projections.store import ViewStore
from projections.views import Views
from tests.conftest import DatabaseUnderTest
from tests.projections.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    caught_up,
    live_read_models,
    make_environment,
    toggle_groups,
)

SCRIPT = Path(__file__).with_name("projector_process.py")


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


def test_every_domain_event_has_an_audit_rule() -> None:
    events = [
        member
        for aggregate in (
            Environment,
            UserCredential,
            UnknownUserLogin,
            ServiceCredential,
            FederatedLogin,
            IdentityLink,
            RejectedCallback,
        )
        for name, member in vars(aggregate).items()
        # "Event" is each aggregate's base class, never triggered itself.
        if isinstance(member, type) and issubclass(member, AeroAggregate.Event) and name != "Event"
    ]
    assert {getattr(event, "TOPIC", None) for event in events} == set(RULES)


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
    assert 0.3 <= time.monotonic() - started < 2


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
    _eventually(lambda: len(read_models.problems()) == 2)
    assert read_models.positions() == {"audit": before, "directory": before}
    problems = read_models.problems()
    assert all(f"position {bad} (aero:Unheard.Of)" in p for p in problems), problems
    assert not read_models.is_ready()

    # A restart meets the same event again: it is never skipped.
    again = live_read_models(app, settings, poll_interval=0.05)
    again.start()
    try:
        assert not again.wait_for(bad, timeout=10)
        _eventually(lambda: len(again.problems()) == 2)
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
    assert not audit.exists("audit_v1_a")
    assert audit.exists("audit_v1_b")
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


class EveryoneHolds:
    """A projector lease every process holds at once, as after a lease's connection was lost."""

    def try_acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass


@pytest.mark.parametrize("leases", ["held by one", "held by all"])
def test_two_projectors_and_a_reader_at_once_record_each_event_once(
    app: AeroAuth,
    read_models: LiveReadModels,
    clock: FixedClock,
    leases: str,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
) -> None:
    if leases == "held by all":
        monkeypatch.setattr(live_module, "projector_lease", lambda view: EveryoneHolds())
    second = live_read_models(app, settings, poll_interval=0.01)
    reader = live_read_models(app, settings, process=False)
    second.start()
    reader.start()
    try:
        make_environment(app)
        app.create_user("acme", "bob", PASSWORD)
        for _ in range(8):
            toggle_groups(app, clock, "acme", "bob", 15)
        position = caught_up(app, read_models)
        assert second.wait_for(position, timeout=10)
        assert reader.wait_for(position, timeout=10)
        assert reader.is_ready() and second.is_ready()
        projecting = [m._runners["audit"].projecting for m in (read_models, second)]
        assert projecting == ([True, False] if leases == "held by one" else [True, True])
    finally:
        second.close()
        reader.close()

    recorded = [e.position for e in read_models.export_audit(AuditQuery("acme"))]
    assert recorded == [n.id for n in app.recorder.select_notifications(0, 10_000)]
    assert read_models.verify_audit_chain("acme").intact


@pytest.fixture
def two_processes(
    app: AeroAuth, settings: Settings
) -> Iterator[tuple[LiveReadModels, LiveReadModels]]:
    """The read models of two server processes over one store, quick to take over."""

    def process() -> LiveReadModels:
        return live_read_models(app, settings, poll_interval=0.01, standby_interval=0.05)

    pair = (process(), process())
    for models in pair:
        models.start()
    try:
        yield pair
    finally:
        for models in pair:
            models.close()


def test_a_standing_by_process_takes_the_views_over_when_the_projecting_one_stops(
    app: AeroAuth, clock: FixedClock, two_processes: tuple[LiveReadModels, LiveReadModels]
) -> None:
    first, second = two_processes
    make_environment(app)
    before = caught_up(app, first)
    assert second.wait_for(before, timeout=10)
    assert [r.projecting for r in second._runners.values()] == [False, False]

    first.close()
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 5)
    after = caught_up(app, second)
    assert after > before
    assert [r.projecting for r in second._runners.values()] == [True, True]
    assert [e.position for e in second.export_audit(AuditQuery("acme"))] == [
        n.id for n in app.recorder.select_notifications(0, 10_000)
    ]
    assert second.user("acme", "bob") is not None


@pytest.mark.slow
def test_a_projector_killed_mid_batch_resumes_without_losing_or_repeating_rows(
    app: AeroAuth,
    clock: FixedClock,
    database: DatabaseUnderTest,
    settings: Settings,
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    for _ in range(4):
        toggle_groups(app, clock, "acme", "bob", 50)
    total = app.recorder.max_notification_id() or 0
    env = {
        **os.environ,
        "AERO_DATABASE_URL": database.url,
        "AERO_DATA_DIR": str(settings.data_dir),
        "AERO_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "AERO_OPERATOR_TOKEN": "operator-token-for-tests",
    }
    views = build_views(settings)
    try:
        slow = subprocess.Popen(
            [sys.executable, str(SCRIPT), "0.005"], env=env, stdout=subprocess.PIPE, text=True
        )
        assert slow.stdout is not None
        seen = [int(line.split()[1]) for line in _lines(slow.stdout, "audit ", 75)]
        os.kill(slow.pid, signal.SIGKILL)
        slow.wait(10)
        killed_at = views.audit.position()
        # Batches of 50: the first committed, the second was in flight.
        assert seen[49] <= killed_at < seen[74], (seen[49], killed_at, seen[74])

        again = subprocess.Popen([sys.executable, str(SCRIPT)], env=env)
        try:
            _until_caught_up(views, total)
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(15) == 0
        check = LiveReadModels(app, views, process=False)
        recorded = [e.position for e in check.export_audit(AuditQuery("acme"))]
        assert recorded == [n.id for n in app.recorder.select_notifications(0, 10_000)]
        assert check.verify_audit_chain("acme").intact
        bob = check.user("acme", "bob")
        assert bob is not None and bob.groups == tuple(sorted(app.user("acme", "bob").groups))
    finally:
        views.close()


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The size of every batch each view's runner records, in order."""
    recorded: dict[str, list[int]] = {}
    record = runner.process_batch

    def counting(view: ViewStore, *args: Any, **kwargs: Any) -> int:
        recorded.setdefault(view.name, []).append(len(args[2]))
        return record(view, *args, **kwargs)

    monkeypatch.setattr(runner, "process_batch", counting)
    return recorded


def _toggle_roles(app: AeroAuth, times: int, pause: float = 0.0) -> None:
    """``times`` commits of one event each, ``pause`` seconds apart."""
    for i in range(times):
        if i:
            time.sleep(pause)
        auditor = "auditor" in app.user("acme", "alice").roles
        app.change_roles("acme", "alice", ["admin"] if auditor else ["admin", "auditor"])


def test_commits_within_the_batch_interval_share_one_batch(
    app: AeroAuth, settings: Settings, batch_sizes: dict[str, list[int]]
) -> None:
    models = live_read_models(app, settings, poll_interval=0.01, batch_interval=1.0)
    models.start()
    try:
        make_environment(app)
        created = app.recorder.max_notification_id() or 0
        # positions() only reads: unlike wait_for, it does not hurry the runners.
        _eventually(lambda: min(models.positions().values()) >= created)
        before = {name: len(sizes) for name, sizes in batch_sizes.items()}

        # 0.12 s in all, well within the second since the last batch began; apart
        # from it, a poll between any two would record them in separate batches.
        _toggle_roles(app, 5, pause=0.03)
        last = app.recorder.max_notification_id() or 0
        _eventually(lambda: min(models.positions().values()) >= last)

        assert {name: sizes[before[name] :] for name, sizes in batch_sizes.items()} == {
            "audit": [5],
            "directory": [5],
        }
    finally:
        models.close()


def test_a_request_waiting_for_its_write_does_not_wait_out_the_batch_interval(
    app: AeroAuth, settings: Settings
) -> None:
    models = live_read_models(app, settings, poll_interval=0.01, batch_interval=60)
    models.start()
    try:
        make_environment(app)
        caught_up(app, models)  # a batch just now: the next one would wait a minute
        _toggle_roles(app, 1)

        assert models.wait_for(app.recorder.max_notification_id() or 0, timeout=10)
    finally:
        started = time.monotonic()
        models.close()
    assert time.monotonic() - started < 5  # a stop ends the wait too


def test_a_login_reaches_the_audit_log_within_a_second_unprompted(
    app: AeroAuth, settings: Settings
) -> None:
    # API.md: admin writes wait for the read models; a login does not, and its
    # events must still reach the audit log within a second. Nothing here kicks
    # the runners, and a batch was recorded just before: the longest wait there is.
    models = live_read_models(app, settings)  # the server's poll and batch intervals
    models.start()
    try:
        make_environment(app)
        _toggle_roles(app, 1)
        toggled = app.recorder.max_notification_id() or 0
        _eventually(lambda: min(models.positions().values()) >= toggled)

        app.start_login("acme", "alice", ADMIN_PASSWORD)
        login = app.recorder.max_notification_id() or 0
        assert login > toggled

        _eventually(lambda: models.positions()["audit"] >= login, timeout=1.0)
    finally:
        models.close()


def _eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _lines(stream: Any, prefix: str, count: int) -> list[str]:
    found = []
    deadline = time.monotonic() + 30
    for line in stream:
        if line.startswith(prefix):
            found.append(line)
            if len(found) == count:
                return found
        assert time.monotonic() < deadline, "the projector printed too little"
    raise AssertionError(f"the projector ended after {len(found)} lines")


def _until_caught_up(views: Views, total: int) -> None:
    deadline = time.monotonic() + 30
    while min(view.position() for view in views.all().values()) < total:
        assert time.monotonic() < deadline, "the restarted projector did not catch up"
        time.sleep(0.05)


def terminate_sessions(database: DatabaseUnderTest, query: str) -> int:
    """Run ``query`` (a SELECT of pg_terminate_backend) in the test's database; how many ended."""
    import psycopg

    from tests.conftest import PG_HOST, PG_PORT, PG_USER

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database.pg_dbname, autocommit=True
    ) as conn:
        return len(conn.execute(query).fetchall())


# LISTEN/NOTIFY is PostgreSQL's; SQLite sources poll.
@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_the_views_catch_up_after_their_listening_connections_are_cut(
    app: AeroAuth, read_models: LiveReadModels, database: DatabaseUnderTest
) -> None:
    make_environment(app)
    caught_up(app, read_models)
    cut = terminate_sessions(
        database,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    assert cut == 2  # one per view

    app.create_user("acme", "bob", PASSWORD)
    caught_up(app, read_models)
    assert read_models.user("acme", "bob") is not None


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_holder_whose_lease_session_ends_stands_by_and_one_process_projects_on(
    app: AeroAuth,
    clock: FixedClock,
    database: DatabaseUnderTest,
    two_processes: tuple[LiveReadModels, LiveReadModels],
) -> None:
    first, second = two_processes
    make_environment(app)
    caught_up(app, first)
    assert [r.projecting for r in first._runners.values()] == [True, True]
    ended = terminate_sessions(
        database,
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND a.state = 'idle' "
        "AND a.datname = current_database()",
    )
    assert ended == 2  # the two views' leases

    def one_projects_each_view() -> bool:
        return all(
            [first._runners[n].projecting, second._runners[n].projecting].count(True) == 1
            for n in ("audit", "directory")
        )

    _eventually(one_projects_each_view)
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 5)
    position = caught_up(app, first)
    assert second.wait_for(position, timeout=10)
    assert [e.position for e in first.export_audit(AuditQuery("acme"))] == [
        n.id for n in app.recorder.select_notifications(0, 10_000)
    ]
    assert first.verify_audit_chain("acme").intact
    assert not first.problems() and not second.problems()
