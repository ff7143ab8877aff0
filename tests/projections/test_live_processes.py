"""The live read models of several processes over one store: one projects each
view, the others stand by and take over; a projector killed mid-batch resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.composition import build_views
from interfaces.settings import Settings
from projections import live as live_module
from projections.api import AuditQuery
from projections.live import LiveReadModels
from projections.views import Views
from tests.conftest import DatabaseUnderTest
from tests.projections.helpers import eventually, make_environment, toggle_groups
from tests.support import PASSWORD, caught_up, cli_env, live_read_models

SCRIPT = Path(__file__).with_name("projector_process.py")


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
        projecting = [m.projecting()["audit"] for m in (read_models, second)]
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
    assert second.projecting() == {"audit": False, "directory": False}

    first.close()
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 5)
    after = caught_up(app, second)
    assert after > before
    assert second.projecting() == {"audit": True, "directory": True}
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
    env = {**os.environ, **cli_env(settings, operator_token=True)}
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
    assert first.projecting() == {"audit": True, "directory": True}
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
            [first.projecting()[n], second.projecting()[n]].count(True) == 1
            for n in ("audit", "directory")
        )

    eventually(one_projects_each_view)
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 5)
    position = caught_up(app, first)
    assert second.wait_for(position, timeout=10)
    assert [e.position for e in first.export_audit(AuditQuery("acme"))] == [
        n.id for n in app.recorder.select_notifications(0, 10_000)
    ]
    assert first.verify_audit_chain("acme").intact
    assert not first.problems() and not second.problems()
