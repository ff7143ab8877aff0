"""Core figures of aero-auth: events written per login, and how fast a long-lived credential loads.

(a) Events per login, counted as new notifications in the store: a password-only
    login, and a full login with an authenticator code.
(b) Time to load a UserCredential with a long history of past logins (default
    10,000), with snapshots (AeroAuth takes one every 100 events) and without
    (an application without a snapshot store, replaying every event), on SQLite
    and on PostgreSQL, each the median of several loads, and their ratio.

The history is written by driving the aggregate directly and saving in
batches: the same events the password step records, without paying argon2
for each of them. PostgreSQL gets a database of its own, dropped at the end.

Run from the repository root:

    .venv/bin/python bench/core_figures.py [--logins 10000] [--loads 7]

PostgreSQL is reached as the tests reach it: AERO_TEST_PG_HOST (127.0.0.1),
AERO_TEST_PG_PORT (5432), AERO_TEST_PG_USER (postgres).
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyotp

from application.clock import FixedClock
from application.login import challenge_key
from application.passwords import Argon2Hasher
from application.secretbox import SecretBox
from application.service import AeroAuth
from domain.credential import UserCredential

PG_HOST = os.environ.get("AERO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("AERO_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("AERO_TEST_PG_USER", "postgres")
ENV = "bench"
BATCH = 500  # logins per save: 1,000 events


class WithoutSnapshots(AeroAuth):
    """AeroAuth on the same tables, with no snapshot store: every load replays every event."""

    name = "AeroAuth"  # the library names tables after the application
    snapshotting_intervals = {}


def sqlite_env(directory: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(directory / "aero.db"),
        "SQLITE_LOCK_TIMEOUT": "10",
    }


def postgres_env(dbname: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": PG_HOST,
        "POSTGRES_PORT": str(PG_PORT),
        "POSTGRES_USER": PG_USER,
        "POSTGRES_PASSWORD": os.environ.get("AERO_TEST_PG_PASSWORD", ""),
    }


class Unreachable(Exception):
    pass


@contextmanager
def postgres_database() -> Iterator[str]:
    import psycopg

    name = f"aero_bench_{uuid.uuid4().hex[:12]}"

    def admin() -> psycopg.Connection:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
        )

    try:
        with admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        raise Unreachable(f"PostgreSQL at {PG_HOST}:{PG_PORT}: {e}") from e
    try:
        yield name
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build(cls: type[AeroAuth], env: dict[str, str], clock: FixedClock, key: bytes) -> AeroAuth:
    return cls(env, clock=clock, hasher=Argon2Hasher(), secret_box=SecretBox({"k1": key}, "k1"))


def count_new(app: AeroAuth, action: Callable[[], object]) -> int:
    before = app.recorder.max_notification_id() or 0
    action()
    return (app.recorder.max_notification_id() or 0) - before


def events_per_login(app: AeroAuth, clock: FixedClock) -> tuple[int, int]:
    """Notifications written by a password-only login and by a full 2FA login."""
    app.create_environment(ENV, "Bench", "BizzStream Aero", "alice", "correct horse battery")
    app.create_user(ENV, "carol", "she keeps the books")
    app.create_user(ENV, "bob", "my long secret phrase", groups=["finance"])
    app.set_policy(ENV, True, ["finance"])
    step = app.start_login(ENV, "bob", "my long secret phrase")
    assert step.challenge_id is not None
    secret = app.start_registration(ENV, "bob", step.challenge_id).secret
    app.confirm_registration(ENV, "bob", step.challenge_id, pyotp.TOTP(secret).at(clock.now()))
    clock.advance(minutes=1)

    password_only = count_new(app, lambda: app.start_login(ENV, "carol", "she keeps the books"))

    def full_login() -> None:
        challenge = app.start_login(ENV, "bob", "my long secret phrase").challenge_id
        assert challenge is not None
        app.verify_code(ENV, "bob", challenge, pyotp.TOTP(secret).at(clock.now()))

    return password_only, count_new(app, full_login)


def write_history(app: AeroAuth, clock: FixedClock, logins: int) -> uuid.UUID:
    """A user with ``logins`` past password-only logins, saved in batches."""
    app.create_user(ENV, "dave", "he has logged in a lot")
    user: UserCredential = app.user(ENV, "dave")
    for i in range(logins):
        now = clock.advance(minutes=1)
        user.pass_password_step(challenge_key(f"c{i}"), False, now + timedelta(minutes=5), now)
        if (i + 1) % BATCH == 0:
            app.save(user)
    app.save(user)
    return user.id


def median_load_seconds(app: AeroAuth, user_id: uuid.UUID, loads: int) -> float:
    app.repository.get(user_id)  # warm the connection and the topic cache
    times = []
    for _ in range(loads):
        start = time.perf_counter()
        app.repository.get(user_id)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(store: str, env: dict[str, str], logins: int, loads: int) -> None:
    clock = FixedClock(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    key = SecretBox.generate_key()
    app = build(AeroAuth, env, clock, key)
    plain = build(WithoutSnapshots, env, clock, key)
    try:
        password_only, full = events_per_login(app, clock)
        print(f"[{store}] events per login: password only {password_only}, full 2FA {full}")
        start = time.perf_counter()
        user_id = write_history(app, clock, logins)
        written = time.perf_counter() - start
        version = app.repository.get(user_id).version
        assert app.snapshots is not None
        snapshots = len(list(app.snapshots.get(user_id)))
        print(
            f"[{store}] wrote {logins:,} logins ({version:,} events, {snapshots} snapshots) "
            f"in {written:.1f} s"
        )
        with_snapshots = median_load_seconds(app, user_id, loads)
        without = median_load_seconds(plain, user_id, loads)
        assert plain.repository.get(user_id).version == version
        print(
            f"[{store}] load, median of {loads}: with snapshots {with_snapshots * 1000:.2f} ms, "
            f"without {without * 1000:.1f} ms, ratio {without / with_snapshots:.0f}x"
        )
    finally:
        plain.close()
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=7)
    args = parser.parse_args()

    print("command: cd", shlex.quote(os.getcwd()), "&&", " ".join(
        [".venv/bin/python", "bench/core_figures.py", "--logins", str(args.logins),
         "--loads", str(args.loads)]
    ))  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        measure("sqlite", sqlite_env(Path(directory)), args.logins, args.loads)
    try:
        with postgres_database() as dbname:
            measure("postgres", postgres_env(dbname), args.logins, args.loads)
    except Unreachable as e:
        print(f"[postgres] skipped: {e}")


if __name__ == "__main__":
    main()
