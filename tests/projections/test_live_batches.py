"""How the live read models batch what they record: commits close together share
one batch, and no reader waits out the batch interval.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from application.service import AeroAuth
from interfaces.settings import Settings
from projections import runner
from projections.store import ViewStore
from tests.projections.helpers import eventually, make_environment
from tests.support import ADMIN_PASSWORD, caught_up, live_read_models


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
    interval = 3.0
    models = live_read_models(app, settings, poll_interval=0.01, batch_interval=interval)
    models.start()
    try:
        make_environment(app)
        created = app.recorder.max_notification_id() or 0
        # positions() only reads: unlike wait_for, it does not hurry the runners.
        eventually(lambda: min(models.positions().values()) >= created)
        before = {name: len(sizes) for name, sizes in batch_sizes.items()}

        # Polled every 10 ms, commits 30 ms apart would each be a batch of their own;
        # batches at least ``interval`` apart take them in at most 2 batches while the
        # commits take less than the interval (0.12 s on an idle machine), one more per
        # interval they take on a loaded one: so no figure here depends on the load.
        started = time.monotonic()
        _toggle_roles(app, 5, pause=0.03)
        span = time.monotonic() - started
        last = app.recorder.max_notification_id() or 0
        eventually(lambda: min(models.positions().values()) >= last, timeout=30 + interval)

        for name, sizes in batch_sizes.items():
            toggles = sizes[before[name] :]
            assert sum(toggles) == 5, (name, toggles)
            assert len(toggles) <= 2 + int(span // interval), (name, toggles, span)
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
    assert time.monotonic() - started < 30  # a stop ends the wait too, long before the minute


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
        eventually(lambda: min(models.positions().values()) >= toggled)

        app.start_login("acme", "alice", ADMIN_PASSWORD)
        login = app.recorder.max_notification_id() or 0
        assert login > toggled

        # The second is the runners' own bound (a poll, then at most one batch
        # interval); the wall clock of a loaded machine is not checked against it.
        assert models.poll_interval + models.batch_interval <= 1.0
        eventually(lambda: models.positions()["audit"] >= login, timeout=30)
    finally:
        models.close()
