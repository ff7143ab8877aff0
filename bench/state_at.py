"""How long History.user_at takes for a user with a long history, on SQLite and PostgreSQL.

Records one user with N events (default 10,000: the creation, then group
changes a second apart), then times, in the same run:

- ``History.user_at`` at several instants (binary search over versions, then
  a rebuild from the nearest snapshot),
- ``app.repository.get`` of the current state (nearest snapshot + the rest),
- a full replay of every event, which is what a point-in-time read that
  scanned the history would cost at least.

Run from the repository root:

    .venv/bin/python bench/state_at.py                     # both stores, 10,000 events
    .venv/bin/python bench/state_at.py --stores sqlite --events 2000 --repeat 10

PostgreSQL: a database named aero_bench_<random> is created on 127.0.0.1:5432
as user postgres (override with AERO_BENCH_PG_HOST/PORT/USER) and dropped after.
"""

from __future__ import annotations

import argparse
import base64
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eventsourcing.application import project_aggregate
from pydantic import SecretStr

from application.clock import FixedClock
from application.history import History
from application.service import AeroAuth
from domain.credential import UserCredential
from domain.rules import user_id
from interfaces.composition import build_application
from interfaces.settings import Settings

PG_HOST = os.environ.get("AERO_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("AERO_BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("AERO_BENCH_PG_USER", "postgres")
ENV, USER = "bench", "carol"
START = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
BATCH = 500


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="aero-bench-") as directory:
        yield f"sqlite:///{Path(directory) / 'aero.db'}"


@contextmanager
def postgres_url() -> Iterator[str]:
    import psycopg

    name = f"aero_bench_{uuid.uuid4().hex[:12]}"

    def admin() -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
        )

    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def record(app: AeroAuth, clock: FixedClock, events: int) -> list[datetime]:
    """The user's history: version 1 is the creation, each later version a group change.

    Driven through the aggregate and saved in batches, so that 10,000 events
    take seconds; the application still takes a snapshot every 100 versions.
    Returns the timestamp of every version (index 0 is version 1).
    """
    app.create_environment(ENV, "Bench", "BizzStream Aero", "alice", "correct horse battery")
    clock.advance(seconds=1)
    app.create_user(ENV, USER, "she keeps the books", groups=["odd"])
    user = app.user(ENV, USER)
    stamps = [user.created_on]
    for version in range(2, events + 1):
        now = clock.advance(seconds=1)
        user.change_groups(["odd" if version % 2 else "even"], now)
        stamps.append(now)
        if version % BATCH == 0:
            app.save(user)
    app.save(user)
    assert user.version == events
    clock.advance(seconds=1)
    return stamps


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median and worst wall time in milliseconds, after one warm-up call."""
    result = call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples), result


def bench_store(
    kind: str, url: str, events: int, repeat: int
) -> list[tuple[str, str, float, float]]:
    with tempfile.TemporaryDirectory(prefix="aero-bench-data-") as data_dir:
        settings = Settings(  # type: ignore[call-arg]
            database_url=url,
            data_dir=Path(data_dir),
            secret_key=SecretStr(base64.b64encode(os.urandom(32)).decode()),
        )
        clock = FixedClock(START)
        app = build_application(settings, clock=clock)
        try:
            started = time.perf_counter()
            stamps = record(app, clock, events)
            uid = user_id(ENV, USER)
            assert app.snapshots is not None
            snapshot_count = len(list(app.snapshots.get(uid)))
            print(
                f"  {kind}: recorded {events} events and {snapshot_count} snapshots "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            history = History(app)
            rows = []
            versions = sorted({2, events // 4 + 37, events // 2, 3 * events // 4 + 99, events - 1})
            for version in versions:
                instant = stamps[version - 1] + timedelta(milliseconds=500)

                def at_instant(i: datetime = instant) -> UserCredential:
                    return history.user_at(ENV, USER, i)

                median, worst, user = timed(at_instant, repeat)
                assert user.version == version, (user.version, version)
                rows.append((kind, f"user_at -> version {version}", median, worst))
            median, worst, user = timed(lambda: history.user_at(ENV, USER, clock.now()), repeat)
            assert user.version == events
            rows.append((kind, f"user_at now -> version {events}", median, worst))
            median, worst, user = timed(lambda: app.repository.get(uid), repeat)
            assert user.version == events
            rows.append((kind, "repository.get (current)", median, worst))

            def full_replay() -> UserCredential:
                replayed = project_aggregate(None, app.events.get(uid))
                assert isinstance(replayed, UserCredential)
                return replayed

            median, worst, user = timed(full_replay, max(3, repeat // 5))
            assert user.version == events
            rows.append((kind, f"full replay of {events} events", median, worst))
            return rows
        finally:
            app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per figure")
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite, postgres or both")
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]), flush=True)
    rows = []
    for kind in args.stores.split(","):
        opener = {"sqlite": sqlite_url, "postgres": postgres_url}[kind.strip()]
        with opener() as url:
            rows += bench_store(kind.strip(), url, args.events, args.repeat)
    print(f"\n{'store':<9} {'read':<34} {'median ms':>10} {'max ms':>10}")
    for kind, what, median, worst in rows:
        print(f"{kind:<9} {what:<34} {median:>10.2f} {worst:>10.2f}")


if __name__ == "__main__":
    main()
