"""Issue 6, benchmark 1's evidence: where the CPU of a login goes, part by part.

CPU time, not wall time, so that a busy neighbour on the cores moves the
figures less; every part is measured in this run:

- argon2id: one verify with the configured parameters (m=19456 KiB, t=2, p=1),
  on the hasher's own thread, as the service verifies (this process's CPU);
- the application: ``AeroAuth.start_login`` then ``verify_code`` for users with
  authenticators, in this process, with the password hash taken out (a hasher
  that answers without hashing; this script only), so what remains is loading,
  deciding and saving: 3 events in 2 transactions; once for new users, once for
  users with a history of logins loaded without the aggregate cache;
- HTTP: server CPU per request of a bare FastAPI app (bench/bare_app.py, a sync
  and an async endpoint that return a constant) and of aero-auth's /healthz,
  each served by uvicorn with one worker and driven by the load generator;
- the whole login over HTTP, server CPU per login, as in bench/login_throughput.py.

The target of benchmark 1 (logins/s >= 0.8 x verifies/s) leaves a login
0.25 x its hash for everything else, load generator included.

    .venv/bin/python bench/login_breakdown.py --store both
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h


def hash_cpu_ms(verifies: int) -> float:
    from application.passwords import Argon2Hasher

    hasher = Argon2Hasher()
    stored = hasher.hash(h.PASSWORD)
    hasher.verify(stored, h.PASSWORD)
    # The process's CPU, not this thread's: the hasher verifies on threads of its own.
    started = time.process_time()
    for _ in range(verifies):
        assert hasher.verify(stored, h.PASSWORD)
    return (time.process_time() - started) * 1000 / verifies


def thread_round_trip_us(trips: int = 5000) -> float:
    """CPU (both threads) of one round trip between two threads, Event to Event:
    the floor of every hand-off to and from a thread pool, a runner or a lock."""
    import threading

    ping, pong = threading.Event(), threading.Event()

    def other() -> None:
        for _ in range(trips):
            ping.wait()
            ping.clear()
            pong.set()

    thread = threading.Thread(target=other)
    thread.start()
    started = time.process_time()
    for _ in range(trips):
        ping.set()
        pong.wait()
        pong.clear()
    thread.join()
    return (time.process_time() - started) * 1e6 / trips


class WithoutHashing:
    """Stands in for the hasher: the password is taken as right, at no cost."""

    def verify(self, password_hash: str, password: str) -> bool:
        return True

    def verify_dummy(self, password: str) -> None:
        pass

    def needs_rehash(self, password_hash: str) -> bool:
        return False


def application_cpu_ms(store: h.Store, logins: int) -> float:
    import pyotp

    with h.Seeder(store) as seeder:
        seeder.environment()
        names = seeder.registered_users(0, logins + 50, keep=False)
        app = seeder.app
        app.hasher = WithoutHashing()
        codes = {name: pyotp.TOTP(h.totp_secret(name)) for name in names}

        def log_in(name: str) -> None:
            step = app.start_login(h.ENV, name, h.PASSWORD)
            app.verify_code(h.ENV, name, step.challenge_id, codes[name].now())

        for name in names[:50]:  # warm: caches, prepared statements
            log_in(name)
        started = time.process_time()
        for name in names[50:]:
            log_in(name)
        return (time.process_time() - started) * 1000 / logins


def application_history_cpu_ms(
    store: h.Store, logins: int, past: int, users: int = 20, library_loading: bool = False
) -> float:
    """As ``application_cpu_ms``, for users ``past`` logins into their history (30:
    about 90 events, so snapshots have been taken) and with no aggregate cache, as
    for most logins of a platform whose users log in once or twice a day.

    ``library_loading``: as before change 14 (docs/benchmarks.md), for comparison:
    the library's ``project_aggregate``, which checks each event against a
    runtime Protocol, and a snapshot every 100 events (the id cache stays on: it
    saves about 4 µs per login step).
    """
    from datetime import UTC, datetime
    from unittest import mock

    import pyotp
    from eventsourcing.application import project_aggregate

    import application.base
    from application.clock import FixedClock
    from domain.credential import UserCredential

    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    with contextlib.ExitStack() as patches, h.Seeder(store, clock=clock) as seeder:
        seeder.environment()
        names = seeder.registered_users(0, users, keep=False)
        app = seeder.app
        app.hasher = WithoutHashing()
        app.repository.cache = None
        if library_loading:
            patches.enter_context(mock.patch.object(application.base, "apply_events",
                                                    project_aggregate))  # fmt: skip
            app.snapshotting_intervals = {UserCredential: 100}
            app.snapshotting_projectors = {}
        totps = {name: pyotp.TOTP(h.totp_secret(name)) for name in names}

        def round_of_logins() -> None:
            clock.advance(seconds=30)  # a new time step: each code is used once
            for name in names:
                step = app.start_login(h.ENV, name, h.PASSWORD)
                app.verify_code(h.ENV, name, step.challenge_id, totps[name].at(clock.now()))

        for _ in range(past):
            round_of_logins()
        rounds = max(logins // users, 1)
        started = time.process_time()
        for _ in range(rounds):
            round_of_logins()
        return (time.process_time() - started) * 1000 / (rounds * users)


def server_cpu_per_request(server: Any, path: str, seconds: float) -> tuple[float, int]:
    ledger = h.CpuLedger(server=[server.process.pid, *server.workers()])
    ledger.start()
    result = h.run_loadgen({"mode": "get", "url": server.url, "path": path,
                            "seconds": seconds, "concurrency": 8})  # fmt: skip
    ledger.stop()
    return ledger.spent["server"] * 1000 / max(result["ok"], 1), result["ok"]


def http_floor(store: h.Store, seconds: float) -> dict[str, float]:
    port = h.free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", "bare_app:create_app", "--app-dir",
            "bench", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--no-access-log"]  # fmt: skip
    environ = h.server_environ(store, BENCH_BARE_DSN=str(store.directory / "floor.db"))
    figures = {}
    with h.serve(argv, environ, port, store.directory / "floor.log") as bare:
        for label, path in (("sync", "/healthz"), ("async", "/healthz-async")):
            figures[f"bare FastAPI, {label} endpoint"] = server_cpu_per_request(
                bare, path, seconds
            )[0]
    with h.aero_serve(store, 1) as server:
        figures["aero-auth /healthz"] = server_cpu_per_request(server, "/healthz", seconds)[0]
    return figures


def full_login_cpu_ms(store: h.Store, users: list[str], seconds: float) -> tuple[float, float]:
    with h.aero_serve(store, h.nproc(), log_name="full.log") as server:
        ledger = h.CpuLedger(server=[server.process.pid, *server.workers()])
        ledger.start()
        result = h.run_loadgen({"mode": "full", "url": server.url, "seconds": seconds,
                                "concurrency": 16, "users": users})  # fmt: skip
        ledger.stop()
    logins = max(result["ok"], 1)
    return ledger.spent["server"] * 1000 / logins, result["cpu_seconds"] * 1000 / logins


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    h.add_store_argument(parser)
    parser.add_argument("--verifies", type=int, default=100)
    parser.add_argument("--logins", type=int, default=1000)
    parser.add_argument("--past", type=int, default=30,
                        help="past logins of each user before the history figure")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    h.header("where the CPU of a login goes (benchmark 1's evidence)")
    hashed = hash_cpu_ms(args.verifies)
    print(f"argon2id verify, one at a time: {hashed:.2f} ms CPU; at the target a login may "
          f"spend {hashed * 0.25:.2f} ms CPU on everything else")  # fmt: skip
    print(f"a round trip between two threads (Event set, wait): {thread_round_trip_us():.0f} us "
          "CPU of both threads")  # fmt: skip
    for kind in h.stores(args.store):
        try:
            with h.scratch_store(kind) as store:
                app_ms = application_cpu_ms(store, args.logins)
            with h.scratch_store(kind) as store:
                history_ms = application_history_cpu_ms(store, args.logins, args.past)
            with h.scratch_store(kind) as store:
                library_ms = application_history_cpu_ms(store, args.logins, args.past,
                                                         library_loading=True)  # fmt: skip
            with h.scratch_store(kind) as store:
                floor = http_floor(store, args.seconds)
                with h.Seeder(store) as seeder:
                    seeder.environment()
                    users = seeder.registered_users(0, 1500, keep=False)
                server_ms, loadgen_ms = full_login_cpu_ms(store, users, args.seconds * 3)
        except h.Unreachable as e:
            print(f"[{kind}] skipped: {e}")
            continue
        print(f"[{kind}] application (load, decide, save; no hash): {app_ms:.2f} ms CPU per login")
        print(f"[{kind}] the same for users {args.past} logins into their history, no aggregate "
              f"cache: {history_ms:.2f} ms CPU per login; {library_ms:.2f} ms with the library's "
              "project_aggregate and a snapshot every 100 events")  # fmt: skip
        for label, ms in floor.items():
            print(f"[{kind}] HTTP, {label}: {ms:.3f} ms server CPU per request")
        print(f"[{kind}] full login over HTTP, {h.nproc()} workers, 16 concurrent: server "
              f"{server_ms:.1f} ms CPU per login = hash {hashed:.1f} + "
              f"{server_ms - hashed:.1f} else; load generator {loadgen_ms:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
