"""Issue 6, benchmarks 2 and 3: the code step alone, and what a long history costs it.

2. Code step over HTTP (login token + code; the password steps are recorded
   beforehand through the aggregates, so no argon2id here): throughput and
   p50/p99 under an asyncio httpx load generator in its own process, against
   a bare FastAPI endpoint (bench/bare_app.py), served the same way, that reads
   one row and inserts one row with sqlite3 / psycopg, in the same run.
   Target: code steps/s >= 0.5 x the bare endpoint's requests/s.
3. History length: p50 latency of AeroAuth.verify_code (load, decide, save) for a
   user with 10,000 past logins against a new user's, samples interleaved, a
   fixed clock moved one time step per sample. Target: <= 1.2x.

    .venv/bin/python bench/code_step.py --store both --seconds 10 --users 6000 --history 10000
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h


def code_step_http(store: h.Store, args: argparse.Namespace) -> None:
    kind = store.kind
    with h.Seeder(store) as seeder:
        seeder.environment()
        names = seeder.registered_users(0, args.users)
        prepared = seeder.login_tokens(names)
    with h.aero_serve(store, args.workers) as server:
        real = h.run_loadgen({"mode": "code", "url": server.url, "seconds": args.seconds,
                              "concurrency": args.concurrency, "prepared": prepared})  # fmt: skip
    if store.kind == "sqlite":
        dsn = str(store.directory / "bare.db")
    else:
        dsn = f"host={h.PG_HOST} port={h.PG_PORT} user={h.PG_USER} dbname={store.pg_dbname}"
    sys.path.insert(0, str(h.ROOT / "bench"))
    import bare_app

    bare_app.prepare(dsn, args.users)
    port = h.free_port()
    argv = [sys.executable, str(h.ROOT / "bench" / "bare_app.py"), "--port", str(port),
            "--workers", str(args.workers)]  # fmt: skip
    environ = h.server_environ(store, BENCH_BARE_DSN=dsn)
    with h.serve(argv, environ, port, store.directory / "bare.log",
                 workers=args.workers) as bare_server:  # fmt: skip
        bare = h.run_loadgen({"mode": "bare", "url": bare_server.url, "seconds": args.seconds,
                              "concurrency": args.concurrency, "rows": args.users})  # fmt: skip
    variants = [("aero-auth code step", real), ("bare endpoint", bare)]
    if store.kind == "postgres":
        environ["BENCH_BARE_LOCK"] = "1"
        port = h.free_port()
        argv[argv.index("--port") + 1] = str(port)
        with h.serve(argv, environ, port, store.directory / "bare-lock.log",
                     workers=args.workers) as bare_server:  # fmt: skip
            locked = h.run_loadgen({"mode": "bare", "url": bare_server.url,
                                    "seconds": args.seconds, "concurrency": args.concurrency,
                                    "rows": args.users})  # fmt: skip
        variants.append(("bare endpoint + LOCK TABLE (as eventsourcing 9.5.6)", locked))
    ran_out = " (ran out of prepared logins: raise --users)" if real["elapsed"] < (
        args.seconds * 0.9) else ""  # fmt: skip
    for label, r in variants:
        print(f"[{kind}] {label}: {r['ok']:,} in {r['elapsed']:.1f} s = {r['rate']:.0f}/s, "
              f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"errors {r['errors'] or 0}")  # fmt: skip
    print(f"[{kind}] ratio code steps/s / bare requests/s = {real['rate'] / bare['rate']:.2f} "
          f"(target >= 0.5){ran_out}")  # fmt: skip


def history(store: h.Store, args: argparse.Namespace) -> None:
    import pyotp

    from application.clock import FixedClock
    from application.login import challenge_key

    clock = FixedClock(h_now())
    with h.Seeder(store, clock=clock) as seeder:
        seeder.environment()
        veteran, newcomer = seeder.registered_users(10_000_000, 2)
        started = time.perf_counter()
        seeder.history(veteran, args.history)
        app = seeder.app
        events = app.repository.get(seeder.users[veteran].id).version
        print(f"[{store.kind}] user with {args.history:,} past logins: {events:,} events, "
              f"written in {time.perf_counter() - started:.1f} s")  # fmt: skip
        times: dict[str, list[float]] = {veteran: [], newcomer: []}
        for sample in range(args.samples + 1):
            now = clock.advance(seconds=30)
            for name in (veteran, newcomer) if sample % 2 else (newcomer, veteran):
                user = app.user(h.ENV, name)
                challenge = secrets.token_urlsafe(16)
                user.pass_password_step(challenge_key(challenge), True,
                                        now + timedelta(minutes=5), now)  # fmt: skip
                app.save(user)
                code = pyotp.TOTP(h.totp_secret(name)).at(now)
                t0 = time.perf_counter()
                app.verify_code(h.ENV, name, challenge, code)
                if sample:  # the first is a warm-up
                    times[name].append(time.perf_counter() - t0)
        old, new = h.median(times[veteran]), h.median(times[newcomer])
        print(f"[{store.kind}] verify_code p50 over {args.samples} samples: "
              f"{args.history:,} past logins {old * 1000:.2f} ms, new user {new * 1000:.2f} ms, "
              f"ratio {old / new:.2f} (target <= 1.2)")  # fmt: skip


def h_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    h.add_store_argument(parser)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--users", type=int, default=1500, help="prepared logins (one each)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=h.nproc())
    parser.add_argument("--history", type=int, default=1000, help="past logins of the veteran")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    h.header("code step vs a bare endpoint (2), and history length (3)")
    for kind in h.stores(args.store):
        try:
            with h.scratch_store(kind) as store:
                code_step_http(store, args)
            with h.scratch_store(kind) as store:
                history(store, args)
        except h.Unreachable as e:
            print(f"[{kind}] skipped: {e}")


if __name__ == "__main__":
    main()
