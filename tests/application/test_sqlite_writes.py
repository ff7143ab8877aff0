"""SQLite: writers queue on a lock that wakes them, across threads and processes,
and reads go past a writer that waits."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError

from application.clock import FixedClock
from application.service import AeroAuth
from application.sqlite_writes import SerialisedWritesRecorder
from domain.unknown_user import UnknownUserLogin
from interfaces.composition import build_application
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest

ROOT = Path(__file__).resolve().parents[2]


# The store's own fixtures (tests/conftest.py), on SQLite only.
pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def recorder_of(app: AeroAuth) -> SerialisedWritesRecorder:
    assert isinstance(app.recorder, SerialisedWritesRecorder)
    return app.recorder


@contextmanager
def another_process_writing(lock_path: str) -> Iterator[None]:
    """Hold the writer lock as another server process does while it writes.

    flock belongs to an open file: a second open of the file is a second holder,
    in this process as in another.
    """
    fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def attempt(app: AeroAuth, clock: FixedClock, username: str) -> threading.Thread:
    event = UnknownUserLogin.record("acme", username, clock.now())
    thread = threading.Thread(target=app.save, args=(event,), daemon=True)
    thread.start()
    return thread


def test_the_sqlite_store_writes_under_a_lock_file_beside_the_database(
    app: AeroAuth, clock: FixedClock, database: DatabaseUnderTest
) -> None:
    app.save(UnknownUserLogin.record("acme", "mallory", clock.now()))
    assert database.sqlite_path is not None
    assert recorder_of(app).writer_lock.path == f"{database.sqlite_path}.writer-lock"
    assert Path(recorder_of(app).writer_lock.path).exists()


def test_writers_wait_for_another_process_and_reads_go_past_them(
    app: AeroAuth, clock: FixedClock
) -> None:
    app.save(UnknownUserLogin.record("acme", "before", clock.now()))
    with another_process_writing(recorder_of(app).writer_lock.path):
        # One writer waits on the other process, the next on the first.
        writers = [attempt(app, clock, "first"), attempt(app, clock, "second")]
        time.sleep(0.3)
        assert all(w.is_alive() for w in writers)
        assert len(app.recorder.select_notifications(0, 10)) == 1
        # Answered while the other process still holds the lock: reads do not take it.
        assert all(w.is_alive() for w in writers)
    for writer in writers:
        writer.join(timeout=5)
        assert not writer.is_alive()
    assert len(app.recorder.select_notifications(0, 10)) == 3


def test_snapshots_wait_for_the_same_lock(app: AeroAuth, clock: FixedClock) -> None:
    attempted = UnknownUserLogin.record("acme", "mallory", clock.now())
    app.save(attempted)
    assert app.snapshots is not None
    with another_process_writing(recorder_of(app).writer_lock.path or ""):
        snapshot = threading.Thread(target=app.take_snapshot, args=(attempted.id,), daemon=True)
        snapshot.start()
        time.sleep(0.3)
        assert snapshot.is_alive()
    snapshot.join(timeout=5)
    assert not snapshot.is_alive()
    assert len(list(app.snapshots.get(attempted.id))) == 1


def test_a_writer_gives_up_after_the_lock_timeout_as_sqlite_would(
    app: AeroAuth, clock: FixedClock
) -> None:
    lock = recorder_of(app).writer_lock
    lock.timeout = 0.3
    with another_process_writing(lock.path or ""):
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            app.save(UnknownUserLogin.record("acme", "late", clock.now()))
        assert time.monotonic() - started >= 0.3  # it waited for the timeout, then gave up
    app.save(UnknownUserLogin.record("acme", "later", clock.now()))
    assert len(app.recorder.select_notifications(0, 10)) == 1


def test_the_lock_file_takes_the_databases_permissions_and_serves_read_only(
    app: AeroAuth, clock: FixedClock, database: DatabaseUnderTest, settings: Settings
) -> None:
    assert database.sqlite_path is not None
    app.save(UnknownUserLogin.record("acme", "first", clock.now()))
    lock_path = Path(recorder_of(app).writer_lock.path or "")
    database_mode = stat.S_IMODE(database.sqlite_path.stat().st_mode)
    assert stat.S_IMODE(lock_path.stat().st_mode) == database_mode & ~current_umask()
    # Created by another user, it may not be writable by this one: a flock needs no more
    # than a read-only descriptor (checked directly too: root ignores the mode bits).
    # The lock's descriptor is private: only this check of its access mode needs it.
    fd = recorder_of(app).writer_lock._fd
    assert fd is not None
    assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    # Another process opens it afresh.
    lock_path.chmod(0o444)
    other = build_application(settings, clock=clock)
    try:
        other.save(UnknownUserLogin.record("acme", "second", clock.now()))
    finally:
        other.close()
    assert len(app.recorder.select_notifications(0, 10)) == 2


def test_closing_the_application_lets_go_of_the_lock_file(app: AeroAuth, clock: FixedClock) -> None:
    app.save(UnknownUserLogin.record("acme", "first", clock.now()))
    lock = recorder_of(app).writer_lock
    # The private descriptor, as above: closing the application must close it.
    opened = os.readlink(f"/proc/self/fd/{lock._fd}") if lock._fd is not None else None
    assert opened == lock.path
    app.close()
    assert lock._fd is None


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


WRITER = """
import sys, threading
from datetime import UTC, datetime
from domain.unknown_user import UnknownUserLogin
from interfaces.composition import build_application
from interfaces.settings import from_environment

app = build_application(from_environment())
def write(thread):
    for n in range(int(sys.argv[1])):
        app.save(UnknownUserLogin.record("acme", f"{sys.argv[2]}-{thread}-{n}", datetime.now(UTC)))
threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
app.close()
"""


@pytest.mark.slow
def test_writers_in_two_processes_each_land_every_event_once(
    app: AeroAuth, settings: Settings
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AERO_")}
    env.update(
        AERO_DATABASE_URL=settings.database_url,
        AERO_DATA_DIR=str(settings.data_dir),
        AERO_SECRET_KEY=settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
        PYTHONPATH=str(ROOT),
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, "50", name], env=env, cwd=ROOT)
        for name in ("one", "two")
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    notifications = app.recorder.select_notifications(0, 1000)
    assert len(notifications) == 2 * 4 * 50
    ids = [n.id for n in notifications]
    assert ids == sorted(set(ids))
